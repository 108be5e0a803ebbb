"""What an evaluation leaves behind: medians, the summary tables and museval's JSON files.

    scores per 1 s frame -> median over frames per track, with the count of frames and of
                            frames a silent reference left out   (track_scores, median)
    per track            -> median over tracks per target -> mean of the targets;
                            frame counts summed over tracks      (summarize)
    summary              -> summary.md, summary.csv, tracks.csv, summary.json (write_summary)
    museval frames       -> <subset>/<track>.json in museval's format, plus each target's
                            "skipped_frames"                     (write_museval_json)

Medians skip NaN (frames and tracks that were not scored). A frame is *skipped* when a
reference is digital silence in it (museval's rule, :func:`~xslicq.evaluation.bsseval.
skipped_frames`); the tables say how many, so a median over few frames is seen as such.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..outputs import write_atomic
from .bsseval import METRICS, WINDOW_SECONDS

__all__ = [
    "COUNTS",
    "METRIC_TITLES",
    "median",
    "summarize",
    "summary_markdown",
    "track_scores",
    "write_museval_json",
    "write_summary",
]

COUNTS = ("frames", "skipped")
"""The frame counts of a per-track record next to its scores: the 1 s frames of the track,
and those not scored because a reference is silent there."""

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


def track_scores(
    frames: Mapping[str, Mapping[str, np.ndarray]], skipped: Mapping[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """One track's record per target: the median over frames of every score and the counts.

    Args:
        frames: ``{target: {score: (frames,) dB}}`` (:func:`~xslicq.evaluation.score_arrays`).
        skipped: ``{target: (frames,) bool}``, the frames a silent reference left out
            (:func:`~xslicq.evaluation.bsseval.skipped_frames`).
    Returns:
        ``{target: {score: median dB (NaN: nothing scored), "frames": int, "skipped": int}}``.
    """
    out = {}
    for t, scores in frames.items():
        out[t] = {m: median(v) for m, v in scores.items()}
        out[t]["frames"] = int(np.size(skipped[t]))
        out[t]["skipped"] = int(np.count_nonzero(skipped[t]))
    return out


def write_museval_json(
    path: Path,
    track_name: str,
    frames: Mapping[str, Mapping],
    skipped: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write museval's per-track JSON (:class:`museval.TrackStore`), so that
    ``museval.EvalStore().add_eval_dir(out)`` and the SiSEC aggregation tools read it.

    Args:
        path: the JSON file, written atomically.
        frames: ``{target: {"SDR", "SIR", "SAR", "ISR": (frames,) dB}}``; a target with no
            scored frame (a silent reference) is not stored.
        skipped: ``{target: (frames,) bool}``: each stored target gets
            ``"skipped_frames"``, the count of frames a silent reference left out (museval's
            schema allows the extra key; its readers ignore it).
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
        if skipped is not None:
            store.scores["targets"][-1]["skipped_frames"] = int(np.count_nonzero(skipped[target]))
    store.validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, store.json)


def summarize(
    per_track: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str, targets: Sequence[str]
) -> dict:
    """Median over tracks per target and the mean of the targets; frame counts summed.

    Args:
        per_track: ``{track: {target: {score: median over frames}}}``, each record with
            the :data:`COUNTS` ``frames`` and ``skipped`` where known (:func:`track_scores`).
        metric: a key of :data:`~xslicq.evaluation.bsseval.METRICS`.
        targets: the targets, in table order.
    Returns:
        ``{"metric", "scores", "targets", "tracks", "per_target": {target: {score: dB}},
        "mean": {score: dB}, "frame_counts": {target: {"frames": int, "skipped": int}} or None,
        "per_track": per_track}``; a target never scored is NaN and left out of the mean;
        ``frame_counts`` sums the counts over the tracks (``None`` when no record has them).
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
    records = [per_track[k].get(t, {}) for k in tracks for t in targets]
    frame_counts = None
    if any(COUNTS[0] in r for r in records):
        frame_counts = {
            t: {c: sum(int(per_track[k].get(t, {}).get(c, 0)) for k in tracks) for c in COUNTS}
            for t in targets
        }
    return {
        "metric": metric,
        "scores": names,
        "targets": list(targets),
        "tracks": tracks,
        "per_target": per_target,
        "mean": mean,
        "frame_counts": frame_counts,
        "per_track": {k: {t: dict(v) for t, v in per_track[k].items()} for k in tracks},
    }


