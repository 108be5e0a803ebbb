"""Wiener-EM refinement (xslicq.filtering): the batched filter against a textbook
implementation, and the answers the model gives in closed form."""

import re

import pytest
import torch

from xslicq.filtering import BATCH_COEFFICIENTS, _spans, spatial_covariances, wiener, wiener_block


def textbook(y: torch.Tensor, x: torch.Tensor, iterations: int, eps: float = 1e-10):
    """The EM written out per coefficient in complex128: powers, spatial covariances, the
    mixture covariance and its inverse, the gain ``v_j R_j Cxx^-1`` of every target."""
    y, x = y.to(torch.complex128), x.to(torch.complex128)
    c = x.shape[1]
    for _ in range(iterations):
        v = (y.abs() ** 2).mean(2)  # (B, J, F, S, M)
        outer = torch.einsum("bjcfsm,bjdfsm->bjfcd", y, y.conj())
        r = outer / (v.sum((-2, -1))[..., None, None] + eps)  # (B, J, F, C, C)
        cov = v[..., None, None] * r[:, :, :, None, None]  # (B, J, F, S, M, C, C)
        cxx = cov.sum(1) + eps * torch.eye(c, dtype=cov.dtype)
        gain = cov @ torch.linalg.inv(cxx)[:, None]
        xs = x.permute(0, 2, 3, 4, 1)[:, None, ..., None]  # (B, 1, F, S, M, C, 1)
        y = (gain @ xs)[..., 0].permute(0, 1, 5, 2, 3, 4)
    return y


def block(b=1, j=4, c=2, f=5, s=3, m=16, seed=0):
    """Random mixture (B, C, F, S, M) and masked estimates (B, J, C, F, S, M)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, f, s, m, dtype=torch.complex64, generator=g)
    masks = torch.rand(b, j, 1, f, s, m, generator=g)
    return masks * x[:, None], x


def rel_error(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("iterations", [1, 2])
@pytest.mark.parametrize("batch", [None, 1, 7, BATCH_COEFFICIENTS])
def test_batched_filter_equals_the_textbook_em(c, iterations, batch):
    y, x = block(b=2, j=3, c=c, f=6, s=3, m=10, seed=c)
    out = wiener_block(y, x, iterations, batch_coefficients=batch)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert rel_error(out, textbook(y, x, iterations)) < 1e-5


def test_frame_batches_change_nothing_but_rounding():
    y, x = block(f=28, s=4, m=64)
    whole = wiener_block(y, x, 2, batch_coefficients=None)
    for batch in (1, 28, 1000, 28 * 256):  # one frame, one frame, 35 frames, all frames
        assert rel_error(wiener_block(y, x, 2, batch_coefficients=batch), whole) < 1e-6


def test_spans_hold_whole_frames_within_the_budget():
    assert _spans(28, 100, 280) == [slice(k, k + 10) for k in range(0, 100, 10)]
    assert _spans(28, 5, 10) == [slice(k, k + 1) for k in range(5)]  # at least one frame
    assert _spans(3, 10, 12) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert _spans(3, 10, None) == [slice(0, 10)]


def test_the_filter_never_sees_more_than_the_budget(monkeypatch):
    import xslicq.filtering as filtering

    seen = []
    real = filtering._filter

    def spy(y, x, r, eps):
        seen.append(y.shape[1] * y.shape[-1])  # rows x frames
        return real(y, x, r, eps)

    monkeypatch.setattr(filtering, "_filter", spy)
    y, x = block(f=7, s=4, m=32)  # 7 rows x 128 frames
    wiener_block(y, x, 1, batch_coefficients=100)  # 14 frames (98 coefficients) at a time
    assert seen == [98] * 9 + [7 * 2]


def test_mono_is_the_soft_mask_of_the_powers():
    """One channel: R_j = 1, so y_j = |y_j|^2 / sum_k |y_k|^2 x."""
    y, x = block(c=1)
    power = y.abs() ** 2
    expected = power / power.sum(1, keepdim=True) * x[:, None]
    assert rel_error(wiener_block(y, x, 1), expected) < 1e-5


def test_the_filtered_targets_add_up_to_the_mixture():
    """sum_j v_j R_j (sum_k v_k R_k)^-1 x = x, whatever the estimates it starts from."""
    y, x = block(j=4, c=2, f=9, s=2, m=40)
    out = wiener_block(y * torch.rand(y.shape), x, 1)
    assert rel_error(out.sum(1), x) < 1e-5


def test_disjoint_estimates_that_sum_to_the_mixture_are_a_fixed_point():
    """Each coefficient given to one target whole (binary masks): only that target's
    v_j is non-zero there, its gain is the identity, and the others' is zero."""
    y, x = block(j=3, c=2, f=6, s=3, m=20)
    owner = torch.randint(0, 3, (1, 1, 1, 6, 3, 20), generator=torch.Generator().manual_seed(1))
    masks = (torch.arange(3)[None, :, None, None, None, None] == owner).to(torch.float32)
    y = masks * x[:, None]
    assert rel_error(wiener_block(y, x, 1), y) < 1e-5
    assert rel_error(wiener_block(y, x, 3), y) < 1e-5


def test_a_single_target_becomes_the_mixture():
    """J = 1: v R (v R + eps I)^-1 x = x, up to eps against the power (kept >= 0.25 |x|^2)."""
    _, x = block(j=1, c=2)
    y = (0.5 + torch.rand(x.shape)) * x
    assert rel_error(wiener_block(y[:, None], x, 1), x[:, None]) < 1e-5


def test_spatial_covariances_are_hermitian_with_unit_mean_trace():
    y, _ = block(j=2, c=2, f=4, s=2, m=8)
    r = spatial_covariances(y.reshape(1, 2, 2, 4, 16), batch_coefficients=5)
    assert r.shape == (1, 4, 2, 2, 2)
    torch.testing.assert_close(r, r.conj().transpose(-1, -2))
    trace = torch.diagonal(r, dim1=-2, dim2=-1).real.sum(-1)
    torch.testing.assert_close(trace, torch.full_like(trace, 2.0))  # tr R_j = C


def test_zero_iterations_and_ragged_blocks():
    blocks = [block(f=f, m=m, seed=f) for f, m in [(1, 128), (4, 4), (33, 8)]]
    estimates, mixture = [e for e, _ in blocks], [x for _, x in blocks]
    assert all(a is b for a, b in zip(wiener(estimates, mixture, 0), estimates))
    out = wiener(estimates, mixture, 1, batch_coefficients=64)
    for o, e, x in zip(out, estimates, mixture):
        assert rel_error(o, textbook(e, x, 1)) < 1e-5


def test_the_filter_is_differentiable():
    y, x = block(j=2, c=2, f=2, s=1, m=3)
    y = y.to(torch.complex128).requires_grad_()
    x = x.to(torch.complex128)
    filt = lambda e: wiener_block(e, x, 1, batch_coefficients=4)  # noqa: E731
    assert torch.autograd.gradcheck(filt, (y,), fast_mode=True)


@pytest.mark.parametrize("batch", [0, -3, 2.5, True, "8"])
def test_bad_batch_size_is_refused(batch):
    y, x = block()
    message = f"batch_coefficients must be an integer >= 1 or None, got {batch!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        wiener_block(y, x, 1, batch_coefficients=batch)


def test_a_mixture_of_another_shape_is_refused():
    y, x = block(f=5)
    with pytest.raises(ValueError, match=r"mixture block of shape \(1, 2, 4, 3, 16\) does not fit"):
        wiener_block(y, x[:, :, :4], 1)
