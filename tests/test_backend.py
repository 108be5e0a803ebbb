"""The array-backend shim's elementwise helpers: known answers against the plain
operations they replace, their gradients, and other backends."""

import numpy as np
import pytest
import torch

from xslicq.transform.backend import magnitude, multiply, split, squared_magnitude


def complex_noise(*shape, dtype=torch.complex64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


@pytest.mark.parametrize("dtype, rtol", [(torch.complex64, 1e-6), (torch.complex128, 1e-14)])
def test_magnitudes_equal_abs(dtype, rtol):
    z = complex_noise(3, 2, 5, 7, dtype=dtype)[..., ::2]  # a strided view, as blocks are
    torch.testing.assert_close(magnitude(z), z.abs(), rtol=rtol, atol=0)
    torch.testing.assert_close(squared_magnitude(z), z.abs().square(), rtol=2 * rtol, atol=0)
    assert magnitude(torch.zeros(3, dtype=dtype)).tolist() == [0.0, 0.0, 0.0]


def test_real_and_numpy_inputs():
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert magnitude(x).tolist() == [2.0, 0.0, 3.0]
    assert squared_magnitude(x).tolist() == [4.0, 0.0, 9.0]
    a = np.array([3 + 4j, -1j])
    np.testing.assert_allclose(magnitude(a), [5.0, 1.0])
    np.testing.assert_allclose(squared_magnitude(a), [25.0, 1.0])


def test_gradients():
    # with a gradient, magnitude is abs itself: its gradient at zero is 0, not NaN
    z = torch.tensor([0j, 3 + 4j], dtype=torch.complex128, requires_grad=True)
    m = magnitude(z)
    assert torch.equal(m.detach(), z.detach().abs())
    (grad,) = torch.autograd.grad(m.sum(), z)
    assert torch.isfinite(torch.view_as_real(grad)).all() and grad[0] == 0
    # squared_magnitude is smooth: d|z|^2 is 2 z in torch's convention for complex inputs
    (grad,) = torch.autograd.grad(squared_magnitude(z).sum(), z)
    torch.testing.assert_close(grad, 2 * z.detach())
    assert torch.autograd.gradcheck(
        squared_magnitude, complex_noise(4, dtype=torch.complex128).requires_grad_()
    )


def test_multiply_complex_by_real_equals_the_plain_product():
    z, w = complex_noise(2, 3, 4), torch.rand(2, 3, 4)
    torch.testing.assert_close(multiply(z, w), z * w, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "z_shape, w_shape", [((2, 1, 3, 4), (2, 5, 3, 4)), ((2, 5, 3, 4), (1, 5, 1, 4))]
)
def test_multiply_gradients_equal_the_plain_products_under_broadcasting(z_shape, w_shape):
    """The masks' path: a mixture broadcast over targets times real masks, and the other
    way round; both gradients equal autograd's of ``z * w`` and pass gradcheck."""
    z = complex_noise(*z_shape, dtype=torch.complex128).requires_grad_(True)
    w = torch.rand(w_shape, dtype=torch.float64, requires_grad=True)
    out_shape = torch.broadcast_shapes(z_shape, w_shape)
    g = complex_noise(*out_shape, dtype=torch.complex128)
    ours = torch.autograd.grad(multiply(z, w), (z, w), g)
    plain = torch.autograd.grad(z * w, (z, w), g)
    for a, b in zip(ours, plain):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(multiply, (z, w))


def test_split_cuts_consecutive_pieces_and_passes_gradients_through():
    x = np.arange(2 * 7 * 3, dtype=np.float64).reshape(2, 7, 3)
    pieces = split(x, [1, 4, 2], axis=1)
    assert [p.shape for p in pieces] == [(2, 1, 3), (2, 4, 3), (2, 2, 3)]
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), x)
    xt = torch.from_numpy(x).requires_grad_(True)
    parts = split(xt, [1, 4, 2], axis=1)
    for a, b in zip(parts, pieces):
        np.testing.assert_array_equal(a.detach().numpy(), b)
    sum((k + 1) * p.sum() for k, p in enumerate(parts)).backward()
    expected = np.repeat([1.0, 2, 2, 2, 2, 3, 3], 3).reshape(1, 7, 3)
    np.testing.assert_array_equal(xt.grad.numpy(), np.broadcast_to(expected, x.shape))
