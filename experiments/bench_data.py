"""Benchmark: synthetic set generation speed and training loader throughput.

    .venv/bin/python experiments/bench_data.py [--tracks 6] [--seconds 30] [--batches 20]
        [--workers 2] [--out DIR | --record]

Writes data.md to ``--out`` (default outputs/experiments/), or with ``--record`` to
experiments/results/: wall seconds to render one minute of synthetic audio
(4 stems per track, fluidsynth), and training segments per second delivered by the
default loader (2 workers, seq_dur 2 s, batch 16) from that set, and the latter against
the training step rate in the training.md of the same folder (bench_training.py), else of
experiments/results/.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

from benchutil import RESULTS, parse_args, shown, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parse_args(parser)

    from xslicq.data.datamodule import MusdbDataModule
    from xslicq.data.synthetic import generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="xslicq-bench-"))
    try:
        root = tmp / "synthetic"
        t0 = time.perf_counter()
        generate_dataset(
            root,
            tracks=args.tracks,
            seconds=args.seconds,
            seed=0,
            test_tracks=1,
            valid_tracks=1,
            workers=2,
            progress=False,
        )
        gen = time.perf_counter() - t0
        per_minute = gen / (args.tracks * args.seconds / 60.0)

        dm = MusdbDataModule(
            str(root),
            seq_dur=2.0,
            samples_per_track=200,
            batch_size=16,
            num_workers=args.workers,
            persistent_workers=True,
        )
        dm.setup("fit")
        loader = dm.train_dataloader()
        it = iter(loader)
        next(it)  # worker start-up is not counted
        t0 = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        rate = args.batches * 16 / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        "# Data: synthetic generation and loader throughput",
        "",
        f"Produced by `.venv/bin/python experiments/bench_data.py --tracks {args.tracks} "
        f"--seconds {args.seconds} --batches {args.batches} --workers {args.workers}` "
        f"({platform.machine()}, {os.cpu_count()} CPU cores).",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| synthetic generation: {args.tracks} tracks x {args.seconds:.0f} s, 4 stems each | "
        f"{gen:.1f} s |",
        f"| wall time per minute of audio (all 4 stems) | {per_minute:.1f} s |",
        f"| wall time per 10 s of audio | {per_minute / 6:.2f} s |",
        f"| default loader, {args.workers} workers, seq_dur 2 s, batch 16: segments per second "
        f"| {rate:.0f} |",
        "",
    ]

    def training_rate(path: Path) -> float | None:
        found = path.is_file() and re.search(r"\(([0-9.]+) segments/s\)", path.read_text())
        return float(found.group(1)) if found else None

    # the training rate of the same folder (make bench runs bench_training.py first), else
    # the record's
    for training in (args.out / "training.md", RESULTS / "training.md"):
        train_rate = training_rate(training)
        if train_rate:
            break
    if train_rate:
        lines.append(
            f"Training consumes {train_rate:.1f} segments/s with the default model "
            f"({shown(training)}): the loader delivers "
            f"**{rate / train_rate:.0f}x** that (target: at least 10x)."
        )
    else:
        lines.append("Run experiments/bench_training.py first to compare with the training rate.")
    lines.append("")
    write_results("data.md", lines)


if __name__ == "__main__":
    main()
