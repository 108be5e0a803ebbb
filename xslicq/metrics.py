"""Evaluation metrics (not for backpropagation; see :mod:`xslicq.losses` for training).

Shapes (``B`` batch, ``J`` targets, ``C`` channels, ``T`` samples)::

    est, ref   (..., C, T) -- typically (J, C, T) per track or (B, J, C, T) per batch

* :func:`sdr_db` -- the global "new SDR" of the Music Demixing challenge, one value
  per leading index: ``10 log10((||ref||^2 + eps) / (||ref - est||^2 + eps))``.
* :func:`median_frame_sdr` -- a quick BSSEval-v4-like track score: global SDR in
  one-second frames, silent reference frames skipped, median over frames.
* :class:`SDRMetric` -- running mean of :func:`sdr_db` over batches, per target.

Metrics are computed in float64 and detached from any graph. Full BSSEval v4
(museval, with distortion filters) and HAAQI plug in here later as further
entries of :data:`METRICS`; they are not implemented in this module.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["sdr_db", "median_frame_sdr", "SDRMetric", "METRICS", "SILENCE_ENERGY"]

SILENCE_ENERGY = 1e-10
"""A reference frame whose mean energy per sample is below this is silent and skipped."""


def _check_pair(est, ref, what: str, min_ndim: int = 2) -> None:
    if tuple(est.shape) != tuple(ref.shape):
        raise ValueError(f"{what}: est shape {tuple(est.shape)} does not match "
                         f"ref shape {tuple(ref.shape)}")
    if len(est.shape) < min_ndim:
        raise ValueError(f"{what}: inputs need at least {min_ndim} axes "
                         f"(..., channels, samples), got shape {tuple(est.shape)}")


def sdr_db(est, ref, eps: float = 1e-8):
    """Global SDR in dB over the last two axes (channels, samples).

    Args:
        est, ref: (..., channels, samples), both numpy arrays or both torch tensors.
    Returns:
        (...) float64 SDRs, numpy for numpy input and a detached tensor (on the
        input's device) for torch input.
    """
    _check_pair(est, ref, "sdr_db")
    if isinstance(est, torch.Tensor) or isinstance(ref, torch.Tensor):
        if not (isinstance(est, torch.Tensor) and isinstance(ref, torch.Tensor)):
            raise ValueError(f"sdr_db: est and ref must both be numpy arrays or both torch "
                             f"tensors, got {type(est).__name__} and {type(ref).__name__}")
        est, ref = est.detach().double(), ref.detach().double()
        num = ref.square().sum(dim=(-2, -1))
        den = (ref - est).square().sum(dim=(-2, -1))
        return 10.0 * torch.log10((num + eps) / (den + eps))
    est, ref = np.asarray(est, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    num = np.square(ref).sum(axis=(-2, -1))
    den = np.square(ref - est).sum(axis=(-2, -1))
    return 10.0 * np.log10((num + eps) / (den + eps))


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def median_frame_sdr(est, ref, sample_rate: float, frame_seconds: float = 1.0,
                     eps: float = 1e-8) -> np.ndarray:
    """Median over frames of the global SDR per frame, per target (BSSEval-v4-like, no filters).

    The signals are cut into non-overlapping frames of ``frame_seconds`` (a
    trailing partial frame is dropped, as BSSEval v4 does; a signal shorter than
    one frame is one frame). Frames where the reference's mean energy per sample
    is below :data:`SILENCE_ENERGY` are skipped; a target with no frame left
    scores nan.

    Args:
        est, ref: (targets, channels, samples) numpy arrays (torch tensors are converted).
        sample_rate: sampling rate in Hz.
        frame_seconds: frame length in seconds.
    Returns:
        (targets,) float64 median SDRs in dB.
    """
    est, ref = _to_numpy(est), _to_numpy(ref)
    _check_pair(est, ref, "median_frame_sdr", min_ndim=0)
    if est.ndim != 3:
        raise ValueError(f"median_frame_sdr: inputs must be (targets, channels, samples), "
                         f"got shape {est.shape}")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"median_frame_sdr: sample_rate must be > 0 Hz, got {sample_rate!r}")
    frame = int(round(frame_seconds * sample_rate))
    if not frame >= 1:
        raise ValueError(f"median_frame_sdr: frame_seconds={frame_seconds!r} at "
                         f"{sample_rate} Hz is shorter than one sample")
    J, C, T = est.shape
    if T == 0:
        raise ValueError("median_frame_sdr: signals have no samples")
    nb_frames = max(T // frame, 1)
    frame = min(frame, T)
    cut = nb_frames * frame
    # (J, C, frames, frame) -> (J, frames, C, frame)
    est_f = est[..., :cut].reshape(J, C, nb_frames, frame).transpose(0, 2, 1, 3)
    ref_f = ref[..., :cut].reshape(J, C, nb_frames, frame).transpose(0, 2, 1, 3)
    scores = sdr_db(est_f, ref_f, eps)                                  # (J, frames)
    active = np.square(ref_f).mean(axis=(-2, -1)) >= SILENCE_ENERGY
    out = np.full(J, np.nan)
    for j in range(J):
        if active[j].any():
            out[j] = np.median(scores[j, active[j]])
    return out


class SDRMetric:
    """Running mean of the global SDR (:func:`sdr_db`) per target over batches.

    ``update(est, ref)`` takes (batch, targets, channels, samples) torch tensors or
    numpy arrays; ``compute()`` returns ``(per_target, mean)``: a (targets,)
    float64 tensor of mean SDRs in dB and their scalar mean; ``reset()`` starts over.

    Args:
        eps: added to both energies, as in :func:`sdr_db`.
        target_names: optional names of the targets, for :meth:`as_dict`.
    """

    def __init__(self, eps: float = 1e-8, target_names: Sequence[str] | None = None):
        self.eps = float(eps)
        self.target_names = list(target_names) if target_names is not None else None
        self.reset()

    def reset(self) -> None:
        self._sum: torch.Tensor | None = None
        self._count = 0

    def update(self, est, ref) -> torch.Tensor:
        """Adds a batch; returns its (batch, targets) SDRs."""
        if not isinstance(est, torch.Tensor):
            est = torch.as_tensor(np.asarray(est))
        if not isinstance(ref, torch.Tensor):
            ref = torch.as_tensor(np.asarray(ref))
        _check_pair(est, ref, "SDRMetric.update", min_ndim=0)
        if est.ndim != 4:
            raise ValueError(f"SDRMetric.update: inputs must be (batch, targets, channels, "
                             f"samples), got shape {tuple(est.shape)}")
        scores = sdr_db(est, ref, self.eps).cpu()                        # (batch, targets)
        nb_targets = scores.shape[1]
        if self.target_names is not None and len(self.target_names) != nb_targets:
            raise ValueError(f"SDRMetric.update: {nb_targets} targets but target_names "
                             f"has {len(self.target_names)}: {self.target_names}")
        if self._sum is None:
            self._sum = torch.zeros(nb_targets, dtype=torch.float64)
        elif self._sum.shape[0] != nb_targets:
            raise ValueError(f"SDRMetric.update: got {nb_targets} targets after updates "
                             f"with {self._sum.shape[0]}")
        self._sum += scores.sum(dim=0)
        self._count += scores.shape[0]
        return scores

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(per_target (targets,), mean ())`` in dB, float64."""
        if self._sum is None or self._count == 0:
            raise RuntimeError("SDRMetric.compute() called before any update()")
        per_target = self._sum / self._count
        return per_target, per_target.mean()

    def as_dict(self, prefix: str = "sdr") -> dict[str, float]:
        """``{prefix: mean, f"{prefix}/{name}": ...}`` (target index when unnamed)."""
        per_target, mean = self.compute()
        names = self.target_names or [str(j) for j in range(per_target.shape[0])]
        out = {prefix: float(mean)}
        out.update({f"{prefix}/{n}": float(v) for n, v in zip(names, per_target)})
        return out

    @property
    def count(self) -> int:
        """Number of items (batch entries) seen since the last reset."""
        return self._count


METRICS: dict[str, Callable] = {
    "sdr": sdr_db,
    "median_frame_sdr": median_frame_sdr,
}
"""Per-track metrics by name; museval BSSEval v4 and HAAQI are to be added here."""
