"""The Optuna sweeper: the transform search through the real CLI on SQLite and on a real
PostgreSQL server (two workers, one killed mid-trial), failed trials with their reasons,
resumption, and search spaces that fit the composed configuration."""

import logging
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import OmegaConf

from xslicq.search import pareto_front
from xslicq.sweeper import StudySweeper, SweepStorageError, latest_study_name

from helpers import ROOT, compose_config, make_dataset

STUDY = "transform_oracle-ds-valid"  # search name, data.name (the folder), split; the
# study's name adds the digest of its search space: latest_study_name finds it


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_dataset(
        tmp_path_factory.mktemp("search") / "ds", train=2, test=1, valid=1, seconds=3.0
    )


def search_command(data_root, storage, sweep_dir, n_trials, *extra):
    return [
        sys.executable,
        "-m",
        "xslicq.oracle",
        "-m",
        "hparams_search=transform_oracle",
        f"data.root={data_root}",
        "data.synthetic=null",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=5",
        *extra,
    ]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_search_records_failed_trials_with_reasons_and_resumes(data_root, tmp_path):
    """An fmax above the Nyquist frequency cannot be built: those trials fail with that
    reason, the others complete with their details stored; starting the same search again
    with a larger n_trials adds exactly the missing trials."""
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    space = [
        "search.scale=choice(cqlog)",
        "search.fmax=choice(30000.0,16000.0)",
        "hydra.sweeper.sampler.seed=0",
    ]  # draws 16000, 30000, 16000, 30000
    run(search_command(data_root, storage, tmp_path / "sweep", 4, *space))
    study = optuna.load_study(study_name=latest_study_name(storage, STUDY), storage=storage)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "FAIL"]
    for t in study.trials:
        if t.params["search.fmax"] == 30000.0:
            assert t.user_attrs["fail_reason"].startswith(
                "InvalidTransform: need 0 < fmin < fmax <= 22050 Hz"
            )
            continue
        sdr, cps = t.values
        attrs = t.user_attrs
        assert cps == attrs["coefs_per_second"] and sdr == attrs["sdr"]["mixphase"]["mean"]
        assert attrs["transform"]["scale"] == "cqlog" and attrs["transform"]["fmax"] == 16000.0
        assert math.isfinite(attrs["sdr"]["irm"]["mean"]) and 0 < sdr < 60
        assert Path(attrs["output_dir"]) == tmp_path / "sweep" / str(t.number)
        assert (Path(attrs["output_dir"]) / "mixphase" / "summary.md").is_file()

    run(search_command(data_root, storage, tmp_path / "sweep2", 5, *space))
    study = optuna.load_study(study_name=latest_study_name(storage, STUDY), storage=storage)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    front = {
        complete[i].number
        for i in pareto_front([t.values for t in complete], ["maximize", "minimize"])
    }
    results = yaml.safe_load((tmp_path / "sweep2" / "optimization_results.yaml").read_text())
    assert {s["trial"] for s in results["solutions"]} == front
    assert results["trials"] == {
        s: sum(t.state.name == s for t in study.trials) for s in {"COMPLETE", "FAIL"}
    }


def _trial_numbers(url, sweep_dir, state):
    """Numbers of the trials in ``state`` that the worker writing into ``sweep_dir`` runs."""
    name = latest_study_name(url, STUDY)
    if name is None:  # the study does not exist yet
        return []
    study = optuna.load_study(study_name=name, storage=url)
    return [
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.state.name == state
        and str(t.user_attrs.get("output_dir", "")).startswith(str(sweep_dir))
    ]


