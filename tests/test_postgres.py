"""Sweeps a lab can run: scripts/postgres.sh (xslicq.postgres) starts a PostgreSQL server whose
printed URL a sweep stores its study in, stops it and starts it again with the study kept;
with a password when it listens beyond this machine; clear errors; and optuna-dashboard
serves the sweeps' studies (SQLite as documented, and the PostgreSQL one)."""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from xslicq import postgres
from xslicq.sweeper import latest_study_name

from helpers import ROOT, make_dataset

SCRIPT = ROOT / "scripts" / "postgres.sh"
LOCAL_URL = re.compile(r"postgresql://xslicq@127\.0\.0\.1:(\d+)/optuna")
STUDY = "transform_oracle-ds-valid"  # search name, data.name (the folder), split


def script(*args):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=300, env=env
    )


def oracle_sweep(data_root, storage, sweep_dir, n_trials):
    """The transform search, as documented, on ``storage``: two bark/mel trials."""
    command = [
        sys.executable,
        "-m",
        "xslicq.oracle",
        "-m",
        "hparams_search=transform_oracle",
        f"hydra.sweeper.storage={storage}",
        f"data.root={data_root}",
        "data.synthetic=null",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweep.dir={sweep_dir}",
        "search.scale=choice(bark,mel)",
    ]
    r = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


@contextlib.contextmanager
def dashboard(storage, cwd):
    """``optuna-dashboard <storage>`` on a free port of 127.0.0.1, in ``cwd``; yields a
    function that fetches a path of it as JSON (or text), and stops the server."""
    port = postgres.free_port()
    exe = Path(sys.executable).parent / "optuna-dashboard"
    proc = subprocess.Popen(
        [str(exe), storage, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            body = r.read().decode()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    try:
        start = time.monotonic()
        while True:  # it imports scikit-learn first: seconds, more on a loaded machine
            if proc.poll() is not None:
                raise AssertionError(f"optuna-dashboard exited: {proc.stdout.read()[-2000:]}")
            try:
                get("/api/studies")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() - start < 240, "optuna-dashboard did not start"
                time.sleep(0.5)
        yield get
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def served_study(get, name):
    """The study ``name`` as the dashboard's API gives it."""
    summaries = get("/api/studies")["study_summaries"]
    ids = [s["study_id"] for s in summaries if s["study_name"] == name]
    assert len(ids) == 1, summaries
    return get(f"/api/studies/{ids[0]}")


def assert_serves(get, study):
    """The dashboard shows ``study``'s trials, states and values, and its page."""
    served = served_study(get, study.study_name)
    assert served["directions"] == [d.name.lower() for d in study.directions]
    trials = sorted(served["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in trials] == [t.number for t in study.trials]
    assert [t["state"] for t in trials] == [t.state.name.capitalize() for t in study.trials]
    for shown, trial in zip(trials, study.trials):  # a failed trial has no values
        values = None if trial.values is None else pytest.approx(trial.values, rel=1e-12)
        assert shown.get("values") == values
    page = get("/dashboard/")
    assert "<html" in page.lower()


# ------------------------------------------------------------------------ the server
@pytest.mark.slow  # initdb, a two-trial search and a dashboard: 1-2 minutes on 2 cores
def test_script_server_holds_a_sweep_across_restarts(pg_folder, tmp_path):
    data_root = make_dataset(tmp_path / "ds", train=2, test=1, valid=1, seconds=3.0)
    r = script("start", "--dir", str(pg_folder))
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    assert LOCAL_URL.fullmatch(url), r.stdout
    oracle_sweep(data_root, url, tmp_path / "sweep", 2)
    name = latest_study_name(url, STUDY)  # STUDY and the digest of the search space
    study = optuna.load_study(study_name=name, storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert {t.params["search.scale"] for t in study.trials} <= {"bark", "mel"}
    with dashboard(url, tmp_path) as get:
        assert_serves(get, study)
    values = [t.values for t in study.trials]

    assert script("status", "--dir", str(pg_folder)).stdout == f"running: {url}\n"
    r = script("stop", "--dir", str(pg_folder))
    assert r.returncode == 0, r.stderr
    r = script("status", "--dir", str(pg_folder))
    assert (r.returncode, r.stdout) == (3, f"stopped: {url}\n")
    with pytest.raises(Exception, match="Connection refused|could not connect"):
        optuna.load_study(study_name=STUDY, storage=url)

    r = script("start", "--dir", str(pg_folder))  # the same server, URL and study again
    assert (r.returncode, r.stdout) == (0, f"{url}\n"), r.stderr
    again = optuna.load_study(study_name=name, storage=url)
    assert [t.values for t in again.trials] == values
    assert script("stop", "--dir", str(pg_folder)).returncode == 0


def test_fixture_server_is_the_scripts(postgres_url):
    """The tests' server comes from xslicq.postgres.start: the script's URL, a usable one."""
    assert LOCAL_URL.fullmatch(postgres_url)
    import psycopg2

    with contextlib.closing(psycopg2.connect(postgres_url)) as db, db.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), current_setting('fsync')")
        assert cursor.fetchone() == ("xslicq", "optuna", "off")  # durable=False


def test_listening_beyond_this_machine_needs_the_password(pg_folder):
    import psycopg2

    url = postgres.start(pg_folder, listen="*", durable=False)
    match = re.fullmatch(r"postgresql://xslicq:([\w-]+)@([^:/]+):(\d+)/optuna", url)
    assert match, url
    password, port = match.group(1), match.group(3)
    assert password == (pg_folder / "password").read_text().strip()
    assert oct((pg_folder / "password").stat().st_mode & 0o777) == "0o600"
    local = f"postgresql://xslicq:{password}@127.0.0.1:{port}/optuna"
    with contextlib.closing(psycopg2.connect(local)) as db, db.cursor() as cursor:
        cursor.execute("SELECT current_setting('listen_addresses')")
        assert cursor.fetchone() == ("*",)
    wrong = f"postgresql://xslicq:not-{password}@127.0.0.1:{port}/optuna"
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong)
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(f"postgresql://xslicq@127.0.0.1:{port}/optuna")
    assert postgres.start(pg_folder) == url  # a later start keeps the settings


def test_errors_name_the_problem(tmp_path):
    folder = tmp_path / "server"
    folder.mkdir()
    settings = {"port": 5999, "listen": "127.0.0.1", "host": "127.0.0.1", "user": "xslicq"}
    (folder / "server.json").write_text(
        json.dumps({**settings, "database": "optuna", "password": False})
    )
    r = script("start", "--dir", str(folder), "--port", "6000")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        f"error: {folder} holds a server with port=5999, not 6000: leave the option out, "
        "or choose another --dir\n"
    )
    assert script("url", "--dir", str(folder)).stdout == (
        "postgresql://xslicq@127.0.0.1:5999/optuna\n"
    )
    r = script("stop", "--dir", str(tmp_path / "none"))
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: {tmp_path / 'none'} holds no server")
    with pytest.raises(postgres.PostgresError, match="database 'a;b': use letters"):
        postgres.start(tmp_path / "other", database="a;b")
    assert not (tmp_path / "other").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="as root the server runs as the postgres user")
def test_root_needs_a_folder_the_postgres_user_reaches(tmp_path):
    if postgres.find_bindir() is None:
        pytest.skip("PostgreSQL is not installed")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)  # pytest's tmp_path is under a folder closed to other users
    with pytest.raises(postgres.PostgresError, match="the postgres user cannot write to"):
        postgres.start(closed / "server")


