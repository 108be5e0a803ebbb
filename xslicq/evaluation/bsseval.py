"""BSSEval scores of one track per 1 s frame: the metrics, museval's framing and silence rules.

Shapes (``J`` targets, ``C`` channels, ``N`` samples, ``F`` frames)::

    refs, ests (J, C, N) -> {score name: (J, F) float64 dB}        museval_frames, sdr_frames,
                                                                   fast_frames
    refs, ests (J, C, N) -> {target: {score name: (F,) float64}}   score_arrays (the rules below)

Metrics (:data:`METRICS`, the ``metric=`` of the command lines):

* ``museval``: BSSEval v4 as in SiSEC 2018 (:func:`museval.evaluate`: time-invariant
  512-tap multichannel distortion filters, metrics in 1 s windows with 1 s hops): SDR,
  SIR, SAR and ISR. About 25 s per 30 s 4-source track on one core.
* ``sdr``: museval's SDR computed directly, in milliseconds. In BSSEval v4 (museval's
  default ``mode="v4"``, image criteria) the four distortion terms add up to
  ``estimate - reference``, so its SDR is exactly ``10 log10(|s|^2 / |s_hat - s|^2)``
  per frame, summed over channels; ``sdr`` computes that with museval's framing and
  silence rules and equals museval's SDR to float precision (tested, also on masked
  estimates). No SIR, SAR or ISR. This is the metric for loops that score many estimates
  (the transform search).
* ``fast_bss_eval``: a *different quantity*, the bss_eval *sources* SDR of the
  ``fast_bss_eval`` package (``sdr_loss`` without permutation, 512-tap filter, float64) on
  the same 1 s frames. Each channel gets its own filter and the channels' target and
  distortion energies are summed before the ratio, as BSSEval v4 sums over channels. About
  9x faster than museval (2.7 s per 30 s 4-source track); values above ~100 dB are capped
  there by the diagonal loading.

How ``fast_bss_eval`` relates to museval: museval's v4 SDR compares the estimate with the
reference itself, ``|s|^2 / |s_hat - s|^2`` (its filters only shape SIR, SAR and ISR). The
sources SDR splits the *estimate* into its projection on 512-tap filters of the reference
(the target part) and the rest. So it forgives errors that a short filter of the reference
explains (a good mask is a time-varying filter: reads higher) and it ignores the estimate's
gain (a mask that passes half the mixture keeps a target part of about ``s / 2``: reads
lower). Per-target median SDR over 1 s frames on music-like tracks
(:func:`xslicq.signals.music_like`; the masks on a 3 s four-stem track, three seeds),
measured, and asserted with the bound in brackets by ``tests/test_evaluate.py``::

    estimates                                museval SDR   fast_bss_eval - museval
    references + noise, 3% interference      ~10 dB        within 0.1 dB    [0.1]
    oracle IRM of the default sliCQT         6 to 15 dB    -0.2 to +1.5 dB  [-1.0 to +2.5]
    untrained separator (all masks ~0.5)     -3 to +3 dB   -6.3 to -3.3 dB  [-8.0 to -1.5]

Single frames differ more (-6.7 dB seen; once -2.11 dB where museval gave +1.55 dB). Use
``sdr`` or ``museval`` for numbers to report or compare; ``fast_bss_eval`` is a different
quantity, for a quick look on its own scale.

Frames follow museval: trailing samples that do not fill a window are dropped (a signal
shorter than one window is one frame), and a frame in which any reference is digital silence
(all zeros) is not scored for any target (NaN); :func:`skipped_frames` says which frames
those are, and the evaluation reports their count. A target whose reference is silent in
the whole track is not scored (all its frames are skipped) and does not enter the others'
evaluation.

A perfect estimate scores a finite ceiling, :data:`CEILING_DB` = 100 dB, for every score
and every metric, and no score exceeds it: a scored frame in which the estimate equals its
reference sample for sample gets 100 dB (museval and the ``sdr`` formula give +inf or NaN
there, fast_bss_eval about 100 dB through its diagonal loading), and higher values are
clamped to 100 dB. So a perfect stem enters every median and mean like any other (museval
stores such frames as NaN, which left them out: exact vocals with the mixture for the other
stems averaged *below* the mixture for every stem). 100 dB is beyond what a 16-bit reference
can show (its quantisation noise lies about 98 dB below a full-scale sine). The training
metric :func:`xslicq.metrics.sdr_db` has the same ceiling. NaN means "not scored" only.

One deliberate difference from museval: museval also skips a frame in which an *estimate*
is digital silence, so an estimate that is silent where the reference sounds (or one too
short and zero-padded) would score as if perfect there. Here such a frame is scored: the
estimate gets a -200 dBFS dither in it (a warning says so), so it scores about 0 dB SDR
(``fast_bss_eval``, being blind to the estimate's scale, about -19 dB), as an estimate that
is all zeros does. Estimates must have the references' shape; ``align`` of
:func:`score_arrays` (:mod:`xslicq.evaluation.estimates`) says how to score another length.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import EvaluationConfigError, EvaluationError
from .estimates import check_align, fit_length, float_audio

log = logging.getLogger(__name__)

__all__ = [
    "CEILING_DB",
    "METRICS",
    "EvaluationError",
    "WINDOW_SECONDS",
    "check_metric",
    "fast_frames",
    "fit_length",
    "museval_frames",
    "score_arrays",
    "sdr_frames",
    "skipped_frames",
]

METRICS: dict[str, tuple[str, ...]] = {
    "museval": ("SDR", "SIR", "SAR", "ISR"),
    "sdr": ("SDR",),
    "fast_bss_eval": ("SDR",),
}
"""Metric name -> the scores it gives per target (dB)."""

CEILING_DB = 100.0
"""The score of a perfect estimate (zero error) and the highest score any metric gives, dB
(every score of :data:`METRICS` and :func:`xslicq.metrics.sdr_db`; see the module docstring)."""

WINDOW_SECONDS = 1.0
FILTER_LENGTH = 512
DITHER = 1e-10  # -200 dBFS: amplitude of the dither of an all-zero estimate
FAST_CHUNK_FRAMES = 16  # frames per fast_bss_eval call (bounds its memory)
LOAD_DIAG = 1e-10  # fast_bss_eval: diagonal loading of the normalised filter
# equations


# ------------------------------------------------------------------ the metrics
def check_metric(metric: str) -> None:
    """Raise a clear error for an unknown metric or a missing package it needs."""
    if metric not in METRICS:
        raise EvaluationConfigError(
            f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}"
        )
    _import_metric(metric)


def _import_metric(metric: str):
    if metric == "sdr":
        return np  # plain NumPy
    package, hint = {
        "museval": ("museval", "museval"),
        "fast_bss_eval": ("fast_bss_eval", "fast-bss-eval"),
    }[metric]
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise EvaluationError(
            f"metric={metric} needs the {package} package, which is not installed ({err}); "
            f"install it with `pip install -c constraints.txt {hint}`"
        ) from err


def _frame_geometry(samples: int, sample_rate: float, window_seconds: float) -> tuple[int, int]:
    """``(frames, frame_length)`` of museval's framing with hop = window."""
    win = int(window_seconds * sample_rate)
    if win < 1:
        raise EvaluationError(
            f"window of {window_seconds} s at {sample_rate} Hz is shorter than one sample"
        )
    if win < samples:
        return samples // win, win
    return 1, samples


