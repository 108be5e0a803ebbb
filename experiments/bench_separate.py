"""Benchmark: separation speed and memory on the CPU with the default model.

    .venv/bin/python experiments/bench_separate.py [--minutes 3] [--threads 2]

Separates a synthetic song (fluidsynth, offline) of ``--minutes`` with the default
configuration (cqlog sliCQT + xumx_matrix; weights untrained: speed does not depend on
them) in cross-faded 20 s chunks, and reports the real-time factor (processing time /
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from xslicq.data.synthetic import generate_dataset
    from xslicq.data.tracks import find_tracks, read
    from xslicq.separator import Separator
    from xslicq.system import SeparationSystem

    tmp = Path(tempfile.mkdtemp(prefix="xslicq-sep-"))
    try:
        generate_dataset(tmp / "s", tracks=2, seconds=args.minutes * 60, seed=1, test_tracks=1,
                         valid_tracks=0, progress=False)
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
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert stems["vocals"].shape == audio.shape
    duration = audio.shape[-1] / track.sample_rate
    lines = [
        "# Separation speed and memory",
        "",
        f"Produced by `.venv/bin/python experiments/bench_separate.py --minutes {args.minutes} "
        f"--threads {args.threads}` ({platform.machine()}, {args.threads} torch threads).",
        "",
        "| song | processing time | real-time factor | peak memory rise |",
        "|---|---:|---:|---:|",
        f"| {duration / 60:.1f} min synthetic stereo, default model, 20 s chunks | "
        f"{elapsed:.1f} s | {elapsed / duration:.2f} | {peak:.0f} MiB |",
        "",
        "Memory is bounded by the chunk length, not the song length (a 10-minute song uses "
        "the same chunks).",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "separate.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
