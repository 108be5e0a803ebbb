"""Wiener-EM in NumPy (xslicq.filtering_numpy): batches of frames change nothing but
rounding and bound the working memory, the closed-form solve is the matrix solve, and the
result is the torch version's."""

import numpy as np
import pytest
import torch

from xslicq.filtering import wiener_block as wiener_torch
from xslicq.filtering_numpy import BATCH_COEFFICIENTS, _solve, wiener_block

from helpers import peak_bytes


def block(b=1, j=4, c=2, f=5, s=3, m=16, seed=0):
    """Random complex64 mixture (B, C, F, S, M) and masked estimates (B, J, C, F, S, M)."""
    rng = np.random.default_rng(seed)
    shape = (b, c, f, s, m)
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    masks = rng.random((b, j, 1, f, s, m)).astype(np.float32)
    return masks * x[:, None], x


def rel_error(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 7, 100, BATCH_COEFFICIENTS])
def test_frame_batches_equal_the_whole_block(c, batch):
    y, x = block(b=2, j=3, c=c, f=6, s=3, m=10, seed=c)
    whole = wiener_block(y, x, 2, batch_coefficients=None)
    out = wiener_block(y, x, 2, batch_coefficients=batch)
    assert out.shape == y.shape and out.dtype == np.complex64
    assert rel_error(out, whole) < 1e-6


@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("iterations", [1, 2])
def test_equals_the_torch_filter(c, iterations):
    y, x = block(b=2, j=4, c=c, f=7, s=2, m=24, seed=10 + c)
    ours = wiener_block(y, x, iterations, batch_coefficients=50)  # 7 frames at a time
    ref = wiener_torch(torch.from_numpy(y), torch.from_numpy(x), iterations).numpy()
    assert rel_error(ours, ref) < 1e-5


@pytest.mark.parametrize("c", [1, 2, 3])
def test_the_solve_is_the_inverse_of_the_mixture_covariance(c):
    """``_solve`` (closed form for one and two channels) against ``(sum_j v_j R_j + eps
    I)^-1 x`` built and solved per coefficient in complex128."""
    rng = np.random.default_rng(c)
    b, j, f, n = 2, 3, 4, 5
    a = rng.standard_normal((b, j, f, c, 2 * c)) + 1j * rng.standard_normal((b, j, f, c, 2 * c))
    r = (a @ np.swapaxes(a, -1, -2).conj() / (2 * c)).astype(np.complex64)  # Hermitian PD
    v = rng.random((b, j, f, n)).astype(np.float32)
    x = (rng.standard_normal((b, c, f, n)) + 1j * rng.standard_normal((b, c, f, n))).astype(
        np.complex64
    )
    eps = 1e-3
    cxx = np.einsum("bjfn,bjfcd->bfncd", v.astype(np.float64), r.astype(np.complex128))
    cxx += eps * np.eye(c)
    ref = np.linalg.solve(cxx, np.moveaxis(x, 1, -1)[..., None].astype(np.complex128))
    ref = np.moveaxis(ref[..., 0], -1, 1)  # (B, C, F, n)
    got = _solve(r, v, x, eps)
    assert got.shape == x.shape and got.dtype == np.complex64
    assert rel_error(got, ref) < 1e-5


def test_the_working_memory_is_one_copy_of_the_estimates_and_a_batch():
    """Batched, two iterations allocate the refined estimates once (filtered in place
    after the first) and a batch's temporaries; the whole block at once takes several
    copies."""
    y, x = block(j=4, c=2, f=20, s=1, m=4096)  # 5 MiB of estimates
    batched = peak_bytes(lambda: wiener_block(y, x, 2, batch_coefficients=1 << 12))
    whole = peak_bytes(lambda: wiener_block(y, x, 2, batch_coefficients=None))
    assert y.nbytes < batched < 1.25 * y.nbytes
    assert whole > 3 * y.nbytes


def test_the_input_is_left_alone_and_zero_iterations_return_it():
    y, x = block()
    before = y.copy()
    wiener_block(y, x, 2)
    np.testing.assert_array_equal(y, before)
    assert wiener_block(y, x, 0) is y


def test_the_filtered_targets_add_up_to_the_mixture():
    y, x = block(j=3, c=2, f=4, s=2, m=32, seed=5)
    out = wiener_block(y, x, 1, batch_coefficients=30)
    assert rel_error(out.sum(1), x) < 1e-4


def test_a_mixture_of_another_shape_is_refused():
    y, x = block()
    with pytest.raises(
        ValueError,
        match=r"mixture block of shape \(1, 2, 5, 3, 15\) does not fit estimates of shape "
        r"\(1, 4, 2, 5, 3, 16\): expected \(1, 2, 5, 3, 16\)",
    ):
        wiener_block(y, x[..., :15], 1)
