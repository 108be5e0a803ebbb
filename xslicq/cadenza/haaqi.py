"""HAAQI of one ear's processed stem against its clean reference, with CAD1's conventions.

    processed (N,), reference (N,) at the song's rate
      -> silent reference (RMS < SILENT_RMS)? NaN, not scored
      -> level1 = 65 dB SPL - 20 log10(rms(reference))
      -> reference convention: cad1 (raw reference, HAAQI's own NAL-R) or matched (the same
         NAL-R as the processed stem)
      -> both resampled to 24 kHz -> clarity.evaluator.haaqi.compute_haaqi -> [0, 1]

docs/cadenza.md explains the two conventions and why a perfect separation scores below 1
with ``cad1``.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import CadenzaError, clarity_api
from .hearing_aid import NALR_TAPS, check_hearing_aid_rate, hearing_aid

__all__ = [
    "HAAQI_SAMPLE_RATE",
    "REFERENCES",
    "REFERENCE_SPL",
    "SILENT_RMS",
    "check_reference_mode",
    "score_stem",
]

REFERENCES = ("cad1", "matched")
"""The reference conventions: ``cad1`` (as CAD1 scored) and ``matched`` (ceiling ~1)."""

HAAQI_SAMPLE_RATE = 24000
"""Hz at which HAAQI runs (CAD1's ``stem_sample_rate``; HAAQI's own model rate)."""

REFERENCE_SPL = 65.0
"""dB SPL at which the reference is presented (``level1`` maps its RMS to this level)."""

SILENT_RMS = 1e-6
"""-120 dBFS: a reference channel with a lower RMS is digitally silent and not scored."""


def check_reference_mode(reference: str) -> str:
    """``reference`` if it is one of :data:`REFERENCES`, else a :class:`CadenzaError`."""
    if reference not in REFERENCES:
        raise CadenzaError(
            f"unknown reference convention {reference!r}; choose one of {', '.join(REFERENCES)}"
        )
    return reference


def score_stem(
    processed,
    reference,
    sample_rate: int,
    audiogram,
    reference_mode: str = "cad1",
    nfir: int = NALR_TAPS,
) -> float:
    """HAAQI of one ear's processed stem against the clean reference stem of that ear.

    Args:
        processed: (N,) the hearing-aid output for the stem (amplified).
        reference: (N,) the clean, *unamplified* reference stem; the convention
            (``reference_mode``: ``cad1`` or ``matched``, see docs/cadenza.md) decides
            how its NAL-R amplification is applied.
        sample_rate: Hz of both; they are resampled to 24 kHz for HAAQI.
        audiogram: ``clarity.utils.audiogram.Audiogram`` of the ear.
    Returns:
        HAAQI in [0, 1]; NaN when the reference is digitally silent.
    """
    c = clarity_api()
    sample_rate = check_hearing_aid_rate(sample_rate)
    check_reference_mode(reference_mode)
    proc = np.asarray(processed, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if proc.ndim != 1 or ref.ndim != 1 or len(proc) == 0 or len(ref) == 0:
        raise CadenzaError(
            f"score_stem takes two non-empty mono signals, got shapes {proc.shape} and {ref.shape}"
        )
    rms = float(np.sqrt(np.mean(ref**2)))
    if rms < SILENT_RMS:
        return math.nan
    level1 = REFERENCE_SPL - 20.0 * math.log10(rms)
    if reference_mode == "matched":
        ref, equalisation = hearing_aid(ref, audiogram, sample_rate, nfir=nfir), 2
    else:
        equalisation = 1
    proc = c["resample"](proc, sample_rate, HAAQI_SAMPLE_RATE)
    ref = c["resample"](ref, sample_rate, HAAQI_SAMPLE_RATE)
    with np.errstate(divide="ignore", invalid="ignore"):  # log10(0) of a silent estimate
        score = c["compute_haaqi"](
            processed_signal=proc,
            reference_signal=ref,
            processed_sample_rate=HAAQI_SAMPLE_RATE,
            reference_sample_rate=HAAQI_SAMPLE_RATE,
            audiogram=audiogram,
            equalisation=equalisation,
            level1=level1,
        )
    return float(score)
