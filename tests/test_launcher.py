"""The submitit launchers (conf/hydra/launcher): SLURM settings follow the trainer, an Optuna
sweep dispatched to SLURM composes, and a multirun through submitit's local executor runs
its jobs in the submitter's sweep folder; a requeued job resumes there."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT, TINY_DATA, TINY_MODEL, compose_config

SLURM = "hydra_plugins.xslicq_launcher.xslicq_launcher.XslicqSlurmLauncher"


def launcher(overrides):
    cfg = compose_config("train", ["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    return cfg.hydra.launcher


def test_slurm_follows_trainer():
    # trainer=ddp sets devices and num_nodes; any trainer with them gives the same job shape
    node = launcher(["trainer=gpu", "trainer.devices=4", "+trainer.num_nodes=2"])
    assert node._target_ == SLURM
    assert (node.nodes, node.tasks_per_node, node.gpus_per_node) == (2, 4, 4)
    assert node.additional_parameters.requeue is True
    assert node.max_num_timeout > 0


def test_slurm_single_device_trainer():
    node = launcher(["trainer=cpu", "hydra.launcher.gpus_per_node=0", "hydra.launcher.partition=p"])
    assert (node.nodes, node.tasks_per_node, node.gpus_per_node) == (1, 1, 0)
    assert node.partition == "p"


def test_optuna_sweep_on_slurm_composes():
    url = "postgresql://xslicq@db.example:5432/optuna"
    cfg = compose_config(
        "train",
        ["hparams_search=train_optuna", "hydra/launcher=slurm", f"hydra.sweeper.storage={url}"],
        return_hydra_config=True,
    )
    assert cfg.hydra.launcher._target_ == SLURM
    assert cfg.hydra.sweeper.storage == url
    assert cfg.hydra.sweeper._target_.endswith("XslicqOptunaSweeper")


@pytest.mark.slow  # two multiruns of two tiny jobs: about 2 minutes on 2 cores
def test_local_multirun_and_requeue(tmp_path, tiny_musdb):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "xslicq.train",
        "-m",
        "hydra/launcher=local",
        "trainer=debug",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        "log_media=false",
        f"hydra.sweep.dir={sweep}",
        "seed=1,2",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for job in ("0", "1"):  # both jobs, in the submitter's folder
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in (sweep / "0" / ".hydra").glob("resumed-*")] == []

    # the same jobs requeued (as SLURM marks them): each continues its own run for an epoch
    env["SLURM_RESTART_COUNT"] = "1"
    r = subprocess.run(
        [*command, "trainer.max_epochs=2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for job in ("0", "1"):
        folder = sweep / job
        assert len(list((folder / ".hydra").glob("resumed-*"))) == 1
        assert len(list((folder / "checkpoints").glob("best-epoch001-*.ckpt"))) == 1
