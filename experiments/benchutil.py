"""Helpers shared by the benchmark and experiment scripts: the command line every script
shares (``--out DIR`` / ``--record``), timing, and writing the results.

Every script parses its arguments with :func:`parse_args`, which adds

* ``--out DIR``: the folder the results go to, by default ``outputs/experiments/`` (ignored
  by git, so a run never changes a tracked file);
* ``--record``: write into the record instead, ``experiments/results/`` (or the script's
  own record folder, e.g. ``docs/`` for the README's figure),

and starts the run: the machine's load average is read then and again when a file is
written, and :func:`write_results`, :func:`write_section`, :func:`write_json` and
:func:`save_figure` put both readings, the cores and the threads next to the numbers
(:func:`load_line`), so no script can leave them out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"  # the record
DEFAULT_OUT = ROOT / "outputs" / "experiments"  # where a run goes unless told otherwise
LOAD_PREFIX = "Machine load during the run:"
"""How the load line of every results file begins (:func:`load_line`)."""


@dataclass
class Run:
    """One invocation of a script: where its files go and the load when it started."""

    out: Path
    threads: int | None = None
    load_start: tuple[float, float, float] = field(default_factory=lambda: os.getloadavg())
    started: float = field(default_factory=time.perf_counter)


# the run of this process; replaced by parse_args (a script imported without parse_args
# writes to DEFAULT_OUT, its start taken at import)
_run = Run(DEFAULT_OUT)


def parse_args(
    parser: argparse.ArgumentParser,
    argv: list[str] | None = None,
    *,
    record: Path = RESULTS,
    threads: int | None = None,
) -> argparse.Namespace:
    """Add the mutually exclusive ``--out DIR`` (default :data:`DEFAULT_OUT`) and
    ``--record`` (write into ``record``, the record) to ``parser``, parse ``argv`` (default
    ``sys.argv[1:]``) and start the run: ``args.out`` becomes the folder the results go to
    and the load average is read. ``threads``: how many threads the measurements use, for
    the load line; by default ``args.threads`` (the largest, if a list), else unknown."""
    global _run
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for the results (default {shown(DEFAULT_OUT)}/, which git ignores)",
    )
    group.add_argument(
        "--record",
        action="store_true",
        help=f"write into the record, {shown(record)}/, instead of --out",
    )
    args = parser.parse_args(argv)
    args.out = (record if args.record else args.out).resolve()
    if threads is None:
        given = getattr(args, "threads", None)
        threads = max(given) if isinstance(given, list | tuple) and given else given
    _run = Run(args.out, threads if isinstance(threads, int) else None)
    return args


def measured_args(argv: list[str]) -> list[str]:
    """``argv`` without ``--out DIR`` and ``--record``: the arguments that decide what is
    measured, for the command line a results file names."""
    kept, args = [], iter(argv)
    for arg in args:
        if arg == "--out":
            next(args, None)  # and its folder
        elif arg != "--record" and not arg.startswith("--out="):
            kept.append(arg)
    return kept


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it, else as it is."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def output_path(name: str) -> Path:
    """``name`` in the run's output folder (created if missing)."""
    _run.out.mkdir(parents=True, exist_ok=True)
    return _run.out / name


def load_line() -> str:
    """One sentence: the 1-minute load average at the start of the run and now, the
    cores, the threads, the time the run took, and what a high load does to the times."""
    start, end = _run.load_start[0], os.getloadavg()[0]
    n = _run.threads
    threads = f", {n} thread{'s' if n != 1 else ''} per measurement" if n else ""
    share = (
        f"about {n} of the load; a load above that share"
        if n
        else ("part of the load; a load above their share")
    )
    return (
        f"{LOAD_PREFIX} 1-minute load average {start:.2f} at the start and {end:.2f} at the "
        f"end of the run ({(time.perf_counter() - _run.started) / 60:.1f} minutes), on "
        f"{os.cpu_count()} cores{threads}. The run's own threads account for {share} means "
        "other work shared the cores and inflated the times (they are then upper bounds)."
    )


def _report(out: Path, shown: str) -> Path:
    print(shown)
    print(f"written to {out}")
    return out


def write_results(name: str, lines: list[str]) -> Path:
    """Write ``lines`` joined by newlines (no newline added at the end) to ``name`` in the
    run's output folder, with :func:`load_line` after the title (the first line, when it
    is a ``# `` heading; else at the top); print it and the path; return the path."""
    lines = list(lines)
    at = 1 if lines and lines[0].startswith("# ") else 0
    lines[at:at] = ["", load_line()] if at else [load_line(), ""]
    out = output_path(name)
    text = "\n".join(lines)
    out.write_text(text)
    return _report(out, text)


# the first line of the results files that several scripts write a section of each
TITLES = {
    "training.md": "# Training: proof that it learns, and speed",
    "gpu.md": "# Results on a GPU",
}


def write_section(name: str, heading: str, section: str) -> Path:
    """Put ``section`` (text that starts with the ``## ...`` line ``heading`` begins) into
    ``name`` in the run's output folder in place of the section that starts with
    ``heading`` (up to the next ``## `` heading), or at the end; a missing file starts
    with its :data:`TITLES` line. :func:`load_line` goes after the section's heading (each
    section is its own run). The other sections stay as they are. Prints the section and
    the path; returns the path."""
    first, _, body = section.strip().partition("\n")
    section = first + "\n\n" + load_line() + ("\n" + body if body else "")
    out = output_path(name)
    text = out.read_text() if out.exists() else TITLES[name] + "\n"
    head, found, tail = text.partition(heading)
    rest = tail.partition("\n## ")[2] if found else ""
    whole = head.rstrip() + "\n\n" + section.strip() + "\n"
    if rest:
        whole += "\n## " + rest
    out.write_text(whole)
    return _report(out, section)


def write_json(name: str, data: dict) -> Path:
    """Write ``data`` as indented JSON to ``name`` in the run's output folder, with the
    load line under the key ``"machine_load"``; returns the path."""
    out = output_path(name)
    out.write_text(json.dumps({**data, "machine_load": load_line()}, indent=2))
    print(f"written to {out}")
    return out


def save_figure(fig, name: str, dpi: int = 100, palette: int | None = None) -> Path:
    """Save the matplotlib figure ``fig`` as the PNG ``name`` in the run's output folder,
    the load line in its ``Description`` text chunk; ``palette``: reduce it to that many
    colours (a smaller file). Returns the path."""
    out = output_path(name)
    description = load_line()
    fig.savefig(out, dpi=dpi, metadata={"Description": description})
    if palette:
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Description", description)
        Image.open(out).convert("RGB").quantize(palette).save(out, optimize=True, pnginfo=info)
    print(f"written to {out}")
    return out


def median_time(fn, repeats: int = 5) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_times(fns, repeats: int = 5) -> list[list[float]]:
    """Wall times in seconds of every function in ``fns``, called in turn in each of
    ``repeats`` rounds after one warm-up round: ``times[k][i]`` is round ``k``'s time of
    ``fns[i]``. A ratio taken within a round sees the same load on a shared machine."""
    for fn in fns:
        fn()
    times = []
    for _ in range(repeats):
        row = []
        for fn in fns:
            t0 = time.perf_counter()
            fn()
            row.append(time.perf_counter() - t0)
        times.append(row)
    return times