def _fmt(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}"


def json_safe(value):
    """Plain JSON values: floats that are not finite become ``null``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def summary_markdown(summary: dict, title: str | None = None) -> str:
    """A Markdown table: one row per target plus the mean, one column per score; with the
    frame counts, a ``frames`` and a ``skipped`` column and the tracks that skipped frames;
    with ``summary["align"]`` (:func:`~xslicq.evaluation.evaluate`), how lengths were aligned."""
    names = summary["scores"]
    counts = summary.get("frame_counts")
    lines = [
        f"# {title or 'Evaluation'}",
        "",
        f"Metric: {METRIC_TITLES[summary['metric']]}, {len(summary['tracks'])} tracks. "
        "Median over 1 s frames per track, then median over tracks; `mean` is the mean "
        "of the targets. All values in dB.",
    ]
    if counts:
        lines[-1] += (
            " `frames`: 1 s frames over all tracks; `skipped`: those not scored because a "
            "reference is digital silence in them (museval's rule)."
        )
    if summary.get("align"):
        lines[-1] += {
            "crop": " Estimates of another length than their track were cut, with the "
            "references, to the shorter (align=crop): only the overlap is scored.",
            "pad": " Estimates of another length than their track were cut or zero-padded "
            "(align=pad): the padding is scored as error.",
        }[summary["align"]]
    extra = ["frames", "skipped"] if counts else []
    lines += [
        "",
        "| target | " + " | ".join(names + extra) + " |",
        "|---|" + "---:|" * (len(names) + len(extra)),
    ]
    for t in summary["targets"]:
        cells = [_fmt(summary["per_target"][t][m]) for m in names]
        if counts:
            cells += [str(counts[t]["frames"]), str(counts[t]["skipped"])]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines.append(
        "| **mean** | "
        + " | ".join([f"**{_fmt(summary['mean'][m])}**" for m in names] + [""] * len(extra))
        + " |"
    )
    if counts and any(counts[t]["skipped"] for t in summary["targets"]):
        lines += ["", "Skipped frames per track (skipped / frames):", ""]
        for k in summary["tracks"]:
            row = summary["per_track"][k]
            parts = [
                f"{t} {row[t]['skipped']}/{row[t]['frames']}"
                for t in summary["targets"]
                if row.get(t, {}).get("skipped")
            ]
            if parts:
                lines.append(f"- {k}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def _count(row: Mapping, c: str) -> str:
    return str(row[c]) if c in row else ""


def write_summary(summary: dict, out_dir: str | Path, title: str | None = None) -> Path:
    """Write ``summary.md``, ``summary.csv`` (targets and mean), ``tracks.csv`` (per-track
    medians) and ``summary.json`` (the whole summary, NaN as ``null``) into ``out_dir``;
    with frame counts, the CSV files get ``frames`` and ``skipped`` columns. Returns the
    Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = summary["scores"]
    counts = summary.get("frame_counts")
    extra = list(COUNTS) if counts else []
    md = out_dir / "summary.md"
    md.write_text(summary_markdown(summary, title))
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target"] + names + extra)
        for t in summary["targets"]:
            w.writerow(
                [t]
                + [f"{summary['per_target'][t][m]:.4f}" for m in names]
                + [_count(counts[t], c) for c in extra]
            )
        w.writerow(["mean"] + [f"{summary['mean'][m]:.4f}" for m in names] + [""] * len(extra))
    with open(out_dir / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["track", "target"] + names + extra)
        for k in summary["tracks"]:
            for t in summary["targets"]:
                row = summary["per_track"][k].get(t, {})
                w.writerow(
                    [k, t]
                    + [f"{row.get(m, math.nan):.4f}" for m in names]
                    + [_count(row, c) for c in extra]
                )
    write_atomic(
        out_dir / "summary.json", json.dumps(json_safe(summary), indent=2, allow_nan=False)
    )
    return md
