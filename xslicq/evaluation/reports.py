"""What an evaluation leaves behind: medians, the summary tables and museval's JSON files.

    scores per 1 s frame -> median over frames per track            (median)
    per track            -> median over tracks per target -> mean of the targets  (summarize)
    summary              -> summary.md, summary.csv, tracks.csv      (write_summary)
    museval frames       -> <subset>/<track>.json in museval's format (write_museval_json)

Medians skip NaN (frames and tracks that were not scored).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .bsseval import METRICS, WINDOW_SECONDS

__all__ = [
    "METRIC_TITLES",
    "median",
    "summarize",
    "summary_markdown",
    "write_museval_json",
    "write_summary",
]

METRIC_TITLES = {
    "museval": "museval BSSEval v4",
    "sdr": "BSSEval v4 SDR (museval's, computed directly)",
    "fast_bss_eval": "fast_bss_eval sources SDR (not museval's SDR; quick look)",
}
"""Metric name -> how the tables name it."""


def median(values) -> float:
    """Median of ``values`` skipping NaN; NaN when nothing was scored."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmedian(values)) if np.any(~np.isnan(values)) else math.nan


def write_museval_json(path: Path, track_name: str, frames: Mapping[str, Mapping]) -> None:
    """Write museval's per-track JSON (:class:`museval.TrackStore`), so that
    ``museval.EvalStore().add_eval_dir(out)`` and the SiSEC aggregation tools read it.

    Args:
        path: the JSON file, written atomically.
        frames: ``{target: {"SDR", "SIR", "SAR", "ISR": (frames,) dB}}``; a target with no
            scored frame (a silent reference) is not stored.
    """
    import museval

    store = museval.TrackStore(track_name=track_name, win=WINDOW_SECONDS, hop=WINDOW_SECONDS)
    for target, values in frames.items():
        if np.all(np.isnan(values["SDR"])):
            continue  # no frame scored (a silent reference): not stored
        store.add_target(
            target_name=target,
            values={m: [float(v) for v in values[m]] for m in METRICS["museval"]},
        )
    store.validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(store.json)
    os.replace(tmp, path)


def summarize(
    per_track: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str, targets: Sequence[str]
) -> dict:
    """Median over tracks per target and the mean of the targets.

    Args:
        per_track: ``{track: {target: {score: median over frames}}}``.
        metric: a key of :data:`~xslicq.evaluation.bsseval.METRICS`.
        targets: the targets, in table order.
    Returns:
        ``{"metric", "scores", "targets", "tracks", "per_target": {target: {score: dB}},
        "mean": {score: dB}, "per_track": per_track}``; a target never scored is NaN and
        left out of the mean.
    """
    names = list(METRICS[metric])
    tracks = sorted(per_track)
    per_target = {}
    for t in targets:
        per_target[t] = {
            m: median([per_track[k].get(t, {}).get(m, math.nan) for k in tracks]) for m in names
        }
    mean = {}
    for m in names:
        vals = [per_target[t][m] for t in targets if not math.isnan(per_target[t][m])]
        mean[m] = float(np.mean(vals)) if vals else math.nan
    return {
        "metric": metric,
        "scores": names,
        "targets": list(targets),
        "tracks": tracks,
        "per_target": per_target,
        "mean": mean,
        "per_track": {k: {t: dict(v) for t, v in per_track[k].items()} for k in tracks},
    }


def _fmt(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}"


def summary_markdown(summary: dict, title: str | None = None) -> str:
    """A Markdown table: one row per target plus the mean, one column per score."""
    names = summary["scores"]
    lines = [
        f"# {title or 'Evaluation'}",
        "",
        f"Metric: {METRIC_TITLES[summary['metric']]}, {len(summary['tracks'])} tracks. "
        "Median over 1 s frames per track, then median over tracks; `mean` is the mean "
        "of the targets. All values in dB.",
        "",
        "| target | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for t in summary["targets"]:
        lines.append(
            f"| {t} | " + " | ".join(_fmt(summary["per_target"][t][m]) for m in names) + " |"
        )
    lines.append(
        "| **mean** | " + " | ".join(f"**{_fmt(summary['mean'][m])}**" for m in names) + " |"
    )
    return "\n".join(lines) + "\n"


def write_summary(summary: dict, out_dir: str | Path, title: str | None = None) -> Path:
    """Write ``summary.md``, ``summary.csv`` (targets and mean) and ``tracks.csv`` (per-track
    medians) into ``out_dir``; returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = summary["scores"]
    md = out_dir / "summary.md"
    md.write_text(summary_markdown(summary, title))
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target"] + names)
        for t in summary["targets"]:
            w.writerow([t] + [f"{summary['per_target'][t][m]:.4f}" for m in names])
        w.writerow(["mean"] + [f"{summary['mean'][m]:.4f}" for m in names])
    with open(out_dir / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["track", "target"] + names)
        for k in summary["tracks"]:
            for t in summary["targets"]:
                row = summary["per_track"][k].get(t, {})
                w.writerow([k, t] + [f"{row.get(m, math.nan):.4f}" for m in names])
    return md
