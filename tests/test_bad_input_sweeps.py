"""Sweep storage: another search space opens its own study (it ran 0 trials in the old one and
reported that one's results); workers started at the same instant on a fresh PostgreSQL
database both get the storage (one died on CREATE TYPE studydirection); a storage that cannot
be opened (malformed URL, unknown driver, unreachable server, read-only database) is one
error naming it (raw SQLAlchemy tracebacks before), one ``error:`` line with exit status 2 on
the command line."""

import contextlib
import json
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from omegaconf import OmegaConf

from xslicq import postgres
from xslicq.sweeper import StudySweeper, SweepStorageError, latest_study_name, make_storage

from helpers import ROOT

WORKER = """
import json, sys, time
from xslicq.sweeper import make_storage, open_study
urls = sys.argv[1:]
print("ready", flush=True)
start = float(sys.stdin.readline())
for i, url in enumerate(urls):
    time.sleep(max(0.0, start + i - time.time()))
    began = time.time() - (start + i)
    try:
        open_study(make_storage(url), "race", "{}", directions=["maximize"])
        print(json.dumps(["ok", began]), flush=True)
    except Exception as err:
        print(json.dumps([type(err).__name__ + ": " + str(err).splitlines()[0], began]), flush=True)
"""


class Launcher:
    """Jobs that return their ``x`` without running anything."""

    def __init__(self):
        self.launched = 0

    def launch(self, overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        self.launched += len(overrides)
        return [
            JobReturn(
                status=JobStatus.COMPLETED,
                _return_value=float(dict(o.split("=", 1) for o in job)["x"]),
            )
            for job in overrides
        ]


def sweeper(tmp_path, storage, params, n_trials=2, name="search"):
    s = StudySweeper(
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name=name,
        n_trials=n_trials,
        params=params,
        heartbeat_interval=None,
    )
    s.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}, "x": 0.0})
    s.launcher = Launcher()
    return s


# ----------------------------------------------------------------- another space
def test_another_search_space_opens_its_own_study_and_the_same_one_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.sqlite'}"
    first = sweeper(tmp_path, storage, {"x": "choice(1.0, 2.0)"})
    first.sweep([])
    other = sweeper(tmp_path, storage, {"x": "choice(3.0, 4.0)"})
    other.sweep([])
    assert other.launcher.launched == 2  # it ran 0 trials in the first study
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert len(names) == 2 and all(n.startswith("search-") and len(n) == 15 for n in names)
    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert result["study_name"] == latest_study_name(storage, "search")
    assert result["best_value"] in (3.0, 4.0)  # not the first study's results
    for n in names:
        values = {t.value for t in optuna.load_study(study_name=n, storage=storage).trials}
        assert values <= {1.0, 2.0} or values <= {3.0, 4.0}
    again = sweeper(tmp_path, storage, {"x": "choice(1.0, 2.0)"}, n_trials=3)
    again.sweep([])  # the first space again: its study resumes with one more trial
    assert again.launcher.launched == 1
    assert sorted(len(optuna.load_study(study_name=n, storage=storage).trials) for n in names) == [
        2,
        3,
    ]


# ----------------------------------------------------------- the PostgreSQL race
@contextlib.contextmanager
def fresh_databases(url, count):
    """``count`` new empty databases on the server of ``url``; yields their URLs."""
    import psycopg2

    base, _ = url.rsplit("/", 1)
    names = [f"race_{time.monotonic_ns()}_{i}" for i in range(count)]
    db = psycopg2.connect(url)
    db.autocommit = True
    try:
        with db.cursor() as cursor:
            for name in names:
                cursor.execute(f"CREATE DATABASE {name}")
        yield [f"{base}/{name}" for name in names]
    finally:
        with db.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        db.close()


def test_two_workers_started_together_on_a_fresh_postgres_database_both_open_it(postgres_url):
    """10 fresh databases; two worker processes open the sweep's storage and study on each
    at the same instant (both wait for a shared start time after their imports)."""
    with fresh_databases(postgres_url, 10) as urls:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *urls],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            for w in workers:
                assert w.stdout.readline() == "ready\n", w.stderr.read()[-2000:]
            start = time.time() + 0.5
            for w in workers:
                w.stdin.write(f"{start}\n")
                w.stdin.flush()
            outputs = [w.communicate(timeout=120) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        study = optuna.load_study(study_name="race", storage=urls[0])
        assert study.user_attrs["search_space"] == "{}"
    rounds = [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]
    assert all(len(r) == 10 for r in rounds), outputs
    assert [[outcome for outcome, _ in r] for r in rounds] == [["ok"] * 10] * 2, rounds
    together = sum(abs(a[1] - b[1]) < 0.05 for a, b in zip(*rounds))
    assert together >= 5, rounds  # the rounds did start at the same instant


# ------------------------------------------------------------- storages that fail
def test_a_malformed_url_or_unknown_driver_is_named():
    with pytest.raises(SweepStorageError) as info:
        make_storage("postgresql//xslicq@127.0.0.1/optuna")
    assert str(info.value) == (
        "hydra.sweeper.storage must be a database URL such as sqlite:///path/study.sqlite or "
        "postgresql://user@host:5432/db, got 'postgresql//xslicq@127.0.0.1/optuna'"
    )
    with pytest.raises(SweepStorageError, match=r"^cannot open the sweep storage nosuch://x/y: "):
        make_storage("nosuch://x/y")
    with pytest.raises(
        SweepStorageError,
        match=r"^cannot open the sweep storage postgresql://u:\*\*\*@127\.0\.0\.1:notaport/db: ",
    ):
        make_storage("postgresql://u:secret@127.0.0.1:notaport/db")


def test_an_unreachable_server_is_one_error_line_naming_it(tmp_path):
    port = postgres.free_port()
    url = f"postgresql://xslicq:secret@127.0.0.1:{port}/optuna"
    with pytest.raises(SweepStorageError) as info:
        make_storage(url)
    message = str(info.value)
    assert message.startswith(
        f"cannot open the sweep storage postgresql://xslicq:***@127.0.0.1:{port}/optuna: "
    )
    assert "Connection refused" in message and "\n" not in message and "secret" not in message
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "xslicq.oracle",
            "-m",
            "hparams_search=transform_oracle",
            f"hydra.sweeper.storage={url}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.splitlines()[-1] == f"error: {message}", r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_a_read_only_database_is_named(postgres_url, tmp_path):
    import psycopg2

    with fresh_databases(postgres_url, 1) as (url,):
        name = url.rsplit("/", 1)[1]
        make_storage(url)  # the tables exist; from now on nothing can be written
        db = psycopg2.connect(postgres_url)
        db.autocommit = True
        with db.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        db.close()
        s = sweeper(tmp_path, url, {"x": "choice(1.0, 2.0)"})
        with pytest.raises(SweepStorageError) as info:
            s.sweep([])
    assert str(info.value).startswith(f"cannot use the sweep storage {url} for study 'search-"), (
        info.value
    )
    assert "read-only transaction" in str(info.value) and s.launcher.launched == 0
