"""The training system: config composition, a tiny training run, checkpoints, resume,
errors, the CLI and the Optuna sweep."""

import math
import re
import resource
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from xslicq.train import ConfigError, keep_freed_memory, train

from helpers import CONF, TINY_DATA, TINY_MODEL, compose_config, run_module, tiny_train_config

GROUPS = {
    g: sorted(p.stem for p in (CONF / g).glob("*.yaml"))
    for g in ("transform", "model", "system", "loss", "data", "trainer")
}


@pytest.mark.parametrize("group, option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_instantiates(group, option, tmp_path):
    cfg = compose_config(
        "train",
        overrides=[f"{group}={option}", f"paths.data_dir={tmp_path}", "data.root=/nonexistent"]
        if group == "data" and option == "musdb"
        else [f"{group}={option}", f"paths.data_dir={tmp_path}"],
    )
    node = cfg[group]
    if group in ("model", "system"):
        assert callable(instantiate(node))  # _partial_: completed by from_config
    elif group == "trainer":
        with open_dict(node):
            node.default_root_dir = str(tmp_path)
        if node.accelerator == "gpu" and not torch.cuda.is_available():
            assert node.precision == "bf16-mixed"  # composes; instantiating needs a GPU
            return
        assert instantiate(node).max_epochs >= 1
    else:
        assert instantiate(node) is not None


def test_tiny_training_run_logs_checkpoints_and_media(tmp_path, tiny_musdb):
    cfg = tiny_train_config(tmp_path, tiny_musdb, ["trainer.max_epochs=2"])
    metrics, objects = train(cfg)
    for key in ("train/loss", "val/loss", "val/sdr", "val/sdr_best", "val/sdr_vocals"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["val/sdr_best"] >= metrics["val/sdr"] - 1e-6
    ckpts = tmp_path / "checkpoints"
    assert (ckpts / "last.ckpt").is_file() and list(ckpts.glob("best-*.ckpt"))
    assert not list(ckpts.glob("*.tmp"))  # atomic writes leave nothing
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(
        str(tmp_path / "tensorboard"), size_guidance={"images": 0, "audio": 0, "scalars": 0}
    ).Reload()
    tags = acc.Tags()
    assert any("spectrograms" in t for t in tags["images"])
    assert any(t.startswith("val_audio/") for t in tags["audio"])
    assert "val/sdr_best" in tags["scalars"] and "lr-AdamW" in tags["scalars"]
    # validation's scalars and its media on one step: the trainer's global step after each
    # epoch's two batches (media on epoch 0 only: log_media_every_n_epochs is 20)
    assert [e.step for e in acc.Scalars("val/sdr")] == [2, 4]
    assert [e.step for e in acc.Scalars("val/sdr_best")] == [2, 4]
    assert [e.step for e in acc.Images("val/spectrograms")] == [2]
    assert [e.step for e in acc.Audio("val_audio/mixture")] == [2]


def test_resume_restores_epoch_optimizer_and_rng(tmp_path, tiny_musdb):
    first = tiny_train_config(tmp_path / "a", tiny_musdb, ["trainer.max_epochs=1"])
    _, objects = train(first)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=False)
    assert state["epoch"] == 0 and state["optimizer_states"] and "xslicq" in state
    resumed = tiny_train_config(
        tmp_path / "b", tiny_musdb, ["trainer.max_epochs=2", f"ckpt_path={last}"]
    )
    _, objects = train(resumed)
    assert objects["trainer"].current_epoch == 2
    assert objects["trainer"].global_step == 2 * state["global_step"]


@pytest.mark.parametrize(
    "override, match",
    [
        ("optimizer.lr=0", "optimizer.lr must be a positive number, got 0"),
        ("optimizer.lr=-1e-3", "optimizer.lr must be a positive number"),
        ("optimizer.lr=abc", "optimizer.lr must be a positive number, got 'abc'"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay must be a number >= 0, got -1"),
        ("scheduler.factor=2", "scheduler.factor must be in \\(0, 1\\), got 2"),
        ("seed=-3", "seed must be an integer >= 0 or null, got -3"),
        ("keep_freed_memory=2", "keep_freed_memory must be true or false, got 2"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be an integer >= 1 \\(or -1"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val must be a number >= 0"),
        ("trainer.limit_val_batches=0", "trainer.limit_val_batches must be a positive"),
        ("data.targets=[vocals,piano]", "unknown target names \\['piano'\\]"),
        ("transform=cqlog", "data.seq_dur=2.0 s .* is shorter than one slice"),
    ],
)
def test_bad_values_stop_before_training(override, match, tmp_path, tiny_musdb):
    overrides = [override] + (["transform.sllen=107520"] if override == "transform=cqlog" else [])
    cfg = tiny_train_config(tmp_path, tiny_musdb, overrides)
    with pytest.raises(ConfigError, match=match):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def assert_trained(metrics, objects, steps=2):
    """The run took its optimiser steps (trainer=debug: two batches of one epoch), the
    weights stayed finite and validation scored the estimates."""
    assert objects["trainer"].global_step == steps
    params = [p for p in objects["system"].parameters() if p.requires_grad]
    assert params and all(bool(torch.isfinite(p).all()) for p in params)
    assert -60.0 < metrics["val/sdr"] < 60.0 and metrics["train/loss"] == metrics["train/loss"]


@pytest.mark.parametrize("model", ["cdae_blocks", "umx"])
def test_other_models_train(model, tmp_path, tiny_musdb):
    extra = ["model.hidden=8"] + (["model.layers=1"] if model == "umx" else [])
    metrics, objects = train(
        tiny_train_config(tmp_path, tiny_musdb, [f"model={model}", *extra, "log_media=false"])
    )
    assert_trained(metrics, objects)


def test_stft_baseline_and_wiener_train(tmp_path, tiny_musdb):
    metrics, objects = train(
        tiny_train_config(
            tmp_path,
            tiny_musdb,
            [
                "transform=stft",
                "transform.n_fft=512",
                "transform.hop_length=128",
                "transform.frames_per_slice=16",
                "system.wiener_iterations=1",
                "log_media=false",
            ],
        )
    )
    assert_trained(metrics, objects)


@pytest.mark.parametrize("loss", GROUPS["loss"])
def test_every_loss_trains(loss, tmp_path, tiny_musdb):
    metrics, objects = train(
        tiny_train_config(tmp_path, tiny_musdb, [f"loss={loss}", "log_media=false"])
    )
    assert_trained(metrics, objects)


def test_cli_runs_quietly_and_logs_lightning_in_train_log(tmp_path, tiny_musdb):
    """``trainer.enable_progress_bar=false`` runs (it failed: Lightning refused the configured
    TQDMProgressBar); train.log holds Lightning's messages and the final metrics (it held the
    optimized metric only); no torch deprecation warning from Lightning's pytree code and no
    Lightning advertisement on the console."""
    r = run_module(
        "xslicq.train",
        "trainer=debug",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        "log_media=false",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    console = r.stdout + r.stderr
    assert "Epoch 0:" not in console  # no bar
    assert "LeafSpec" not in console and "Tip:" not in console
    log = (tmp_path / "train.log").read_text()
    assert "`Trainer.fit` stopped: `max_epochs=1` reached." in log
    assert re.search(r"^  val/sdr: -?\d+(\.\d+)?$", log, re.M)
    assert re.search(r"^  train/loss: -?\d", log, re.M)
    assert f"run folder: {tmp_path.resolve()}\n" in log
    assert re.search(r"val/sdr_best = -?\d+\.\d{3}$", log, re.M)


def test_a_run_that_never_validated_ends_cleanly(tmp_path, tiny_musdb):
    """``trainer=overfit`` validates every 10th epoch: one epoch of it logs no val/sdr_best.
    A single run says so and exits 0 with its checkpoint (it ended in a KeyError traceback,
    exit 1); in a sweep the trial fails with the reason (test_sweeper)."""
    r = run_module(
        "xslicq.train",
        "trainer=overfit",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        "log_media=false",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "val/sdr_best was never logged (no validation ran: trainer.max_epochs=1, " in (
        r.stdout + r.stderr
    )
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


SWEEP = """# @package _global_
defaults:
  - override /hydra/sweeper: xslicq_optuna
optimized_metric: val/sdr_best
hydra:
  mode: MULTIRUN
  sweeper:
    storage: sqlite:///{db}
    study_name: test_sweep
    direction: maximize
    n_trials: 2
    n_jobs: 1
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: 1               # draws lr 0.001, then 0.0
      n_startup_trials: 2
    params:
      optimizer.lr: choice(0.0, 0.001)
"""


@pytest.mark.slow
def test_optuna_sweep_with_a_failing_trial(tmp_path, tiny_musdb):
    """Two tiny trials through the Hydra Optuna sweeper, the real train_optuna search
    narrowed by a test search config; a trial with lr=0 is rejected, recorded as failed, and
    the sweep finishes."""
    db = tmp_path / "optuna.sqlite"
    extra = tmp_path / "conf" / "hparams_search"
    extra.mkdir(parents=True)
    (extra / "test_sweep.yaml").write_text(SWEEP.format(db=db))
    r = run_module(
        "xslicq.train",
        "-m",
        f"--config-dir={tmp_path / 'conf'}",
        "hparams_search=test_sweep",
        "trainer=debug",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        "log_media=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    import optuna

    from xslicq.sweeper import latest_study_name

    storage = f"sqlite:///{db}"
    study = optuna.load_study(study_name=latest_study_name(storage, "test_sweep"), storage=storage)
    assert len(study.trials) == 2
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    for t in study.trials:
        assert (t.state.name == "FAIL") == (t.params["optimizer.lr"] == 0.0)
    (failed,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed.user_attrs["fail_reason"] == (
        "ConfigError: optimizer.lr must be a positive number, got 0.0"
    )


@pytest.mark.slow
def test_train_optuna_sweep_runs_as_documented(tmp_path, tiny_musdb):
    """``python -m xslicq.train -m hparams_search=train_optuna`` as documented, with 2 trials
    of the tiny model on the tiny data set: both complete with a value, in a study named
    after the search, the data and the groups. (It failed at once: "HydraConfig was not
    set", from ${hydra:runtime.choices...} in the study name, resolved before any job.)"""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    r = run_module(
        "xslicq.train",
        "-m",
        "hparams_search=train_optuna",
        "hydra.sweeper.n_trials=2",
        "debug=default",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    name = "train_optuna-ds-bark-xumx_matrix-sdr_mix"  # data.name: the data folder's name
    from xslicq.sweeper import latest_study_name

    study = optuna.load_study(study_name=latest_study_name(storage, name), storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(math.isfinite(t.value) for t in study.trials)
    assert {"optimizer.lr", "loss.weight_freq", "loss.mask_sum"} == set(study.trials[0].params)


def test_optuna_search_config_composes(tmp_path):
    cfg = compose_config(
        "train",
        return_hydra_config=True,
        overrides=["hparams_search=train_optuna", f"paths.root_dir={tmp_path}"],
    )
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 1234
    # resolvable outside a job, where the sweeper is built (no HydraConfig set then)
    assert sweeper.study_name == "train_optuna-synthetic-24x20.0s-seed0-cqlog-xumx_matrix-sdr_mix"
    assert sweeper.storage.startswith("sqlite:///") and cfg.optimized_metric == "val/sdr_best"
    assert set(sweeper.params) == {
        "optimizer.lr",
        "model.hidden",
        "loss.weight_freq",
        "loss.mask_sum",
    }


@pytest.mark.parametrize(
    "transform_name, columns_per_second, T",
    [
        ("cqlog", 140, 128),  # hop 40320: 128 columns per slice = 140.0 per second
        ("bark", 140, 8),  # hop 3200: 10.2 wanted -> 8 (nearest power of two, log scale)
        ("bark", 220, 16),
        ("stft", 140, 32),  # capped at the STFT's 32 frames per slice
        ("cqlog", 1, 2),  # at least 2
    ],
)
def test_network_grid_in_columns_per_second(transform_name, columns_per_second, T, tmp_path):
    """The default network grid is set in time units, so every transform gives the network a
    comparable number of frames per second, whatever its slice length."""
    from hydra.core.hydra_config import HydraConfig

    from xslicq.system import SeparationSystem, network_columns

    HydraConfig.instance().cfg = None  # as in a benchmark or a notebook
    cfg = compose_config(
        "train",
        overrides=[
            f"transform={transform_name}",
            f"system.columns_per_second={columns_per_second}",
            f"paths.data_dir={tmp_path}",
        ],
    )
    transform = instantiate(cfg.transform)
    assert network_columns(transform, columns_per_second) == T
    system = SeparationSystem.from_config(cfg)
    assert system.r2m.T == system.model.T == T
    assert system.columns_per_second == pytest.approx(T * 44100 / transform.slice_hop)
    assert system.optimizer_factory is not None
    inference = SeparationSystem.from_config(cfg, training=False)
    assert inference.optimizer_factory is None
    # outside a Hydra run the trainer's output folder stays an interpolation in the record
    assert inference.config["trainer"]["default_root_dir"] == "${hydra:runtime.output_dir}"
    assert inference.config["system"]["columns_per_second"] == columns_per_second


@pytest.mark.parametrize("model, T", [("xumx_matrix", 64), ("umx", 32), ("cdae_blocks", None)])
def test_each_network_brings_its_own_grid(model, T, tmp_path):
    """system.columns_per_second=null (the default): the network's own grid (xumx_matrix 70,
    umx 35 columns per second; cdae_blocks reads the ragged blocks)."""
    from xslicq.system import SeparationSystem

    cfg = compose_config("train", overrides=[f"model={model}", f"paths.data_dir={tmp_path}"])
    system = SeparationSystem.from_config(cfg, training=False)
    finest = max(m for _, m in system.transform.block_shapes)
    assert system.r2m.T == (finest if T is None else T)
    assert system.form == {"xumx_matrix": "matrix", "umx": "frames", "cdae_blocks": "ragged"}[model]


def test_network_grid_rejects_bad_values():
    from xslicq.system import network_columns
    from xslicq.transform import SliCQT

    t = SliCQT("bark", bins=64)
    for bad in (0, -3.0, float("nan"), "many", True):
        with pytest.raises(ValueError, match="columns_per_second must be a positive number"):
            network_columns(t, bad)
    assert network_columns(t, None) is None


def test_overfit_trainer_rebuilds_the_resumable_loader(tmp_path, tiny_musdb):
    """trainer=overfit: Lightning rebuilds the training loader with a sequential sampler
    (the ResumableLoader must let it), and epochs without validation skip the plateau
    scheduler instead of failing on the missing val/sdr."""
    metrics, objects = train(
        tiny_train_config(
            tmp_path, tiny_musdb, ["trainer=overfit", "trainer.max_epochs=3", "log_media=false"]
        )
    )
    assert objects["trainer"].global_step == 3  # one batch per epoch
    assert metrics["train/loss"] == metrics["train/loss"]


# a second round of 20 blocks of 8 MiB (every page written) after the first was freed:
# page faults of the second round
REUSE_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from xslicq.train import keep_freed_memory
    assert keep_freed_memory()
def blocks():
    kept = [np.ones(1 << 20) for _ in range(20)]
    del kept
blocks()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
blocks()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_reuses_pages_instead_of_faulting_in_new_ones():
    pages = 20 * (8 << 20) // resource.getpagesize()  # 40960 with 4 KiB pages
    faults = {}
    for mode in ("default", "keep"):
        out = subprocess.run(
            [sys.executable, "-c", REUSE_PROBE, mode], capture_output=True, text=True, check=True
        )
        faults[mode] = int(out.stdout)
    assert faults["default"] > pages / 8  # glibc hands freed blocks back, new pages fault
    assert faults["keep"] < pages / 100


def test_keep_freed_memory_refuses_values_glibc_would_truncate():
    with pytest.raises(ValueError, match="mmap_threshold must be in"):
        keep_freed_memory(mmap_threshold=1 << 40)
    with pytest.raises(ValueError, match="trim_threshold must be in"):
        keep_freed_memory(trim_threshold=-1)
