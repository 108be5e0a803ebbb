"""Evaluation: BSSEval scores of separated tracks, their summaries, and the process pool.

    bsseval    metrics (museval, sdr, fast_bss_eval) per 1 s frame, museval's silence rules
    estimates  check_estimates(): a separator's output against the references' channels,
               rate and length (align="crop" | "pad" to score another length)
    pipeline   evaluate(): separate the tracks of a split, score them in worker processes
    reports    medians, skipped-frame counts, summary.md / .csv / .json, museval's JSON files
    pool       the bounded pool of spawned workers (also runs the HAAQI jobs of xslicq.cadenza)

The command line is ``python -m xslicq.evaluate``.
"""

from .bsseval import (
    METRICS,
    EvaluationError,
    check_metric,
    fast_frames,
    museval_frames,
    score_arrays,
    sdr_frames,
    skipped_frames,
)
from .estimates import ALIGNS, check_align, check_estimates
from .pipeline import check_workers, evaluate, load_split, score_track, score_tracks
from .pool import run_in_processes
from .reports import summarize, summary_markdown, track_scores, write_summary

__all__ = [
    "ALIGNS",
    "METRICS",
    "EvaluationError",
    "check_align",
    "check_estimates",
    "check_metric",
    "check_workers",
    "evaluate",
    "fast_frames",
    "load_split",
    "museval_frames",
    "run_in_processes",
    "score_arrays",
    "score_track",
    "score_tracks",
    "sdr_frames",
    "skipped_frames",
    "summarize",
    "summary_markdown",
    "track_scores",
    "write_summary",
]
