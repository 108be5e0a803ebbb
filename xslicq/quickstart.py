"""Train briefly on the offline synthetic data, then separate a held-out song.

    python -m xslicq.quickstart [overrides]      # what `make demo` runs
    make demo ARGS="trainer.max_steps=32"        # the same, overrides appended

Trains a fixed number of seeded optimiser steps (``trainer.max_steps`` of
``conf/experiment/demo.yaml``, no wall-clock limit), so the table is the same on every run
of one machine. Prints the SDR of every separated stem against its reference, next to the
SDR of the mixture used as the estimate, writes the stems under the run folder, and ends
with the run folder and the TensorBoard command that shows the run.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import soundfile as sf
from omegaconf import DictConfig

from .cli import run_command
from .errors import XslicqError

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What the quickstart did: the SDRs (dB) of the separated stems and of the mixture as
    the estimate, one per target, and where everything went."""

    track: str
    seconds: float
    targets: list[str]
    sdr: np.ndarray
    mixture_sdr: np.ndarray
    checkpoint: Path
    run_dir: Path
    stems_dir: Path
    tensorboard_dir: Path | None
    steps: int
    epochs: int
    train_seconds: float


def quickstart(cfg: DictConfig, run_dir: Path) -> Result:
    """Train as ``cfg`` says, separate the first test track with the best checkpoint and
    score it; the stems go to ``run_dir/separated/<track>/<target>.wav``."""
    from .metrics import sdr_db
    from .separator import Separator
    from .train import train

    start = time.perf_counter()
    _, objects = train(cfg)
    train_seconds = time.perf_counter() - start
    trainer, datamodule = objects["trainer"], objects["datamodule"]
    ckpt = (
        trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path
    )
    separator = Separator.from_checkpoint(ckpt)
    datamodule.setup("test")
    track = datamodule.test_set.tracks[0]
    mixture, references = datamodule.test_set[0]
    stems = separator.separate(mixture.numpy(), track.sample_rate, progress=True)
    out = run_dir / "separated" / track.name
    out.mkdir(parents=True, exist_ok=True)
    for t in separator.targets:
        sf.write(out / f"{t}.wav", stems[t].T, track.sample_rate, subtype="FLOAT")
    estimates = np.stack([stems[t] for t in separator.targets])
    refs = references.numpy()
    tensorboard = next(
        (Path(lg.log_dir) for lg in trainer.loggers if type(lg).__name__ == "TensorBoardLogger"),
        None,
    )
    return Result(
        track=track.name,
        seconds=track.seconds,
        targets=list(separator.targets),
        sdr=np.asarray(sdr_db(estimates, refs)),
        mixture_sdr=np.asarray(sdr_db(np.broadcast_to(mixture.numpy(), refs.shape), refs)),
        checkpoint=Path(ckpt),
        run_dir=run_dir,
        stems_dir=out,
        tensorboard_dir=tensorboard,
        steps=int(trainer.global_step),
        epochs=int(trainer.current_epoch),
        train_seconds=train_seconds,
    )


def table(result: Result) -> str:
    """The SDR table the quickstart prints: a header, one row per target, the mean."""
    rows = [f"{'stem':8s} {'SDR (dB)':>9s} {'mixture as estimate':>20s}"]
    for t, s, b in zip(result.targets, result.sdr, result.mixture_sdr):
        rows.append(f"{t:8s} {s:9.2f} {b:20.2f}")
    mean, base = float(np.mean(result.sdr)), float(np.mean(result.mixture_sdr))
    rows.append(f"{'mean':8s} {mean:9.2f} {base:20.2f}")
    return "\n".join(rows)


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it, shell-quoted."""
    path = Path(path).absolute()
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.quote(str(path))


def tensorboard_command(logdir: Path) -> str:
    """The command that shows the runs under ``logdir``: this environment's tensorboard
    when it has one (``.venv/bin/tensorboard``), else the one on PATH."""
    exe = Path(sys.executable).parent / "tensorboard"
    return f"{shown(exe) if exe.is_file() else 'tensorboard'} --logdir {shown(logdir)}"


@hydra.main(version_base="1.3", config_path="conf", config_name="quickstart")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().runtime.output_dir)
    status, result = run_command(lambda: quickstart(cfg, folder), (XslicqError, OSError))
    if status:
        raise SystemExit(status)
    print(
        f"\nseparated held-out song {result.track} ({result.seconds:.1f} s) with "
        f"{shown(result.checkpoint)}, trained {result.steps} steps ({result.epochs} epochs) "
        f"in {result.train_seconds:.0f} s"
    )
    print(table(result))
    print(f"stems written to {shown(result.stems_dir)}")
    print(f"run folder: {shown(result.run_dir)}")
    if result.tensorboard_dir is not None:
        print(f"its losses, SDRs and audio: {tensorboard_command(result.run_dir)}")
    return float(np.mean(result.sdr))


if __name__ == "__main__":
    main()
