"""Shared fixtures: seeding, a tiny MUSDB18-HQ-layout dataset and a PostgreSQL server.
Plain helpers and constants are in helpers.py."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_dataset


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (the stream tests: their slices are small, and on a
    loaded machine threads that wait for each other cost more than they give)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------- tiny training
@pytest.fixture(scope="session")
def tiny_musdb(tmp_path_factory):
    """A MUSDB18-HQ-layout folder of 5 s tone tracks (helpers.make_dataset): train_1 and
    train_2 for training, train_0 for validation, test_0 for testing. Read-only: tests that
    damage a dataset build their own."""
    return make_dataset(
        tmp_path_factory.mktemp("tiny_musdb") / "ds", train=3, test=1, valid=1, seconds=5.0
    )


# ------------------------------------------------------------------------- PostgreSQL
def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # the directory with all the tools
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on a free local port (initdb + pg_ctl in a temporary
    folder, run as the ``postgres`` user when the tests run as root, which PostgreSQL
    refuses); yields the URL of an empty database and stops the server afterwards."""
    bindir = _postgres_bin()
    if bindir is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="xslicq-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def pg(tool, *args):
        return subprocess.run(
            run_as + [str(bindir / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    pg("initdb", "-D", str(data), "-U", "xslicq", "-A", "trust", "-E", "UTF8", "--no-sync")
    pg(
        "pg_ctl",
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "xslicq", "optuna")
        yield f"postgresql://xslicq@127.0.0.1:{port}/optuna"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)
