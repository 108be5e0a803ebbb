"""Shared fixtures: seeding, a tiny MUSDB18-HQ-layout dataset and a PostgreSQL server.
Plain helpers and constants are in helpers.py."""

import contextlib
import os
import shutil
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
@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on a free local port, started the way
    ``scripts/postgres.sh start`` starts one (:func:`xslicq.postgres.start`: initdb and
    pg_ctl in a temporary folder, as the ``postgres`` user when the tests run as root), with
    fsync off; yields the URL of an empty database and stops the server afterwards."""
    from xslicq import postgres

    with postgres_folder() as folder:
        yield postgres.start(folder, durable=False)


@contextlib.contextmanager
def postgres_folder():
    """A new folder for a PostgreSQL server, in the system's temporary folder (the
    ``postgres`` user must reach it: pytest's own folders are closed to other users); skips
    the test when PostgreSQL is not installed (fails it under ``CI=1``). Afterwards the
    server (if one was started there) is stopped and the folder removed."""
    from xslicq import postgres

    if postgres.find_bindir() is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="xslicq-pg-"))
    try:
        yield folder
    finally:
        if (folder / postgres.SETTINGS).is_file():
            postgres.stop(folder, mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_folder():
    """:func:`postgres_folder` for one test."""
    with postgres_folder() as folder:
        yield folder
