"""What a Cadenza evaluation leaves behind: the HAAQI rows, their means and the tables.

    rows {song, listener, stem, ear, haaqi} -> means per stem, ear, listener, song (summarize)
    rows, summary -> scores.csv, summary.json, summary.md                    (write_results)

A row whose reference was digitally silent holds NaN: it is written (``nan`` in the CSV,
``null`` in the JSON) but left out of every mean.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data import SOURCES
from ..outputs import write_atomic
from .listeners import EARS

__all__ = ["CSV_COLUMNS", "summarize", "summary_markdown", "write_results"]

CSV_COLUMNS = ("song", "listener", "stem", "ear", "haaqi")
"""The columns of ``scores.csv``: one row per (song, listener, stem, ear)."""


def _mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def summarize(rows: Sequence[Mapping]) -> dict:
    """Means of the HAAQI rows (NaN rows, i.e. silent references, left out).

    Returns:
        ``{"mean", "per_stem", "per_ear", "per_listener", "per_song", "rows", "scored",
        "songs", "listeners", "stems"}``; ``mean`` is over all scored rows (with no NaN rows
        the mean of the per-(song, listener) CAD1 scores).
    """
    stems = [s for s in SOURCES if any(r["stem"] == s for r in rows)]
    stems += sorted({r["stem"] for r in rows} - set(stems))
    songs = sorted({r["song"] for r in rows})
    listeners = sorted({r["listener"] for r in rows})

    def mean_by(key, value):
        return _mean(r["haaqi"] for r in rows if r[key] == value)

    return {
        "mean": _mean(r["haaqi"] for r in rows),
        "per_stem": {s: mean_by("stem", s) for s in stems},
        "per_ear": {e: mean_by("ear", e) for e in EARS},
        "per_listener": {k: mean_by("listener", k) for k in listeners},
        "per_song": {k: mean_by("song", k) for k in songs},
        "rows": len(rows),
        "scored": sum(not math.isnan(r["haaqi"]) for r in rows),
        "songs": songs,
        "listeners": listeners,
        "stems": stems,
    }


def _fmt(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.4f}"


def summary_markdown(summary: dict, options: Mapping | None = None) -> str:
    """A small Markdown report: mean per stem, per ear and overall, then per listener."""
    lines = [
        "# HAAQI (Cadenza CAD1 task 1 pipeline)",
        "",
        f"{len(summary['songs'])} song(s) x {len(summary['listeners'])} listener(s); "
        f"{summary['scored']} of {summary['rows']} (song, listener, stem, ear) rows scored "
        "(a digitally silent reference is not scored).",
    ]
    if options:
        lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in options.items()) + "."]
    lines += ["", "| stem | HAAQI |", "|---|---:|"]
    lines += [f"| {s} | {_fmt(v)} |" for s, v in summary["per_stem"].items()]
    lines += [f"| {e} ear | {_fmt(v)} |" for e, v in summary["per_ear"].items()]
    lines.append(f"| **mean** | **{_fmt(summary['mean'])}** |")
    lines += ["", "| listener | HAAQI |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in summary["per_listener"].items()]
    return "\n".join(lines) + "\n"


def _sort_key(row: Mapping):
    order = {s: i for i, s in enumerate(SOURCES)}
    return (
        row["song"],
        row["listener"],
        order.get(row["stem"], len(order)),
        row["stem"],
        EARS.index(row["ear"]) if row["ear"] in EARS else 2,
    )


def _write_csv(rows: Sequence[Mapping], path: Path) -> None:
    """``rows`` as CSV (:data:`CSV_COLUMNS`, sorted), written to ``path`` atomically."""
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(CSV_COLUMNS)
    for r in sorted(rows, key=_sort_key):
        w.writerow(
            [
                r["song"],
                r["listener"],
                r["stem"],
                r["ear"],
                "nan" if math.isnan(r["haaqi"]) else f"{r['haaqi']:.6f}",
            ]
        )
    write_atomic(path, f.getvalue())


def _jsonable(value):
    """NaN -> None (JSON null), recursively."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_results(rows: Sequence[Mapping], out_dir, options: Mapping | None = None) -> dict:
    """Write ``scores.csv`` (one row per song, listener, stem, ear; sorted), ``summary.json``
    and ``summary.md`` into ``out_dir``; returns the summary (plus ``options`` if given)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(rows, out_dir / "scores.csv")
    summary = summarize(rows)
    if options:
        summary["options"] = dict(options)
    (out_dir / "summary.json").write_text(
        json.dumps(_jsonable(summary), indent=2) + "\n", encoding="utf-8"
    )
    (out_dir / "summary.md").write_text(summary_markdown(summary, options), encoding="utf-8")
    return summary
