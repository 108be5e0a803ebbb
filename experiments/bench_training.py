"""Benchmark: training throughput on the CPU, default config vs the Open-Unmix setting.

    .venv/bin/python experiments/bench_training.py [--steps 10] [--threads 2]

Seconds of training audio processed per wall second (forward, loss, backward, AdamW
step) on the same batches (4 x 2 s stereo from the synthetic set) for the default
configuration (cqlog sliCQT + xumx_matrix + sdr_mix) and for `transform=stft model=umx`
(Open-Unmix's STFT 4096/1024 with its BiLSTM network). Writes the speed section of
experiments/results/training.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
CONF = Path(__file__).resolve().parents[1] / "conf"

SETTINGS = {
    "default (cqlog + xumx_matrix + sdr_mix)": [],
    "Open-Unmix setting (transform=stft model=umx)": ["transform=stft", "model=umx"],
}


def build(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from xslicq.models import count_parameters
    from xslicq.system import SeparationSystem

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    system = SeparationSystem.from_config(cfg)
    return system, count_parameters(system.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from xslicq.data.datamodule import MusdbDataModule
    from xslicq.data.synthetic import generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="xslicq-bench-"))
    try:
        generate_dataset(
            tmp / "syn",
            tracks=5,
            seconds=10.0,
            seed=0,
            test_tracks=1,
            valid_tracks=1,
            progress=False,
        )
        dm = MusdbDataModule(str(tmp / "syn"), seq_dur=2.0, batch_size=4, num_workers=0)
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        batches = [next(it) for _ in range(args.steps + 2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for name, overrides in SETTINGS.items():
        system, params = build(overrides)
        opt = system.optimizer_factory(params=system.parameters())
        system.train()

        def step(batch, system=system, opt=opt):
            opt.zero_grad()
            loss, _, _ = system.compute_loss(batch)
            loss.backward()
            opt.step()

        for b in batches[:2]:  # warm-up
            step(b)
        t0 = time.perf_counter()
        for b in batches[2:]:
            step(b)
        elapsed = time.perf_counter() - t0
        audio = args.steps * 4 * 2.0
        rows.append((name, params, elapsed / args.steps, audio / elapsed))
        print(rows[-1], flush=True)

    ratio = rows[0][3] / rows[1][3]
    section = "\n".join(
        [
            "## Training speed on the CPU",
            "",
            f"Produced by `.venv/bin/python experiments/bench_training.py --steps {args.steps} "
            f"--threads {args.threads}`: forward, loss, backward and an AdamW step on the same "
            "{} batches of 4 x 2 s stereo synthetic audio.".format(args.steps),
            "",
            "| configuration | parameters | seconds per step | seconds of audio per second |",
            "|---|---:|---:|---:|",
            *[f"| {n} | {p:,} | {s:.2f} | {a:.2f} |" for n, p, s, a in rows],
            "",
            f"Default / Open-Unmix setting throughput: **{ratio:.2f}x**. Default training step "
            f"rate: {1 / rows[0][2]:.2f} steps/s ({4 / rows[0][2]:.1f} segments/s).",
            "",
        ]
    )
    path = RESULTS / "training.md"
    text = path.read_text() if path.exists() else "# Training: proof that it learns, and speed\n\n"
    head, _, tail = text.partition("## Training speed on the CPU")
    tail = tail.partition("\n## ")[2]
    path.write_text(head.rstrip() + "\n\n" + section + ("\n## " + tail if tail else ""))
    print(section)


if __name__ == "__main__":
    main()
