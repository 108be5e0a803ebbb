"""A separator's estimates checked against the references before anything is scored.

    separator output ({target: (C, N')}, or ({target: (C, N')}, rate))
      + the references' (C, N) and rate    -> check_estimates -> {target: (C, n) float32}
                                              or one EvaluationError naming the track, the
                                              target and both shapes (or both rates)

Channels and sample rate must equal the references'; nothing here resamples or remixes. The
length must be equal too unless ``align`` (:data:`ALIGNS`) says how to score another length:

* ``None`` (the default): a different length is an error.
* ``"crop"``: estimates and references are cut to the shortest of them (``n <= N``), so only
  the samples they share are scored: an estimate half as long is scored on half the track.
* ``"pad"``: estimates are cut, or zero-padded, to the references' length (``n = N``). The
  padding counts as error: an estimate frame that is digital silence where the references
  sound is scored, not skipped (:mod:`xslicq.evaluation.bsseval`), so an estimate half as
  long scores about 0 dB SDR on the missing half.

Estimates must be audio with full scale 1.0 (:func:`float_audio`): float arrays are taken as
they are, integer PCM (int16, int32, uint8, ...) is converted to float by its full scale
(int16 / 32768), as soundfile reads a PCM file; any other dtype (bool, complex) and float audio
peaking above :data:`MAX_PEAK` (integer PCM stored as float) are refused. Scored as raw
integers, a perfect int16 estimate read about -90 dB.

Used by :func:`xslicq.evaluation.evaluate`, :func:`xslicq.evaluation.score_track`,
:func:`xslicq.evaluation.score_arrays` and :func:`xslicq.cadenza.evaluate_cadenza`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import EvaluationError

__all__ = [
    "ALIGNS",
    "MAX_PEAK",
    "check_align",
    "check_estimates",
    "fit_length",
    "float_audio",
    "separator_output",
]

ALIGNS = ("crop", "pad")
"""How estimates of another length than the references may be scored (``align=``)."""

MAX_PEAK = 100.0
"""The highest peak taken in float audio, whose full scale is 1.0 (40 dB above it): a float
estimate beyond it is refused as integer PCM stored as float (16-bit PCM peaks up to 32767)."""


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


_COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


def check_align(align) -> str | None:
    """``align`` if it is ``None`` or one of :data:`ALIGNS`, else a clear error."""
    if align is None or align in ALIGNS:
        return align
    raise EvaluationError(
        f"align must be null (lengths must match), 'crop' (score the samples estimate and "
        f"reference share) or 'pad' (pad the estimate; the padding counts as error), got {align!r}"
    )


def float_audio(x, what: str, dtype=np.float32) -> np.ndarray:
    """``x`` (numpy or torch) as float audio with full scale 1.0, or a clear error.

    Float input keeps its values (cast to ``dtype``); integer PCM is divided by its full
    scale, ``2 ** (bits - 1)`` (int16 by 32768, int32 by 2**31), unsigned PCM centred first
    (uint8: ``(x - 128) / 128``), as soundfile reads PCM files.

    Args:
        what: names the array in the messages (``"track t: estimate of 'vocals'"``).
    Raises:
        EvaluationError: another dtype (bool, complex, object), or float values peaking above
            :data:`MAX_PEAK` (NaN and inf are left to the caller's check).
    """
    if hasattr(x, "detach"):  # torch: bfloat16 and float16 have no numpy twin to go through
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()
    x = np.asarray(x)
    kind = x.dtype.kind
    if kind in "iu":
        full = 2.0 ** (8 * x.dtype.itemsize - 1)
        return ((x.astype(np.float64) - (full if kind == "u" else 0.0)) / full).astype(dtype)
    if kind != "f":
        raise EvaluationError(
            f"{what} has dtype {x.dtype}; give float audio (full scale 1.0) or integer PCM "
            "(int16, int32: scaled by their full scale)"
        )
    peak = float(np.max(np.abs(x), initial=0.0))  # NaN or inf: left to the caller's check
    if np.isfinite(peak) and peak > MAX_PEAK:
        raise EvaluationError(
            f"{what} peaks at {peak:.1f} (float audio has full scale 1.0; at most {MAX_PEAK:g} "
            "is taken): is it integer PCM stored as float? Divide it by its full scale "
            "(32768 for 16-bit) or pass the integer array itself"
        )
    return x.astype(dtype, copy=False)


def separator_output(output) -> tuple[Mapping, float | None]:
    """``(stems, rate)`` of what a separator returned: ``{target: audio}`` (rate ``None``:
    the rate it was given) or ``({target: audio}, rate)``."""
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], Mapping):
        return output[0], output[1]
    return output, None


def _rate_hint(samples: int, expected: int, sample_rate: float) -> str:
    """A hint when ``samples`` is the length the references would have at a common rate."""
    if not samples or not expected or abs(samples / expected - 1) < 0.01:
        return ""
    for rate in _COMMON_RATES:
        if rate != sample_rate and abs(samples * sample_rate / expected - rate) < 0.002 * rate:
            return f"; that is the length at {rate} Hz: is the estimate at another sample rate?"
    return ""


def check_estimates(
    estimates,
    targets: Sequence[str],
    shape: Sequence[int],
    sample_rate: float,
    name: str,
    align: str | None = None,
    label: str = "track",
) -> dict[str, np.ndarray]:
    """The estimates of ``targets`` as float32 arrays of one length, ready to score.

    Args:
        estimates: the separator's output: ``{target: (channels, samples)}`` (numpy or
            torch) at ``sample_rate``, or ``({target: ...}, rate)`` with the rate it is at.
        targets: the targets to keep (each must be a key of the estimates).
        shape: the references' ``(channels, samples)``.
        sample_rate: the references' rate in Hz.
        name: the track's name, for the messages.
        align: ``None``, ``"crop"`` or ``"pad"`` (see the module docstring).
        label: what the messages call a track (``"song"`` for the Cadenza pipeline).
    Returns:
        ``{target: (channels, n) float32}`` in ``targets`` order; ``n`` is the references'
        length, or with ``align="crop"`` possibly less (cut the references to it).
    Raises:
        EvaluationError: not a dict of stems, a target missing, another sample rate, another
            number of channels, another length (unless ``align``), an empty estimate,
            NaN / inf values, or a dtype or scale :func:`float_audio` refuses (integer PCM
            is converted by its full scale); the message names the track, the target and
            both values.
    """
    align = check_align(align)
    channels, length = int(shape[0]), int(shape[1])
    stems, rate = separator_output(estimates)
    where = f"{label} {name}"
    if not isinstance(stems, Mapping):
        raise EvaluationError(
            f"{where}: the separator returned {type(stems).__name__}, expected a dict of stems"
        )
    if rate is not None and rate != sample_rate:
        raise EvaluationError(
            f"{where}: the separator returned {list(targets)} at {rate} Hz, the references "
            f"are at {sample_rate} Hz; resample the estimates to {sample_rate} Hz "
            "(evaluation does not resample)"
        )
    out = {}
    for t in targets:
        if t not in stems:
            raise EvaluationError(
                f"{where}: the separator returned no estimate for target {t!r} "
                f"(got {sorted(stems)})"
            )
        x = float_audio(stems[t], f"{where}: estimate of {t!r}")
        if x.ndim != 2:
            raise EvaluationError(
                f"{where}: estimate of {t!r} has shape {x.shape}, expected (channels, samples) "
                f"like the reference {(channels, length)}"
            )
        if x.shape[0] != channels:
            raise EvaluationError(
                f"{where}: estimate of {t!r} has shape {x.shape}, the reference "
                f"{(channels, length)}: channel count {x.shape[0]} instead of {channels} "
                "(align does not change channels)"
            )
        if x.shape[1] == 0:
            raise EvaluationError(f"{where}: estimate of {t!r} is empty, shape {x.shape}")
        if x.shape[1] != length and align is None:
            raise EvaluationError(
                f"{where}: estimate of {t!r} has shape {x.shape}, the reference "
                f"{(channels, length)}: {x.shape[1]} samples instead of {length} "
                f"({x.shape[1] / sample_rate:.3f} s instead of {length / sample_rate:.3f} s)"
                f"{_rate_hint(x.shape[1], length, sample_rate)}. Pass align='crop' (score the "
                "samples both have) or align='pad' (the padding counts as error) to score it"
            )
        if not np.all(np.isfinite(x)):
            raise EvaluationError(f"{where}: estimate of {t!r} contains NaN or inf")
        out[t] = x
    n = length
    if align == "crop":
        n = min([length] + [x.shape[1] for x in out.values()])
    return {t: fit_length(x, n) for t, x in out.items()}
