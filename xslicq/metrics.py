"""Training-time metrics (not for backpropagation; see :mod:`xslicq.losses` for training).

Shapes (``B`` batch, ``J`` targets, ``C`` channels, ``T`` samples)::

    est, ref   (..., C, T) -- typically (B, J, C, T) per batch or (J, C, T) per track

* :func:`sdr_db` -- the global "new SDR" of the Music Demixing challenge, one value
  per leading index: ``10 log10((||ref||^2 + eps) / (||ref - est||^2 + eps))``, at most
  :data:`~xslicq.evaluation.bsseval.CEILING_DB` (100 dB), the score of a perfect estimate
  in every metric of this package. The validation SDR of
  :class:`xslicq.system.SeparationSystem`.

Metrics are computed in float64 and detached from any graph. The BSSEval scores of
separated tracks (museval, framewise) are in :mod:`xslicq.evaluation`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sdr_db"]

CEILING_DB = 100.0  # = xslicq.evaluation.bsseval.CEILING_DB (a test checks); no import of
# xslicq.evaluation here, which the training loop does not need


def _check_pair(est, ref, what: str) -> None:
    if tuple(est.shape) != tuple(ref.shape):
        raise ValueError(
            f"{what}: est shape {tuple(est.shape)} does not match ref shape {tuple(ref.shape)}"
        )
    if len(est.shape) < 2:
        raise ValueError(
            f"{what}: inputs need at least 2 axes "
            f"(..., channels, samples), got shape {tuple(est.shape)}"
        )


def sdr_db(est, ref, eps: float = 1e-8):
    """Global SDR in dB over the last two axes (channels, samples).

    Args:
        est, ref: (..., channels, samples), both numpy arrays or both torch tensors.
    Returns:
        (...) float64 SDRs, numpy for numpy input and a detached tensor (on the
        input's device) for torch input. A perfect estimate (``est == ref``, ``ref`` not all
        zeros) scores ``CEILING_DB`` (100 dB) and no value exceeds it; an all-zero estimate
        of an all-zero reference scores 0 dB.
    """
    _check_pair(est, ref, "sdr_db")
    if isinstance(est, torch.Tensor) or isinstance(ref, torch.Tensor):
        if not (isinstance(est, torch.Tensor) and isinstance(ref, torch.Tensor)):
            raise ValueError(
                f"sdr_db: est and ref must both be numpy arrays or both torch "
                f"tensors, got {type(est).__name__} and {type(ref).__name__}"
            )
        est, ref = est.detach().double(), ref.detach().double()
        num = ref.square().sum(dim=(-2, -1))
        den = (ref - est).square().sum(dim=(-2, -1))
        sdr = 10.0 * torch.log10((num + eps) / (den + eps))
        perfect = (den == 0) & (num > 0)
        return sdr.masked_fill(perfect, CEILING_DB).clamp(max=CEILING_DB)
    est, ref = np.asarray(est, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    num = np.square(ref).sum(axis=(-2, -1))
    den = np.square(ref - est).sum(axis=(-2, -1))
    sdr = 10.0 * np.log10((num + eps) / (den + eps))
    return np.minimum(np.where((den == 0) & (num > 0), CEILING_DB, sdr), CEILING_DB)