def _silent(x: np.ndarray) -> np.ndarray:
    """museval's silence test over the last two axes (channels, samples): the channel sum
    is zero at every sample."""
    return np.all(x.sum(axis=-2) == 0, axis=-1)


def _ceiling(
    scores: dict[str, np.ndarray],
    refs: np.ndarray,
    ests: np.ndarray,
    sample_rate: float,
    window_seconds: float,
) -> dict[str, np.ndarray]:
    """Scores with :data:`CEILING_DB`: a frame of a target whose estimate equals the reference
    scores the ceiling (unless a reference or an estimate is silent there: not scored), higher
    values (+inf included) are clamped to it, and what is left that is not finite is NaN.

    Args:
        scores: ``{score name: (J, F)}`` dB of a frame function.
        refs, ests: (J, C, N) float64, framed as the scores.
    """
    J, C, N = refs.shape
    F, L = _frame_geometry(N, sample_rate, window_seconds)
    r = refs[..., : F * L].reshape(J, C, F, L)
    e = ests[..., : F * L].reshape(J, C, F, L)
    exact = np.all(r == e, axis=(1, 3))  # (J, F)
    skip = _silent(r.transpose(2, 0, 1, 3)).any(-1) | _silent(e.transpose(2, 0, 1, 3)).any(-1)
    exact &= ~skip[None, :]
    out = {}
    for name, values in scores.items():
        v = np.array(values, dtype=np.float64)
        v[exact] = CEILING_DB
        with np.errstate(invalid="ignore"):
            v[v > CEILING_DB] = CEILING_DB  # +inf too; NaN compares False
        v[~np.isfinite(v)] = np.nan
        out[name] = v
    return out


