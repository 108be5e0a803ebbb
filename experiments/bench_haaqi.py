"""Benchmark: what HAAQI (the Cadenza CAD1 pipeline of xslicq.cadenza) costs.

    .venv/bin/python experiments/bench_haaqi.py [--long 30] [--repeats 3] [--job-seconds 4]
        [--out DIR | --record]

Times, in this process on one listener (``example_mild``, left ear):

* :func:`xslicq.cadenza.score_stem` (resample to 24 kHz + HAAQI) on mono clips of 1, 2 and
  4 s, median of ``--repeats`` runs after a warm-up, and one run on ``--long`` seconds; a
  least-squares line ``t = a + b * seconds`` through the CPU times gives the cost per
  second of mono audio (CPU time, because the machine may be shared; wall time is listed);
* :func:`xslicq.cadenza.hearing_aid` (NAL-R, and NAL-R + compressor) on 30 s mono;
* one whole (song, listener) job, :func:`xslicq.cadenza.process_song` on 4 stereo stems of
  ``--job-seconds`` (8 HAAQI calls), extrapolated to a 30 s track with the per-second cost.

The audio is the music-like test signal of :mod:`xslicq.signals` (stems of a synthetic
song), estimates = references + white noise at 0.3 x their RMS. Writes haaqi.md to
``--out`` (default outputs/experiments/), or with ``--record`` to experiments/results/.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from benchutil import parse_args, write_results

SR = 44100


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds (this process) of ``repeats`` calls after one warm-up
    call (``repeats=0``: one call, no warm-up), and the last result."""
    out = fn() if repeats else None
    walls, cpus = [], []
    for _ in range(max(repeats, 1)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=float, default=30.0, help="seconds of the long clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--job-seconds", type=float, default=4.0, help="stems of the whole-job measurement"
    )
    args = parse_args(parser, threads=1)

    from importlib.metadata import version

    from xslicq.cadenza import hearing_aid, load_listeners, process_song, score_stem
    from xslicq.data import SOURCES
    from xslicq.signals import music_like

    listener = next(x for x in load_listeners() if x.id == "example_mild")
    ear = listener.audiogram_left
    rng = np.random.default_rng(0)

    def clip(seconds, seed=1):
        ref = 0.3 * music_like(seconds, seed=seed)[0]
        est = ref + 0.3 * np.sqrt(np.mean(ref**2)) * rng.standard_normal(ref.shape)
        return hearing_aid(est, ear, SR), ref

    rows = []
    for seconds in (1.0, 2.0, 4.0):
        proc, ref = clip(seconds)
        wall, cpu, score = timed(lambda p=proc, r=ref: score_stem(p, r, SR, ear), args.repeats)
        rows.append((seconds, wall, cpu, score, f"median of {args.repeats}"))
    proc, ref = clip(args.long)
    wall, cpu, score = timed(lambda: score_stem(proc, ref, SR, ear), 0)
    rows.append((args.long, wall, cpu, score, "one run"))
    secs = np.array([r[0] for r in rows])
    slope, intercept = np.polyfit(secs, np.array([r[2] for r in rows]), 1)  # CPU time
    wall_slope, _ = np.polyfit(secs, np.array([r[1] for r in rows]), 1)

    x = 0.3 * music_like(30.0, seed=2)[0]
    _, t_nalr, _ = timed(lambda: hearing_aid(x, ear, SR), 1)
    _, t_comp, _ = timed(lambda: hearing_aid(x, ear, SR, compressor=True), 1)

    job_seconds = args.job_seconds
    refs = {
        s: 0.25 * music_like(job_seconds, seed=3 * j, tempo=80 + 17 * j)
        for j, s in enumerate(SOURCES)
    }
    ests = {
        s: r + 0.3 * np.sqrt(np.mean(r**2)) * rng.standard_normal(r.shape) for s, r in refs.items()
    }
    t_job_wall, t_job, _ = timed(lambda: process_song(ests, refs, listener, SR), 0)
    per_track = slope * 30.0 * 8 + intercept * 8 + 8 * t_nalr  # 8 mono stems of 30 s

    import torch

    lines = [
        "# HAAQI cost (Cadenza CAD1 pipeline, xslicq.cadenza)",
        "",
        f"Produced by `.venv/bin/python experiments/bench_haaqi.py --long {args.long:g} "
        f"--repeats {args.repeats} --job-seconds {args.job_seconds:g}` on "
        f"{platform.processor() or platform.machine()} "
        f"({os.cpu_count()} CPU cores, pyclarity {version('pyclarity')}, "
        f"numpy {np.__version__}, torch {torch.__version__}); one process, one listener "
        "(`example_mild`), `reference=cad1`.",
        "",
        "Music-like mono test audio at 44.1 kHz; processed = NAL-R(reference + white noise at "
        "0.3 x its RMS). Seconds of `score_stem` (soxr resampling of both signals to "
        "24 kHz + `compute_haaqi`, single-threaded): CPU time of this process (robust to "
        "other work on the machine) and wall time.",
        "",
        "| mono seconds | CPU s | CPU s per audio s | wall s | HAAQI | timing |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for seconds, wall, cpu, score, how in rows:
        lines.append(
            f"| {seconds:g} | {cpu:.2f} | {cpu / seconds:.2f} | {wall:.2f} | {score:.3f} | {how} |"
        )
    lines += [
        "",
        f"Least-squares fit of the CPU times: **{slope:.2f} s of HAAQI per second of mono "
        f"audio** plus {intercept:.2f} s per call (wall-time fit: {wall_slope:.2f} s per "
        "second).",
        "",
        f"Hearing aid on 30 s mono (CPU): NAL-R {t_nalr:.2f} s, NAL-R + compressor "
        f"{t_comp:.2f} s (the compressor is a per-sample Python loop in pyclarity).",
        "",
        f"One whole (song, listener) job, `process_song` on 4 stereo stems of {job_seconds:g} s "
        f"(8 HAAQI calls, measured once): {t_job:.1f} s CPU ({t_job_wall:.1f} s wall), i.e. "
        f"{t_job / (8 * job_seconds):.2f} CPU s per second of mono audio.",
        "",
        f"**Per 30 s 4-stem stereo track and listener: about {per_track:.0f} s "
        f"({per_track / 60:.1f} min) on one core**, extrapolated from the CPU-time fit "
        f"(8 mono stems x 30 s, plus NAL-R; add ~{8 * (t_comp - t_nalr):.0f} s with "
        "`compressor=true`); not measured as one job. `python -m xslicq.cadenza workers=N` "
        "runs N such jobs at once (one per free core). A full MUSDB18-HQ test song (~4 min "
        f"on average) costs about {slope * 240 * 8 / 60:.0f} min per listener; use "
        "`seconds=` for quick looks.",
    ]
    write_results("haaqi.md", [*lines, ""])


if __name__ == "__main__":
    main()
