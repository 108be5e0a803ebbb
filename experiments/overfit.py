"""Proof that the pipeline learns: overfit one synthetic track with ``trainer=overfit``.

    .venv/bin/python experiments/overfit.py [--minutes 9.5] [--seconds 6] [--out DIR | --record]
        [overrides ...]

Renders a small synthetic set, trains the default configuration (cqlog sliCQT,
xumx_matrix, sdr_mix) on one track for a fixed wall-clock budget on the CPU, then
compares the SDR of the estimates on that track with the mixture-as-estimate baseline.
Writes the overfit section of training.md and overfit_loss.png to ``--out`` (default
outputs/experiments/), or with ``--record`` to experiments/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from benchutil import parse_args, save_figure, write_section

CONF = Path(__file__).resolve().parents[1] / "conf"


def one_track_root(tmp: Path, seconds: float) -> Path:
    """A dataset whose train, valid and test splits are all the same synthetic track."""
    from xslicq.data.synthetic import generate_dataset
    from xslicq.data.tracks import SYNTHETIC_MANIFEST

    source = tmp / "synthetic"
    manifest = generate_dataset(
        source, tracks=3, seconds=seconds, seed=7, test_tracks=1, valid_tracks=1, progress=False
    )
    name = manifest["split"]["train"][0]
    root = tmp / "one_track"
    for subset in ("train", "test"):
        (root / subset).mkdir(parents=True)
        os.symlink(source / "train" / name, root / subset / name)
    (root / SYNTHETIC_MANIFEST).write_text(
        json.dumps({"split": {"train": [name], "valid": [name], "test": [name]}})
    )
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=9.5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("overrides", nargs="*")
    args = parse_args(parser)

    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from xslicq.metrics import sdr_db
    from xslicq.train import train

    tmp = Path(tempfile.mkdtemp(prefix="xslicq-overfit-"))
    try:
        root = one_track_root(tmp, args.seconds)
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(
                "train",
                return_hydra_config=True,
                overrides=[
                    "trainer=overfit",
                    f"data.root={root}",
                    "data.synthetic=null",
                    f"data.seq_dur={args.seconds}",
                    "data.samples_per_track=1",
                    "data.batch_size=1",
                    "data.random_mix=false",
                    "data.gain=[1.0,1.0]",
                    "data.channel_swap=false",
                    "data.num_workers=0",
                    "data.val_seq_dur=null",
                    "log_media=false",
                    "scheduler=null",
                    "system.init_stats_batches=1",
                    f"trainer.max_time='00:00:{int(args.minutes):02d}:"
                    f"{int(args.minutes % 1 * 60):02d}'",
                    "trainer.max_epochs=100000",
                    "trainer.check_val_every_n_epoch=25",
                    f"hydra.runtime.output_dir={tmp / 'run'}",
                    *args.overrides,
                ],
            )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        start = time.perf_counter()
        _, objects = train(cfg)
        minutes = (time.perf_counter() - start) / 60
        system, dm = objects["system"], objects["datamodule"]
        dm.setup("test")
        mixture, refs = dm.test_set[0]
        system.eval()
        with torch.no_grad():
            est = system(mixture[None])[0]
        sdr_est = sdr_db(est, refs).numpy()
        sdr_mix = sdr_db(mixture[None].expand_as(refs), refs).numpy()
        targets = list(cfg.data.targets)
        steps = objects["trainer"].global_step

        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(
            str(tmp / "run" / "tensorboard"), size_guidance={"scalars": 0}
        ).Reload()
        curve = [(e.step, e.value) for e in acc.Scalars("train/loss")]
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
        ax.plot(*zip(*curve))
        ax.set_xlabel("step")
        ax.set_ylabel("train/loss (sdr_mix)")
        ax.set_title(f"overfitting one {args.seconds:.0f} s synthetic track, {minutes:.1f} min CPU")
        save_figure(fig, "overfit_loss.png", dpi=90)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = "\n".join(
        f"| {t} | {m:.2f} | {e:.2f} | {e - m:+.2f} |" for t, m, e in zip(targets, sdr_mix, sdr_est)
    )
    ok = all(
        sdr_est[targets.index(t)] - sdr_mix[targets.index(t)] >= 6 for t in ("vocals", "drums")
    )
    section = f"""## Overfitting one track (`trainer=overfit`)

Produced by `.venv/bin/python experiments/overfit.py --minutes {args.minutes} --seconds \
{args.seconds}{" " + " ".join(args.overrides) if args.overrides else ""}`: the default \
configuration (cqlog sliCQT, xumx_matrix, sdr_mix) trained on one {args.seconds:.0f} s \
synthetic track for {minutes:.1f} minutes on this CPU ({steps} steps).
SDR (global, dB) of the estimates on that track against the mixture used as the estimate:

| target | mixture as estimate | estimate | gain |
|---|---:|---:|---:|
{rows}

Target (at least 6 dB over the mixture for vocals and drums): **{"met" if ok else "not met"}**.

![training loss](overfit_loss.png)
"""
    write_section("training.md", "## Overfitting one track", section)


if __name__ == "__main__":
    main()
