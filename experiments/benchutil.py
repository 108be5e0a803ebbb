"""Helpers shared by the benchmark and experiment scripts: timing and writing the results."""

import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"  # experiments/results


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


def write_results(name: str, lines: list[str]) -> Path:
    """Write ``lines`` joined by newlines (no newline added at the end) to
    ``experiments/results/<name>``, print them and the path; returns the path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / name
    text = "\n".join(lines)
    out.write_text(text)
    print(text)
    print(f"written to {out}")
    return out


# the first line of the results files that several scripts write a section of each
TITLES = {
    "training.md": "# Training: proof that it learns, and speed",
    "gpu.md": "# Results on a GPU",
}


def write_section(name: str, heading: str, section: str) -> Path:
    """Put ``section`` (text that starts with the ``## ...`` line ``heading`` begins) into
    ``experiments/results/<name>`` in place of the section that starts with ``heading``
    (up to the next ``## `` heading), or at the end; a missing file starts with its
    :data:`TITLES` line. The other sections stay as they are. Prints the section and the
    path; returns the path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / name
    text = out.read_text() if out.exists() else TITLES[name] + "\n"
    head, found, tail = text.partition(heading)
    rest = tail.partition("\n## ")[2] if found else ""
    body = head.rstrip() + "\n\n" + section.strip() + "\n"
    if rest:
        body += "\n## " + rest
    out.write_text(body)
    print(section)
    print(f"written to {out}")
    return out
