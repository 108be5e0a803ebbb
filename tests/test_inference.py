"""The torch-free pieces of inference: NumPy resampling and Wiener-EM against their torch
counterparts, the shared chunk plan, and the transforms importing without torch."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchaudio

from xslicq.filtering import wiener_block as wiener_torch
from xslicq.filtering_numpy import wiener_block as wiener_numpy
from xslicq.inference import SeparationInputError, check_audio, chunk_plan
from xslicq.resample import resample
from xslicq.transform import RaggedToMatrix

from helpers import NO_TORCH, ROOT, rel_err, transform


@pytest.mark.parametrize("rates", [(44100, 48000), (48000, 44100), (22050, 44100), (44100, 8000)])
def test_resample_equals_torchaudio(rates):
    """torchaudio's kernels computed in float64 (its float32 ones lose digits of each tap's
    distance: 4e-5 off here, 3e-3 at 44056 Hz; xslicq.resample computes the distance
    exactly), to float32 rounding."""
    x = np.random.default_rng(0).standard_normal((2, 3, 20011)).astype(np.float32)
    ours = resample(x, *rates)
    exact = torch.from_numpy(x.astype(np.float64))
    ref = torchaudio.functional.resample(exact, *rates).numpy()
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 2e-6


def test_resample_same_rate_is_the_input():
    x = np.ones((2, 100), np.float32)
    assert resample(x, 44100, 44100) is x


@pytest.mark.parametrize("iterations", [1, 2])
def test_numpy_wiener_equals_torch(iterations):
    rng = np.random.default_rng(1)
    shape = (2, 2, 5, 7, 16)  # (B, C, rows, S, M)
    mix = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    est = mix[:, None] * rng.random((2, 4) + shape[1:]).astype(np.float32)
    ours = wiener_numpy(est, mix, iterations)
    ref = wiener_torch(torch.from_numpy(est), torch.from_numpy(mix), iterations).numpy()
    assert ours.dtype == np.complex64 and ours.shape == est.shape
    assert rel_err(ref, ours) < 1e-5


@pytest.mark.parametrize("n", [100, 1000, 1001, 2500, 7777])
def test_chunk_plan_covers_every_sample_with_weight_one(n):
    plan = chunk_plan(n, chunk=1000, overlap=200)
    total = np.zeros(n)
    for start, w in plan:
        assert len(w) <= 1000 and w.dtype == np.float32
        total[start : start + len(w)] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert len(plan) == (1 if n <= 1000 else len(range(0, n - 200, 800)))


def test_check_audio_upmixes_mono_and_names_problems():
    x, mono = check_audio(np.ones(10, np.float64))
    assert mono and x.shape == (2, 10) and x.dtype == np.float32
    with pytest.raises(SeparationInputError, match="audio must be floating point, got int16"):
        check_audio(np.ones((2, 10), np.int16))
    with pytest.raises(SeparationInputError, match="got 10 channels"):
        check_audio(np.ones((10, 2), np.float32))  # (samples, channels)


def test_numpy_matrix_inverse_of_a_coarse_grid_is_writable():
    """T = M / 2 (r == 2): NumPy's reshape of the broadcast slopes is a read-only view; the
    inverse used to write into it (ValueError: output array is read-only)."""
    t = transform("bark", backend="numpy")
    finest = max(m for _, m in t.block_shapes)
    r2m = RaggedToMatrix(t, T=finest // 2)
    mags = [np.abs(c) for c in t(np.random.default_rng(0).random((1, 2, 20000), np.float32))]
    ragged = r2m.inverse(r2m(mags))
    ref_t = transform("bark")
    ref = RaggedToMatrix(ref_t, T=finest // 2).inverse(
        RaggedToMatrix(ref_t, T=finest // 2)([torch.from_numpy(m) for m in mags])
    )
    for a, b in zip(ragged, ref):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)


def test_transforms_run_without_torch():
    """The sliCQT's NumPy backend and the matrix form import and run where torch cannot
    be imported; torch's backend and the STFT then say what is missing."""
    code = (
        NO_TORCH
        + """
import numpy as np
from xslicq.transform import SliCQT, RaggedToMatrix, STFT
t = SliCQT(scale="bark", bins=60, fmin=32.9, fmax=22050.0, backend="numpy")
x = np.random.default_rng(0).random((1, 2, 30000), np.float32)
c = t(x)
assert np.abs(t.inverse(c, length=30000) - x).max() < 1e-5
assert RaggedToMatrix(t)([np.abs(b) for b in c]).shape[2] == t.nb_bins
for build in (lambda: SliCQT(backend="torch"), STFT):
    try:
        build()
    except RuntimeError as err:
        print(err)
import xslicq.inference
print(sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "hydra", "omegaconf")))
"""
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("backend='torch' cannot run: torch is not installed")
    assert lines[1].startswith("the STFT runs on torch only: torch is not installed")
    assert "pip install 'xslicq[train]'" in lines[0]
    assert lines[2] == "[]"
