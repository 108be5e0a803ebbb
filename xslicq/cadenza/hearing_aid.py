"""The CAD1 baseline hearing aid: NAL-R per ear, the optional compressor, the remix clip.

one ear's signal (N,) -> NAL-R FIR from that ear's audiogram (delay removed)
                      -> optional compressor (:data:`COMPRESSOR`)        (hearing_aid)
{stem: (2, N)} processed -> sum per ear -> tanh soft clip -> clip to [-1, 1]  (remix_stems)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import checks
from .errors import CadenzaError, clarity_api

__all__ = [
    "COMPRESSOR",
    "MIN_SAMPLE_RATE",
    "NALR_TAPS",
    "check_hearing_aid_rate",
    "hearing_aid",
    "nalr_fir",
    "remix_stems",
    "soft_clip",
]

NALR_TAPS = 220
"""FIR order of the NAL-R filter (the CAD1 baseline's ``nalr.nfir``; ``nfir + 1`` taps)."""

MIN_SAMPLE_RATE = 16000
"""The lowest sample rate in Hz the hearing aid takes: NAL-R prescribes gains up to 6 kHz."""
NALR_WHY = " (NAL-R prescribes gains up to 6 kHz)"

COMPRESSOR = {
    "threshold": 0.35,
    "attenuation": 0.1,
    "attack": 50.0,
    "release": 1000.0,
    "rms_buffer_size": 0.064,
}
"""The CAD1 baseline's compressor settings (``clarity.enhancer.compressor.Compressor``)."""


def check_hearing_aid_rate(sample_rate) -> int:
    """``sample_rate`` as an int, or a :class:`CadenzaError` naming it when it is not an
    integer >= :data:`MIN_SAMPLE_RATE` (:func:`xslicq.checks.check_sample_rate`)."""
    return checks.check_sample_rate(
        sample_rate, (MIN_SAMPLE_RATE, None), form="integer", error=CadenzaError, hint=NALR_WHY
    )


def nalr_fir(audiogram, sample_rate: int, nfir: int = NALR_TAPS) -> np.ndarray:
    """NAL-R FIR taps for one ear's audiogram.

    Returns:
        (nfir + 1,) float64, linear phase with a delay of ``nfir / 2`` samples, designed at
        ``sample_rate`` (pyclarity interpolates the audiogram to 250-6000 Hz on a log axis).
    """
    sample_rate = check_hearing_aid_rate(sample_rate)
    if not checks.is_int(nfir) or nfir < 2 or nfir % 2:
        raise CadenzaError(f"nfir must be an even integer >= 2, got {nfir!r}")
    fir, _ = clarity_api()["NALR"](int(nfir), sample_rate).build(audiogram)
    return np.asarray(fir, dtype=np.float64)


def hearing_aid(
    signal, audiogram, sample_rate: int, compressor: bool = False, nfir: int = NALR_TAPS
) -> np.ndarray:
    """The CAD1 baseline hearing aid for one ear: NAL-R, then optionally the compressor.

    Args:
        signal: (N,) mono audio at ``sample_rate``.
        audiogram: ``clarity.utils.audiogram.Audiogram`` of the ear.
        compressor: apply ``clarity.enhancer.compressor.Compressor`` with :data:`COMPRESSOR`.
    Returns:
        (N,) float64, aligned with ``signal`` (the FIR's delay removed), not clipped.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise CadenzaError(f"hearing_aid takes one mono signal (samples,), got shape {x.shape}")
    fir = nalr_fir(audiogram, sample_rate, nfir)
    y = np.convolve(x, fir)[nfir // 2 : nfir // 2 + len(x)]
    if compressor:
        y, _, _ = clarity_api()["Compressor"](fs=float(sample_rate), **COMPRESSOR).process(y)
    return np.asarray(y, dtype=np.float64)


def soft_clip(x) -> np.ndarray:
    """``tanh`` soft clip followed by a hard clip to [-1, 1] (the baseline's remix clip).

    Returns:
        float64 of the shape of ``x``.
    """
    return np.clip(np.tanh(np.asarray(x, dtype=np.float64)), -1.0, 1.0)


def remix_stems(processed: Mapping[str, np.ndarray], soft: bool = True) -> np.ndarray:
    """Sum the processed stems per ear and clip: ``{stem: (2, N)}`` -> (2, N) in [-1, 1].

    ``soft=True`` soft-clips (``tanh``) before the hard clip, as the baseline's
    ``soft_clip: True``; ``soft=False`` only clips.
    """
    if not processed:
        raise CadenzaError("nothing to remix: no processed stems")
    mix = np.sum([np.asarray(x, dtype=np.float64) for x in processed.values()], axis=0)
    return soft_clip(mix) if soft else np.clip(mix, -1.0, 1.0)
