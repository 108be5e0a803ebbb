"""`make demo` (``python -m xslicq.quickstart``): a fixed number of seeded optimiser steps, so
the table it prints is the same on every run."""

import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, TINY_MODEL, compose_config, needs_fluidsynth


def test_demo_is_bounded_by_steps_not_by_the_clock():
    """The demo's config: seeded, ``trainer.max_steps`` alone ends training
    (no ``max_time``, no epoch limit, early stopping cannot fire first) and it ends on an
    epoch's end, so the last epoch is validated and can be the checkpoint separated."""
    cfg = compose_config("quickstart")
    trainer, data = cfg.trainer, cfg.data
    assert trainer.max_time is None
    assert isinstance(trainer.max_steps, int) and trainer.max_steps > 0
    assert trainer.max_epochs == -1
    assert cfg.seed == 42
    synthetic = data.synthetic
    train_tracks = synthetic.tracks - synthetic.valid_tracks - synthetic.test_tracks
    steps_per_epoch = train_tracks * data.samples_per_track // data.batch_size
    assert trainer.max_steps % steps_per_epoch == 0, (trainer.max_steps, steps_per_epoch)
    epochs = trainer.max_steps // steps_per_epoch
    assert cfg.callbacks.early_stopping.patience > epochs


# `make demo` shrunk: the tiny synthetic set (one training track: 8 segments, 2 batches an
# epoch), a tiny network, four steps in two validated epochs, no media; the data loader
# workers, seed and batch size are the demo's own
TINY_DEMO = (
    "data=synthetic_tiny",
    "data.val_seq_dur=2.0",
    "trainer.max_steps=4",
    "log_media=false",
    *TINY_MODEL,
)


def _make_demo(args, tmp_path, name):
    """``make demo ARGS="..."`` as the README types it (``-o .setup-stamp``: the environment
    exists, never install; ``PY``: this interpreter), into ``tmp_path/name``."""
    run = tmp_path / name
    overrides = [*args, f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run}"]
    r = subprocess.run(
        ["make", "-s", "-o", ".setup-stamp", "demo", f"PY={sys.executable}"]
        + [f"ARGS={' '.join(overrides)}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "XSLICQ_DATA"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout, run


def _table(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("stem "))
    end = next(i for i, line in enumerate(lines) if line.startswith("mean "))
    return lines[start : end + 1]


@pytest.mark.slow
@needs_fluidsynth
def test_make_demo_prints_the_same_table_twice(tmp_path):
    """Two runs of ``make demo`` (the first renders the synthetic set into an empty data
    folder, the second reads it back) print the same table to the last digit, and the
    folder and TensorBoard command they print show the run."""
    first, run1 = _make_demo(TINY_DEMO, tmp_path, "run1")
    second, run2 = _make_demo(TINY_DEMO, tmp_path, "run2")
    table = _table(first)
    assert [line.split()[0] for line in table] == [
        "stem", "vocals", "drums", "bass", "other", "mean"
    ]  # fmt: skip
    assert table == _table(second), f"\n{first}\n---\n{second}"
    assert "trained 4 steps (2 epochs)" in first
    assert f"run folder: {run1}\n" in first
    tensorboard = re.search(r"its losses, SDRs and audio: (\S+) --logdir (\S+)$", first, re.M)
    assert tensorboard and tensorboard.group(2) == str(run1)
    assert list((run1 / "tensorboard").glob("events.out.tfevents.*"))
    assert len(list((run2 / "separated").glob("*/*.wav"))) == 4
