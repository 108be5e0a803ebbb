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