# ------------------------------------------------------------------------ the dashboard
@pytest.mark.slow  # optuna-dashboard's start-up (scikit-learn): 10-40 s on 2 cores
def test_dashboard_serves_the_sweeps_sqlite_study(tmp_path):
    """``optuna-dashboard sqlite:///outputs/optuna.sqlite`` (the sweeps' storage,
    conf/hparams_search) in the folder the sweeps ran in shows their study: here a
    two-objective study with the sweeper's kind of details stored with each trial."""
    (tmp_path / "outputs").mkdir()
    storage = "sqlite:///outputs/optuna.sqlite"
    study = optuna.create_study(
        study_name=STUDY,
        storage=f"sqlite:///{tmp_path / 'outputs' / 'optuna.sqlite'}",
        directions=["maximize", "minimize"],
    )
    for sdr, cps in ((4.5, 1200.0), (5.25, 2400.0)):
        trial = study.ask()
        trial.suggest_categorical("search.scale", ["bark", "mel"])
        trial.set_user_attr("sdr", {"mixphase": {"mean": sdr}})
        study.tell(trial, [sdr, cps])
    failed = study.ask()
    failed.set_user_attr("fail_reason", "InvalidTransform: need 0 < fmin < fmax")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    with dashboard(storage, tmp_path) as get:
        assert_serves(get, study)
        shown = served_study(get, STUDY)["trials"]
        assert {"key": "fail_reason", "value": "InvalidTransform: need 0 < fmin < fmax"} in (
            shown[2]["user_attrs"]
        )
