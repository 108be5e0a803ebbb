"""Benchmark: separation speed and memory on the CPU.

    .venv/bin/python experiments/bench_separate.py [--minutes 3 10] [--threads 2]
        [--transforms cqlog bark mel vqlog tuned stft] [--seconds 30]

Separates a synthetic song (fluidsynth, offline) of ``--minutes`` with the default
configuration (cqlog sliCQT + xumx_matrix; weights untrained: speed does not depend on
them) in cross-faded 10 s chunks, and reports the real-time factor (processing time /
audio duration) and the rise of the process's peak memory. Then separates ``--seconds``
of stereo with the default network on every transform of ``--transforms`` (median of three
runs after a warm-up), against the default: the network's grid is set in columns per
second, so the cost should not depend much on the transform's slice length. Writes
experiments/results/separate.md.
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
CONF = Path(__file__).resolve().parents[1] / "conf"


def measure(minutes: float, threads: int) -> str:
    """One table row, measured in this (fresh) process; the song is rendered by a separate
    process so that its buffers do not count."""
    import subprocess
    import sys

    from hydra import compose, initialize_config_dir

    from xslicq.data.tracks import find_tracks, read
    from xslicq.separator import Separator
    from xslicq.system import SeparationSystem

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="xslicq-sep-"))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "xslicq.data.synthetic",
                "--out",
                str(tmp / "s"),
                "--tracks",
                "2",
                "--seconds",
                str(minutes * 60),
                "--seed",
                "1",
                "--test-tracks",
                "1",
                "--valid-tracks",
                "0",
                "--no-progress",
            ],
            check=True,
            capture_output=True,
        )
        track = find_tracks(tmp / "s", "test")[0]
        audio = read(track, "mixture")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train")
    system = SeparationSystem.from_config(cfg, training=False)
    sep = Separator(system)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    stems = sep.separate(audio, track.sample_rate)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert stems["vocals"].shape == audio.shape
    duration = audio.shape[-1] / track.sample_rate
    return (
        f"| {duration / 60:.1f} min synthetic stereo, default model, 10 s chunks | "
        f"{elapsed:.1f} s | {elapsed / duration:.2f} | {(after - before) / 1024:.0f} MiB | "
        f"{after / 1024:.0f} MiB |"
    )


def measure_transform(name: str, seconds: float, threads: int) -> str:
    """One row of the per-transform table: separating ``seconds`` of noise-like stereo."""
    from benchutil import median_time
    from hydra import compose, initialize_config_dir

    from xslicq.separator import Separator
    from xslicq.signals import music_like
    from xslicq.system import SeparationSystem

    torch.set_num_threads(threads)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"transform={name}"])
    system = SeparationSystem.from_config(cfg, training=False)
    sep = Separator(system)
    audio = music_like(seconds, seed=0).astype("float32")
    elapsed = median_time(lambda: sep.separate(audio, 44100), repeats=3)
    t = system.transform
    return (
        f"| {name} | {t.sllen} | {system.r2m.T} | {system.columns_per_second:.0f} | "
        f"{elapsed:.2f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0, 10.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--transforms", nargs="*", default=["cqlog", "bark", "mel", "vqlog", "tuned", "stft"]
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-transform", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args.child, args.threads))
        return
    if args.child_transform:
        print(measure_transform(args.child_transform, args.seconds, args.threads))
        return
    import subprocess
    import sys

    def child(*extra):
        return (
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--threads",
                    str(args.threads),
                    "--seconds",
                    str(args.seconds),
                    *extra,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

    rows = [child("--child", str(m)) for m in args.minutes]
    by_transform = [child("--child-transform", name) for name in args.transforms]
    base = None
    table = []
    for row in by_transform:
        seconds = float(row.rsplit("|", 2)[-2].strip().rstrip(" s"))
        base = seconds if base is None else base
        table.append(f"{row} {seconds / base:.2f}x |")
    lines = [
        "# Separation speed and memory",
        "",
        f"Produced by `.venv/bin/python experiments/bench_separate.py --minutes "
        f"{' '.join(str(m) for m in args.minutes)} --threads {args.threads}` "
        f"({platform.machine()}, {args.threads} torch threads), each row in a fresh process.",
        "",
        "| song | processing time | real-time factor | peak memory rise while separating | "
        "process peak RSS |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "The 10 s chunks bound the model's working memory; the song and its four stems are "
        "held in memory as float32. The last column is the whole process's peak (Python, "
        "torch, the song and the stems included); target: a 10-minute song within 2 GiB.",
        "",
        f"## By transform: {args.seconds:g} s of stereo, the default network "
        "(xumx_matrix, untrained)",
        "",
        "The network's time grid is `system.columns_per_second` (140 by default): each "
        "transform gets the power of two of columns per slice nearest to it, so short-slice "
        "transforms no longer give the network many times more frames. Target: bark (and "
        f"the tuned transform) within 1.5x the default ({args.transforms[0]}). Median of "
        "three runs after a warm-up, each transform in a fresh process.",
        "",
        "| transform | sllen | columns per slice | columns per second | time | vs "
        f"{args.transforms[0]} |",
        "|---|---:|---:|---:|---:|---:|",
        *table,
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "separate.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
