"""Evaluation: BSSEval scores of separated tracks, their summaries, and the process pool.

    bsseval   metrics (museval, sdr, fast_bss_eval) per 1 s frame, museval's rules
    pipeline  evaluate(): separate the tracks of a split, score them in worker processes
    reports   medians, summary.md / .csv, museval's JSON files
    pool      the bounded pool of spawned workers (also runs the HAAQI jobs of xslicq.cadenza)

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
)
from .pipeline import check_workers, evaluate, load_split, score_track, score_tracks
from .pool import run_in_processes
from .reports import summarize, summary_markdown, write_summary

__all__ = [
    "METRICS",
    "EvaluationError",
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
    "summarize",
    "summary_markdown",
    "write_summary",
]
