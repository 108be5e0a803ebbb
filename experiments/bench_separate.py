"""Benchmark: separation speed and memory on the CPU with the default model.

    .venv/bin/python experiments/bench_separate.py [--minutes 3] [--threads 2]

Separates a synthetic song (fluidsynth, offline) of ``--minutes`` with the default
configuration (cqlog sliCQT + xumx_matrix; weights untrained: speed does not depend on
them) in cross-faded 10 s chunks, and reports the real-time factor (processing time /
audio duration) and the rise of the process's peak memory. Writes
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
    from hydra.utils import instantiate

    from xslicq.data.tracks import find_tracks, read
    from xslicq.separator import Separator
    from xslicq.system import SeparationSystem

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="xslicq-sep-"))
    try:
        subprocess.run([sys.executable, "-m", "xslicq.data.synthetic", "--out", str(tmp / "s"),
                        "--tracks", "2", "--seconds", str(minutes * 60), "--seed", "1",
                        "--test-tracks", "1", "--valid-tracks", "0", "--no-progress"],
                       check=True, capture_output=True)
        track = find_tracks(tmp / "s", "test")[0]
        audio = read(track, "mixture")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train")
    system = SeparationSystem(instantiate(cfg.transform), instantiate(cfg.model.net),
                              instantiate(cfg.loss), None, matrix_T=cfg.model.matrix_T)
    sep = Separator(system)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    stems = sep.separate(audio, track.sample_rate)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert stems["vocals"].shape == audio.shape
    duration = audio.shape[-1] / track.sample_rate
    return (f"| {duration / 60:.1f} min synthetic stereo, default model, 10 s chunks | "
            f"{elapsed:.1f} s | {elapsed / duration:.2f} | {(after - before) / 1024:.0f} MiB | "
            f"{after / 1024:.0f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0, 10.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args.child, args.threads))
        return
    import subprocess
    import sys
    rows = [subprocess.run([sys.executable, __file__, "--child", str(m), "--threads",
                            str(args.threads)], check=True, capture_output=True,
                           text=True).stdout.strip().splitlines()[-1] for m in args.minutes]
    lines = [
        "# Separation speed and memory",
        "",
        f"Produced by `.venv/bin/python experiments/bench_separate.py --minutes "
        f"{' '.join(str(m) for m in args.minutes)} --threads {args.threads}` "
        f"({platform.machine()}, {args.threads} torch threads), each row in a fresh process.",
        "",
        "| song | processing time | real-time factor | peak memory rise while separating | process peak RSS |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "The 10 s chunks bound the model's working memory; the song and its four stems are "
        "held in memory as float32. The last column is the whole process's peak (Python, "
        "torch, the song and the stems included); target: a 10-minute song within 2 GiB.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "separate.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