def _wait(condition, what, timeout=240.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _stopped_in_a_trial(proc, url, sweep_dir):
    """Stop ``proc`` (SIGSTOP) while it runs a trial and return ``[that trial's number]``,
    or ``[]`` (and let it go on) when it was between trials: a stopped worker cannot finish
    the trial between this look and the kill that follows (its trials take a fraction of
    a second, so reading RUNNING and then killing could miss it)."""
    if not _trial_numbers(url, sweep_dir, "RUNNING"):
        return []
    proc.send_signal(signal.SIGSTOP)
    running = _trial_numbers(url, sweep_dir, "RUNNING")
    if len(running) == 1:
        return running
    proc.send_signal(signal.SIGCONT)
    return []


def test_two_workers_share_a_postgres_study_and_a_killed_one_is_failed(
    data_root, tmp_path, postgres_url
):
    """Worker A starts the study on a real PostgreSQL server; worker B joins. A is killed
    with SIGKILL in the middle of a trial; B fails that trial once its heartbeats stop and
    finishes the study: trial numbers 0..N-1, each once, exactly one failed trial (A's), and
    no point drawn twice although both workers run the same seeded sampler."""
    n = 24
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    space = ["search.scale=choice(bark,mel)"]
    a = subprocess.Popen(
        search_command(data_root, postgres_url, dir_a, n, *space),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    b = None
    try:
        _wait(lambda: _trial_numbers(postgres_url, dir_a, "COMPLETE"), "worker A's first trial")
        b = subprocess.Popen(
            search_command(data_root, postgres_url, dir_b, n, *space),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait(lambda: _trial_numbers(postgres_url, dir_b, "COMPLETE"), "worker B's first trial")
        (killed,) = _wait(
            lambda: _stopped_in_a_trial(a, postgres_url, dir_a), "worker A in a trial"
        )
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        out, _ = b.communicate(timeout=600)
        assert b.returncode == 0, out[-3000:]
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    study = optuna.load_study(
        study_name=latest_study_name(postgres_url, STUDY), storage=postgres_url
    )
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(n))
    # the seeded sampler is reseeded per trial number: the workers never repeat a point
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n
    failed = [(t.number, t.user_attrs.get("fail_reason")) for t in trials if t.state.name == "FAIL"]
    assert failed == [(killed, "no heartbeat for more than 5 s: its worker stopped")], out[-3000:]
    assert all(t.state.name == "COMPLETE" for t in trials if t.number != killed)
    assert _trial_numbers(postgres_url, dir_a, "COMPLETE") and _trial_numbers(
        postgres_url, dir_b, "COMPLETE"
    )
    assert (dir_b / "optimization_results.yaml").is_file()


def _sweeper_of(overrides, tmp_path):
    cfg = compose_config(
        "train",
        return_hydra_config=True,
        overrides=["hparams_search=train_optuna", f"paths.root_dir={tmp_path}", *overrides],
    )
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    settings = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    settings.pop("_target_")
    settings.pop("sampler")
    sweeper = StudySweeper(**settings)
    sweeper.config = cfg
    return sweeper, settings


def test_train_search_leaves_out_parameters_the_loss_does_not_have(tmp_path, caplog):
    """``loss=mse`` has no ``weight_freq``: the train_optuna search drops it (with a
    warning) instead of failing every trial, and the study is named after the loss."""
    sweeper, settings = _sweeper_of(["loss=mse"], tmp_path)
    with caplog.at_level(logging.WARNING, logger="xslicq.sweeper"):
        space, fixed = sweeper._search_space([])
    assert set(space) == {"optimizer.lr", "model.hidden", "loss.mask_sum"}
    assert "search parameter loss.weight_freq does not exist" in caplog.text
    assert settings["study_name"] == "train_optuna-synthetic-24x20.0s-seed0-cqlog-xumx_matrix-mse"
    sweeper, _ = _sweeper_of([], tmp_path)
    assert "loss.weight_freq" in sweeper._search_space([])[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(direction="up"), "direction must be maximize, minimize or a list of them"),
        (dict(n_trials=0), "n_trials must be a positive integer, got 0"),
        (dict(max_failure_rate=2.0), r"max_failure_rate must be in \[0, 1\], got 2.0"),
        (dict(heartbeat_interval=0), "heartbeat_interval must be >= 1 s"),
    ],
)
def test_bad_sweeper_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudySweeper(**kwargs)


