"""The submitit launchers (conf/hydra/launcher): SLURM settings follow the trainer, an Optuna
sweep dispatched to SLURM composes, and a multirun through submitit's local executor runs
its jobs in the submitter's sweep folder, prints each job's result and leaves no ``%j``
folder; a requeued job resumes there."""

import os
import re
import subprocess
import sys

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.xslicq_launcher.xslicq_launcher import job_report, remove_unused_folder

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


def finished(value, overrides, status=JobStatus.COMPLETED, metric="val/sdr_best"):
    return JobReturn(
        overrides=overrides,
        cfg=OmegaConf.create({"optimized_metric": metric}),
        hydra_cfg=OmegaConf.create({"hydra": {"runtime": {"output_dir": "/sweep/3"}}}),
        status=status,
        _return_value=value,
    )


def test_job_report_names_the_metric_its_value_and_the_run_folder():
    hidden = ["seed=1", "hydra.sweep.dir='/sweep'"]  # hydra.* overrides are left out
    assert job_report(finished(3.14159, hidden), 3) == (
        "#3 seed=1: val/sdr_best = 3.142 in /sweep/3"
    )
    assert job_report(finished(None, ["seed=2"]), 0) == "#0 seed=2: done in /sweep/3"
    assert (
        job_report(finished(-2, ["a=1"], metric=None), 1) == "#1 a=1: result = -2.000 in /sweep/3"
    )
    two = {"values": [1.0, 25.5], "attrs": {"sdr": 1.0}}  # a two-objective sweep job
    assert job_report(finished(two, []), 4) == "#4: val/sdr_best = [1.000, 25.500] in /sweep/3"
    error = ValueError("columns_per_second must be\n  positive")
    assert job_report(finished(error, ["x=-1"], JobStatus.FAILED), 2) == (
        "#2 x=-1: failed: ValueError: columns_per_second must be positive in /sweep/3"
    )


def test_remove_unused_folder_removes_only_an_empty_placeholder(tmp_path):
    placeholder, logs = tmp_path / "%j", tmp_path / "1234"
    placeholder.mkdir()
    logs.mkdir()
    remove_unused_folder(str(placeholder))
    assert not placeholder.exists()
    remove_unused_folder(str(placeholder))  # already gone: nothing to do
    placeholder.mkdir()
    (placeholder / "keep.txt").write_text("x")
    remove_unused_folder(str(placeholder))  # not empty: kept
    assert (placeholder / "keep.txt").is_file()
    remove_unused_folder(str(logs))  # a job's folder: never removed
    assert logs.is_dir()


def local_command(sweep, data_root, *overrides):
    return [
        sys.executable,
        "-m",
        "xslicq.train",
        "-m",
        "hydra/launcher=local",
        "trainer=debug",
        f"data.root={data_root}",
        *TINY_DATA,
        *TINY_MODEL,
        "log_media=false",
        f"hydra.sweep.dir={sweep}",
        *overrides,
    ]


def reported(stdout):
    """The job lines the submitting command printed: {job number: (overrides, result,
    run folder)}."""
    lines = re.findall(r"\[HYDRA\] #(\d+) (.*?): (.*) in (\S+)$", stdout, re.MULTILINE)
    return {int(n): (overrides, result, folder) for n, overrides, result, folder in lines}


@pytest.mark.slow  # two jobs that fail at the start: 30-70 s on 2 cores
def test_local_multirun_reports_failed_jobs(tmp_path, tiny_musdb):
    sweep = tmp_path / "sweep"
    command = local_command(sweep, tiny_musdb, "system.columns_per_second=-1,-2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 1  # the basic sweeper raises the first failed job's error
    jobs = reported(r.stdout)
    assert sorted(jobs) == [0, 1]
    for n, value in ((0, -1), (1, -2)):
        overrides, result, folder = jobs[n]
        assert f"system.columns_per_second={value}" in overrides.split()
        assert result == (
            "failed: ConfigError: system.columns_per_second must be a positive number (matrix "
            f"columns per second of audio), got {value}"
        )
        assert folder == str(sweep / str(n))
    logs = list((sweep / ".submitit").iterdir())  # one folder per job id, no %j
    assert len(logs) == 2 and all(p.name.isdigit() for p in logs)


@pytest.mark.slow  # two multiruns of two tiny jobs: about 2 minutes on 2 cores
def test_local_multirun_and_requeue(tmp_path, tiny_musdb):
    sweep = tmp_path / "sweep"
    command = local_command(sweep, tiny_musdb, "seed=1,2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for job in ("0", "1"):  # both jobs, in the submitter's folder
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in (sweep / "0" / ".hydra").glob("resumed-*")] == []
    # the submitter printed each job's optimized metric (the value the job logged) and folder
    jobs = reported(r.stdout)
    assert sorted(jobs) == [0, 1]
    for n in (0, 1):
        overrides, result, folder = jobs[n]
        assert f"seed={n + 1}" in overrides.split() and folder == str(sweep / str(n))
        logged = re.search(
            r"val/sdr_best = (\S+)$", (sweep / str(n) / "train.log").read_text(), re.M
        )
        assert result == f"val/sdr_best = {logged.group(1)}"
    # submitit's logs in one folder per job id, and no empty %j folder beside them
    logs = sorted((sweep / ".submitit").iterdir())
    assert len(logs) == 2 and all(p.name.isdigit() for p in logs)
    for p in logs:
        assert (p / f"{p.name}_0_log.out").is_file() and (p / f"{p.name}_0_result.pkl").is_file()

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
