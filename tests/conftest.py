"""Shared fixtures: small transforms, signals and GPU detection."""
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