class ScriptedLauncher:
    """A launcher whose jobs return what ``outcome(params)`` says (a value, or an exception
    to raise), without running anything: the sweeper's bookkeeping in isolation."""

    def __init__(self, outcome):
        self.outcome, self.launched = outcome, []

    def launch(self, overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        returns = []
        for i, job in enumerate(overrides):
            params = dict(o.split("=", 1) for o in job)
            self.launched.append((initial_job_idx + i, params))
            value = self.outcome(params)
            failed = isinstance(value, BaseException)
            returns.append(
                JobReturn(
                    status=JobStatus.FAILED if failed else JobStatus.COMPLETED, _return_value=value
                )
            )
        return returns


def scripted_sweeper(tmp_path, outcome, n_trials, params, storage=None, **kwargs):
    sweeper = StudySweeper(
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name="scripted",
        n_trials=n_trials,
        params=params,
        **kwargs,
    )
    sweeper.config = OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}, "x": 0.0, "kind": "a"}
    )
    sweeper.launcher = ScriptedLauncher(outcome)
    return sweeper


def test_every_outcome_is_recorded_and_the_sweep_goes_on(tmp_path):
    """A raising job, a NaN, a wrong number of values and a pruned job each end their trial
    (FAIL with the reason, or PRUNED); details returned with the values are stored; job
    numbers are trial numbers."""

    def outcome(p):
        kind = p["kind"]
        return {
            "raise": RuntimeError("boom\nsecond line"),
            "notfinite": float("nan"),
            "two": [1.0, 2.0],
            "prune": optuna.TrialPruned("too slow"),
            "ok": {"values": [float(p["x"])], "attrs": {"note": "fine"}},
        }[kind]

    storage = f"sqlite:///{tmp_path / 's.sqlite'}"
    sweeper = scripted_sweeper(tmp_path, outcome, 10, {"x": "interval(0, 1)"}, storage)
    sweeper.sweep(["kind=choice(raise,notfinite,two,prune,ok)"])
    study = optuna.load_study(study_name=latest_study_name(storage, "scripted"), storage=storage)
    assert [n for n, _ in sweeper.launcher.launched] == [t.number for t in study.trials]
    expected = {
        "raise": ("FAIL", "RuntimeError: boom"),
        "notfinite": ("FAIL", "ValueError: the job returned non-finite values [nan]"),
        "two": ("FAIL", "ValueError: the job returned 2 values for 1 objectives"),
        "prune": ("PRUNED", None),
        "ok": ("COMPLETE", None),
    }
    seen = set()
    for t in study.trials:
        kind = t.params["kind"]
        seen.add(kind)
        state, reason = expected[kind]
        assert t.state.name == state and t.user_attrs.get("fail_reason") == reason
        if kind == "ok":
            assert t.value == t.params["x"] and t.user_attrs["note"] == "fine"
        if kind == "prune":
            assert t.user_attrs["prune_reason"] == "TrialPruned: too slow"
    assert seen == set(expected)  # the seeded sampler drew every kind
    assert yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())[
        "trials"
    ] == {s: sum(t.state.name == s for t in study.trials) for s in ("FAIL", "PRUNED", "COMPLETE")}


def test_a_study_holding_another_search_space_is_refused(tmp_path):
    """A study of the sweep's name (``scripted-<digest>``) whose stored search space is not the
    sweep's is refused before any trial is asked (only a digest collision or a study written
    by hand can do this: another space has another name)."""
    storage = f"sqlite:///{tmp_path / 's.sqlite'}"
    sweeper = scripted_sweeper(tmp_path, lambda p: 1.0, 2, {"x": "interval(0, 1)"}, storage)
    name, space = sweeper.study_name_of(*sweeper._search_space([]))
    assert space == (
        '{"directions":["maximize"],"fixed":{},"params":{"x":{"attributes":{"high":1.0,'
        '"low":0.0},"name":"UniformDistribution"}}}'
    )
    assert re.fullmatch(r"scripted-[0-9a-f]{8}", name)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("search_space", "{}")
    with pytest.raises(SweepStorageError, match=f"study '{name}' in sqlite:///.* holds another"):
        sweeper.sweep([])
    assert optuna.load_study(study_name=name, storage=storage).trials == []


def test_max_failure_rate_stops_a_worker_whose_trials_keep_failing(tmp_path):
    sweeper = scripted_sweeper(
        tmp_path,
        lambda p: RuntimeError("broken"),
        10,
        {"x": "interval(0, 1)"},
        max_failure_rate=0.5,
    )
    with pytest.raises(
        RuntimeError,
        match=r"1 of this worker's 1 trials failed, more than "
        r"max_failure_rate=0.5",
    ):
        sweeper.sweep([])
