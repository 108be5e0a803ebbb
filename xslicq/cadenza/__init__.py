"""Cadenza CAD1 task 1: separate, fit a hearing aid per ear, remix, and score with HAAQI.

One (song, listener) job, one line per stage (``N`` samples at the song's rate)::

    mixture (2, N)     -> separator (main process)      -> {vocals, drums, bass, other} (2, N)
    stem, ear          -> hearing_aid: NAL-R from that ear's audiogram (+ compressor)  (N,)
    processed stems    -> remix_stems: sum per ear, tanh soft clip, clip to [-1, 1]   (2, N)
    processed, reference stem of the same ear -> score_stem: 24 kHz HAAQI            float
    rows (song, listener, stem, ear, haaqi) -> scores.csv, summary.json, summary.md

Modules, in that order: :mod:`.listeners` (CAD1 listener files), :mod:`.hearing_aid`
(NAL-R, compressor, clip), :mod:`.haaqi` (scoring and its reference conventions),
:mod:`.pipeline` (``process_song``, ``evaluate_cadenza`` with worker processes, ``run`` from
the config), :mod:`.reports` (means and tables), :mod:`.errors`; the command line is
``python -m xslicq.cadenza`` (:mod:`.__main__`). The training callback that logs
``val/haaqi`` is :class:`xslicq.callbacks.HAAQICallback`.

docs/cadenza.md describes the CAD1 conventions, the reference-alignment caveat of HAAQI
(a perfect separation scores below 1 with ``reference=cad1``) and the costs.
"""

from .errors import CadenzaError
from .haaqi import HAAQI_SAMPLE_RATE, REFERENCE_SPL, REFERENCES, SILENT_RMS, score_stem
from .hearing_aid import (
    COMPRESSOR,
    MIN_SAMPLE_RATE,
    NALR_TAPS,
    hearing_aid,
    nalr_fir,
    remix_stems,
    soft_clip,
)
from .listeners import EARS, EXAMPLE_LISTENERS, load_listeners, save_listeners
from .pipeline import evaluate_cadenza, process_song, run
from .reports import CSV_COLUMNS, summarize, summary_markdown, write_results

__all__ = [
    "CadenzaError",
    "COMPRESSOR",
    "CSV_COLUMNS",
    "EARS",
    "EXAMPLE_LISTENERS",
    "HAAQI_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "NALR_TAPS",
    "REFERENCES",
    "REFERENCE_SPL",
    "SILENT_RMS",
    "evaluate_cadenza",
    "hearing_aid",
    "load_listeners",
    "nalr_fir",
    "process_song",
    "remix_stems",
    "run",
    "save_listeners",
    "score_stem",
    "soft_clip",
    "summarize",
    "summary_markdown",
    "write_results",
]
