"""Shared fixtures: small transforms, signals, GPU detection and a PostgreSQL server."""
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

from xslicq.transform import SCALES, SliCQT, cupy_available

SR = 44100

# the default scales at their documented defaults (oct takes bins per octave)
SCALE_KWARGS = {
    "cqlog": dict(bins=262, fmin=32.9, fmax=22050.0),
    "oct": dict(bins=24, fmin=32.9, fmax=22050.0),
    "mel": dict(bins=262, fmin=32.9, fmax=22050.0),
    "bark": dict(bins=262, fmin=32.9, fmax=22050.0),
    "vqlog": dict(bins=262, fmin=32.9, fmax=22050.0),
}
assert set(SCALE_KWARGS) == set(SCALES)

_TRANSFORMS = {}


def transform(scale="cqlog", backend="torch", **kwargs):
    """A cached transform (building the default tables takes ~0.1 s)."""
    key = (scale, backend, tuple(sorted(kwargs.items())))
    if key not in _TRANSFORMS:
        kw = {**SCALE_KWARGS[scale], **kwargs}
        _TRANSFORMS[key] = SliCQT(scale=scale, sample_rate=SR, backend=backend, **kw)
    return _TRANSFORMS[key]


def rel_err(x, y):
    x, y = np.asarray(x), np.asarray(y)
    return float(np.linalg.norm(x - y) / np.linalg.norm(x))


def torch_cuda_available():
    return torch.cuda.is_available()


requires_cupy = pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA GPU not usable")
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch CUDA not available")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


# ------------------------------------------------------------------------- PostgreSQL
def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent          # the directory with all the tools
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
        return subprocess.run(run_as + [str(bindir / tool), *args], check=True,
                              capture_output=True, text=True, timeout=120)

    pg("initdb", "-D", str(data), "-U", "xslicq", "-A", "trust", "-E", "UTF8", "--no-sync")
    pg("pg_ctl", "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o",
       f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "xslicq", "optuna")
        yield f"postgresql://xslicq@127.0.0.1:{port}/optuna"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)