def museval_frames(
    refs: np.ndarray, ests: np.ndarray, sample_rate: float, window_seconds: float = WINDOW_SECONDS
) -> dict[str, np.ndarray]:
    """BSSEval v4 scores per frame with museval.

    Args:
        refs, ests: (targets, channels, samples) float arrays, no target silent throughout.
        sample_rate: Hz.
    Returns:
        ``{"SDR", "SIR", "SAR", "ISR"}`` -> (targets, frames) float64 dB; NaN for frames
        museval does not score (silence); :data:`CEILING_DB` for frames where the estimate
        equals the reference (museval gives inf or NaN there), and no value above it.
    """
    museval = _import_metric("museval")
    refs = np.asarray(refs, dtype=np.float64)
    ests = np.asarray(ests, dtype=np.float64)
    win = int(window_seconds * sample_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        sdr, isr, sir, sar = museval.evaluate(
            np.moveaxis(refs, 1, 2), np.moveaxis(ests, 1, 2), win=win, hop=win, mode="v4"
        )
    out = {"SDR": sdr, "SIR": sir, "SAR": sar, "ISR": isr}
    return _ceiling(out, refs, ests, sample_rate, window_seconds)


def sdr_frames(
    refs: np.ndarray, ests: np.ndarray, sample_rate: float, window_seconds: float = WINDOW_SECONDS
) -> dict[str, np.ndarray]:
    """museval's BSSEval v4 SDR per frame, computed directly (see the module docstring).

    Args:
        refs, ests: (targets, channels, samples) float arrays.
        sample_rate: Hz.
    Returns:
        ``{"SDR": (targets, frames)}`` float64 dB; NaN where museval does not score: frames
        in which any reference or any estimate is silent; :data:`CEILING_DB` where the
        estimate equals the reference, and no value above it.
    """
    refs = np.asarray(refs, dtype=np.float64)
    ests = np.asarray(ests, dtype=np.float64)
    J, C, N = refs.shape
    F, L = _frame_geometry(N, sample_rate, window_seconds)
    r = refs[..., : F * L].reshape(J, C, F, L)
    e = ests[..., : F * L].reshape(J, C, F, L)
    target = np.square(r).sum(axis=(1, 3))  # (J, F)
    error = np.square(e - r).sum(axis=(1, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        sdr = 10.0 * np.log10(target / error)
    skip = _silent(r.transpose(2, 0, 1, 3)).any(-1) | _silent(e.transpose(2, 0, 1, 3)).any(-1)
    sdr[:, skip] = np.nan
    return _ceiling({"SDR": sdr}, refs, ests, sample_rate, window_seconds)


def fast_frames(
    refs: np.ndarray,
    ests: np.ndarray,
    sample_rate: float,
    window_seconds: float = WINDOW_SECONDS,
    filter_length: int = FILTER_LENGTH,
) -> dict[str, np.ndarray]:
    """bss_eval *sources* SDR per frame with fast_bss_eval (metric ``fast_bss_eval``; not
    museval's SDR, see the module docstring).

    Only the frames museval scores are computed. A channel that is silent in the
    reference or the estimate of a frame gives no target energy (its estimate energy all
    counts as distortion). The filter equations get a ``LOAD_DIAG`` diagonal loading (of
    the normalised auto-correlation; museval itself adds machine epsilon) so that tonal
    references with singular correlation matrices are scored instead of failing.

    Runs torch with one thread: with more, its batched ``linalg.solve`` (MKL) fails with
    "Pivots given to lu_solve must all be greater or equal to 1"; the caller's thread count
    is restored afterwards.

    Args:
        refs, ests: (targets, channels, samples) float arrays.
        sample_rate: Hz.
    Returns:
        ``{"SDR": (targets, frames)}`` float64 dB, NaN where museval does not score;
        :data:`CEILING_DB` where the estimate equals the reference, no value above it.
    """
    fbe = _import_metric("fast_bss_eval")
    import torch

    refs = np.asarray(refs, dtype=np.float64)
    ests = np.asarray(ests, dtype=np.float64)
    J, C, N = refs.shape
    F, L = _frame_geometry(N, sample_rate, window_seconds)

    def framed(x):  # (J, C, F*L) -> (F, C, J, L)
        return x[..., : F * L].reshape(J, C, F, L).transpose(2, 1, 0, 3)

    r, e = framed(refs), framed(ests)
    skip = _silent(r.transpose(0, 2, 1, 3)).any(-1) | _silent(e.transpose(0, 2, 1, 3)).any(-1)
    scored = np.flatnonzero(~skip)
    sdr = np.full((F, J), np.nan)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for i0 in range(0, len(scored), FAST_CHUNK_FRAMES):
                idx = scored[i0 : i0 + FAST_CHUNK_FRAMES]
                rc, ec = r[idx], e[idx]  # (f, C, J, L)
                energy = np.square(ec).sum(-1)  # (f, C, J)
                dead = (np.square(rc).sum(-1) == 0) | (energy == 0)  # silent channel
                if dead.any():  # any stand-in; its result is unused
                    rc, ec = rc.copy(), ec.copy()
                    rc[dead] = ec[dead] = np.sin(np.arange(L) * 0.1 + 0.3) + 1e-3 * np.cos(
                        np.arange(L) * 1.7
                    )
                neg = fbe.sdr_loss(
                    torch.from_numpy(ec),
                    torch.from_numpy(rc),
                    filter_length=min(filter_length, L),
                    pairwise=False,
                    load_diag=LOAD_DIAG,
                )
                sdr_c = -neg.numpy()  # (f, C, J)
                with np.errstate(over="ignore"):
                    # sdr_c = 10 log10(T / D) with T + D = energy (an orthogonal split)
                    target = energy / (1.0 + 10.0 ** (-sdr_c / 10.0))
                    distortion = energy / (1.0 + 10.0 ** (sdr_c / 10.0))
                bad = dead | np.isnan(sdr_c)
                target = np.where(bad, 0.0, target)
                distortion = np.where(bad, energy, distortion)
                with np.errstate(divide="ignore", invalid="ignore"):
                    sdr[idx] = 10.0 * np.log10(target.sum(1) / distortion.sum(1))
    finally:
        torch.set_num_threads(threads)
    return _ceiling({"SDR": sdr.T}, refs, ests, sample_rate, window_seconds)


_FRAME_FUNCTIONS: dict[str, Callable] = {
    "museval": museval_frames,
    "sdr": sdr_frames,
    "fast_bss_eval": fast_frames,
}


# ------------------------------------------------------------------- one track
def _framed(x: np.ndarray, sample_rate: float) -> np.ndarray:
    """(J, C, N) -> (J, F, C, L): museval's frames (trailing samples dropped)."""
    J, C, N = x.shape
    F, L = _frame_geometry(N, sample_rate, WINDOW_SECONDS)
    return x[..., : F * L].reshape(J, C, F, L).transpose(0, 2, 1, 3)


def skipped_frames(refs: np.ndarray, sample_rate: float) -> np.ndarray:
    """The frames :func:`score_arrays` does not score because a reference is silent there.

    Args:
        refs: (targets, channels, samples).
        sample_rate: Hz.
    Returns:
        (targets, frames) bool: every frame of a target whose reference is silent throughout;
        for the others, the frames in which any reference that is not silent throughout is
        digital silence (the same frames for all of them).
    """
    refs = np.asarray(refs)
    whole = _silent(refs)  # (J,): silent throughout, not scored at all
    silent = _silent(_framed(refs, sample_rate))  # (J, F)
    out = np.broadcast_to(silent[~whole].any(axis=0), silent.shape).copy()
    out[whole] = True
    return out


def _prepare(
    track_name: str,
    refs: np.ndarray,
    ests: np.ndarray,
    targets: Sequence[str],
    sample_rate: float,
):
    """float64 copies without the targets whose reference is silent; an estimate frame that
    is digital silence in a frame that is scored gets the dither added (antiphase stereo, which
    museval's test also calls silence, keeps its content)."""
    refs = np.asarray(refs, dtype=np.float64)
    ests = np.array(ests, dtype=np.float64)
    keep = ~_silent(refs)
    if not keep.all():
        log.info(
            "track %s: reference of %s is silent; not scored",
            track_name,
            [t for t, k in zip(targets, keep) if not k],
        )
    refs, ests = refs[keep], ests[keep]
    if not keep.any():
        return refs, ests, keep
    F, L = _frame_geometry(refs.shape[-1], sample_rate, WINDOW_SECONDS)
    scored = ~_silent(_framed(refs, sample_rate)).any(axis=0)  # (F,)
    quiet = _silent(_framed(ests, sample_rate)) & scored  # (J', F)
    if quiet.any():
        kept = [t for t, k in zip(targets, keep) if k]
        counts = ", ".join(
            f"{t} in {n} of {int(scored.sum())}" for t, n in zip(kept, quiet.sum(1)) if n
        )
        warnings.warn(
            f"track {track_name}: estimate is all zeros ({counts} scored frames); those "
            f"frames are scored with a {DITHER:g} dither, as errors (about 0 dB SDR)",
            stacklevel=3,
        )
        rng = np.random.default_rng(0)
        for j, f in zip(*np.nonzero(quiet)):
            ests[j, :, f * L : (f + 1) * L] += DITHER * rng.standard_normal((ests.shape[1], L))
    return refs, ests, keep


def score_arrays(
    refs: np.ndarray,
    ests: np.ndarray,
    sample_rate: float,
    metric: str,
    targets: Sequence[str],
    track_name: str = "track",
    align: str | None = None,
):
    """Framewise scores of one track given as arrays, with the rules of the module docstring.

    Args:
        refs, ests: (targets, channels, samples), the same shape unless ``align``.
        sample_rate: Hz.
        metric: a key of :data:`METRICS`.
        targets: names of the targets, in that order.
        align: ``None`` (lengths must match), ``"crop"`` (both cut to the shorter) or
            ``"pad"`` (estimates cut or zero-padded to the references' length; the padding
            scores as error), see :mod:`xslicq.evaluation.estimates`.
    Returns:
        ``{target: {score: (frames,) float64}}``; a target with a silent reference gets
        all-NaN frames; :func:`skipped_frames` of the (aligned) references says which
        frames silence left out.
    Raises:
        EvaluationError: the shapes differ (other than in length with ``align``), or a dtype
            or scale that :func:`~xslicq.evaluation.estimates.float_audio` refuses (integer
            PCM is scored at its full scale: int16 / 32768).
    """
    align = check_align(align)
    refs = float_audio(refs, f"track {track_name}: references of {list(targets)}", np.float64)
    ests = float_audio(ests, f"track {track_name}: estimates of {list(targets)}", np.float64)
    if refs.ndim != 3 or refs.shape[:2] != ests.shape[:2]:
        raise EvaluationError(
            f"track {track_name}: references {refs.shape} and estimates "
            f"{ests.shape} of {list(targets)} must both be (targets, channels, samples)"
        )
    if refs.shape[-1] != ests.shape[-1]:
        if align is None:
            raise EvaluationError(
                f"track {track_name}: estimates of {list(targets)} have shape {ests.shape}, "
                f"the references {refs.shape}: {ests.shape[-1]} samples instead of "
                f"{refs.shape[-1]}. Pass align='crop' (score the samples both have) or "
                "align='pad' (the padding counts as error) to score them"
            )
        n = min(refs.shape[-1], ests.shape[-1]) if align == "crop" else refs.shape[-1]
        refs, ests = refs[..., :n], fit_length(ests, n)
    r, e, keep = _prepare(track_name, refs, ests, targets, sample_rate)
    names = METRICS[metric]
    frames, _ = _frame_geometry(refs.shape[-1], sample_rate, WINDOW_SECONDS)
    out = {t: {m: np.full(frames, np.nan) for m in names} for t in targets}
    if keep.any():
        scores = _FRAME_FUNCTIONS[metric](r, e, sample_rate)
        for j, target in enumerate(t for t, k in zip(targets, keep) if k):
            for m in names:
                out[target][m] = scores[m][j]
    return out
