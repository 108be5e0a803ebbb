"""RaggedToMatrix: exact round trips, masks, phase, slice views, gradients and errors."""

import numpy as np
import pytest
import torch

from xslicq import signals
from xslicq.transform import SCALES, RaggedToMatrix, SliCQT

from helpers import SR, transform

LENGTH = 2 * SR + 17


def coefs_of(scale, dtype=torch.float64, batch=1, channels=2, length=LENGTH, seed=0):
    t = transform(scale)
    audio = np.stack(
        [signals.music_like(length / SR, SR, channels, seed + i)[:, :length] for i in range(batch)]
    )
    return t, t(torch.from_numpy(audio).to(dtype))


def max_rel(a_blocks, b_blocks):
    return max(float((a - b).abs().max() / a.abs().max()) for a, b in zip(a_blocks, b_blocks))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("mode", ["interpolate", "zeropad"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_complex_round_trip_is_exact(scale, mode, dtype, tol):
    t, c = coefs_of(scale, dtype)
    r = RaggedToMatrix(t, mode=mode)
    m = r(c)
    assert m.shape == (1, 2, t.nb_bins, c[0].shape[3], max(b for _, b in t.block_shapes))
    assert m.dtype == c[0].dtype and r.exact
    back = r.inverse(m)
    assert [b.shape for b in back] == [b.shape for b in c]
    assert max_rel(c, back) <= tol


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("mode", ["interpolate", "zeropad"])
def test_real_round_trip_is_exact(scale, mode):
    t, c = coefs_of(scale, torch.float32)
    mags = [b.abs() for b in c]
    r = RaggedToMatrix(t, mode=mode)
    m = r(mags)
    assert not m.is_complex()
    assert max_rel(mags, r.inverse(m)) <= 1e-6


@pytest.mark.parametrize("extra", [1, 4])
def test_T_larger_than_every_block(extra):
    t, c = coefs_of("bark")
    finest = max(m for _, m in t.block_shapes)
    r = RaggedToMatrix(t, T=finest * extra)
    assert r(c).shape[-1] == finest * extra
    assert max_rel(c, r.inverse(r(c))) <= 1e-12
    rz = RaggedToMatrix(t, mode="zeropad", T=finest + 37)
    assert max_rel(c, rz.inverse(rz(c))) <= 1e-12


@pytest.mark.parametrize("batch, channels, length", [(1, 1, 1000), (3, 2, SR + 1), (2, 4, 12345)])
def test_odd_lengths_batches_and_channels(batch, channels, length):
    t, c = coefs_of("mel", torch.float32, batch, channels, length)
    r = RaggedToMatrix(t)
    m = r(c)
    assert m.shape[:3] == (batch, channels, t.nb_bins)
    assert max_rel(c, r.inverse(m)) <= 1e-6


def test_rows_ascend_with_centre_frequencies():
    t, c = coefs_of("cqlog")
    r = RaggedToMatrix(t)
    assert np.array_equal(r.freqs, t.freqs) and np.all(np.diff(r.freqs) > 0)
    m = r([b.abs() for b in c])
    # row k of the matrix is row k of the ragged form, whichever block it sits in
    row = 0
    for (rows, mm), blk in zip(t.block_shapes, c):
        step = r.T // mm
        torch.testing.assert_close(m[:, :, row : row + rows, :, ::step], blk.abs())
        row += rows


def test_masks_stay_in_unit_interval():
    t, c = coefs_of("vqlog", torch.float32)
    g = torch.Generator().manual_seed(0)
    masks = [torch.rand(b.shape, generator=g) for b in c]
    masks[0][..., 0] = 1.0
    masks[1][..., 0] = 0.0
    for T in (None, 16):
        r = RaggedToMatrix(t, T=T)
        m = r(masks)
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
        back = r.inverse(m)
        assert all(float(b.min()) >= -1e-6 and float(b.max()) <= 1.0 + 1e-6 for b in back)
        if T is None:
            assert max(float((a - b).abs().max()) for a, b in zip(masks, back)) <= 1e-6
    # any matrix-form mask in [0, 1], e.g. a network's sigmoid output, maps into [0, 1]
    r = RaggedToMatrix(t, T=16)
    net_mask = torch.rand((1, 2, t.nb_bins, c[0].shape[3], 16), generator=g)
    assert all(0.0 <= float(b.min()) and float(b.max()) <= 1.0 for b in r.inverse(net_mask))


def test_steady_sinusoid_keeps_a_steady_phase_advance():
    t = transform("cqlog")
    f0 = 1000.0
    x = torch.from_numpy(signals.sinusoid(3 * SR, f0, SR, channels=1))[None]
    c = t(x)
    m = RaggedToMatrix(t)(c)
    row = int(np.argmin(np.abs(t.freqs - f0)))
    z = m[0, 0, row, 1].numpy()  # a middle slice, all T columns
    core = slice(7 * len(z) // 16, 9 * len(z) // 16)  # inside the slice window's plateau
    advance = np.angle(z[1:] / z[:-1])[core]
    assert np.ptp(advance) < 1e-3  # the same advance on every column
    # and it is the sinusoid's offset from the row's demodulation frequency
    df = SR / t.sllen
    expected = 2 * np.pi * (f0 / df - round(t.freqs[row] / df)) / m.shape[-1]
    assert np.median(advance) == pytest.approx(expected, abs=1e-3)
    np.testing.assert_allclose(np.abs(z[core]), np.abs(z[core]).mean(), rtol=1e-3)


def test_downsampled_blocks_average_and_interpolate_back():
    t, c = coefs_of("cqlog", torch.float32)
    r = RaggedToMatrix(t, T=64)
    assert not r.exact
    mags = [b.abs() for b in c]
    m = r(mags)
    assert m.shape[-1] == 64
    coarse = [i for i, (_, mm) in enumerate(t.block_shapes) if mm > 64]
    row = int(np.cumsum([0] + [rows for rows, _ in t.block_shapes])[coarse[0]])
    group = t.block_shapes[coarse[0]][1] // 64
    expected = mags[coarse[0]][:, :, 0].reshape(1, 2, -1, 64, group).mean(-1)
    torch.testing.assert_close(m[:, :, row], expected)
    # a constant comes back constant, blocks finer than T included
    back = r.inverse(torch.full_like(m, 0.25))
    assert all(torch.allclose(b, torch.full_like(b, 0.25)) for b in back)


@pytest.mark.parametrize("T", [None, 128])
def test_unit_mask_round_trip_through_the_waveform(T):
    """waveform -> sliCQT -> matrix mask of ones -> ragged -> the system's mask path ->
    inverse sliCQT -> waveform."""
    from xslicq.system import apply_masks

    t = transform("cqlog")
    x = torch.from_numpy(signals.music_like(3.0, SR, 2, seed=3)).float()[None]
    c = t(x)
    r = RaggedToMatrix(t, T=T)
    mask = torch.ones_like(r([b.abs() for b in c]))
    estimates = apply_masks(c, [m[:, None] for m in r.inverse(mask)])  # one target
    y = t.inverse([e[:, 0] for e in estimates], x.shape[-1])
    snr = 20 * torch.log10(x.norm() / (x - y).norm())
    assert float(snr) >= 100.0


def test_flattened_view_and_overlap_add_view():
    t, c = coefs_of("bark", length=SR)
    r = RaggedToMatrix(t)
    m = r([b.abs() for b in c])
    flat = r.flatten(m)
    assert flat.shape == (1, 2, t.nb_bins, m.shape[3] * r.T)
    torch.testing.assert_close(flat[..., r.T : 2 * r.T], m[..., 1, :])
    torch.testing.assert_close(r.unflatten(flat), m)
    # overlap-adding slice-window-weighted slices of a constant gives the constant back
    ones = torch.ones_like(m)
    ola = r.overlap_add(ones)
    assert ola.shape == (1, 2, t.nb_bins, m.shape[3] * r.T // 2)
    covered = ola[..., : (m.shape[3] - 1) * r.T // 2]
    torch.testing.assert_close(covered, torch.ones_like(covered))
    assert r.overlap_add(ones, length=SR).shape[-1] == int(np.ceil(SR * r.T / t.sllen))


def test_gradcheck_forward_and_inverse():
    """Coefficients with magnitudes away from 0 and phase steps away from pi, where the
    polar form is smooth enough for finite differences."""
    t = SliCQT("cqlog", bins=6, fmin=500.0, fmax=4000.0, sample_rate=8000, sllen=96, trlen=16)
    g = torch.Generator().manual_seed(0)
    c = []
    for rows, m in t.block_shapes:
        mag = 0.5 + torch.rand((1, 1, rows, 2, m), generator=g, dtype=torch.float64)
        phase = torch.cumsum(
            3.0 * torch.rand((1, 1, rows, 2, m), generator=g, dtype=torch.float64) - 1.5, dim=-1
        )
        c.append(torch.polar(mag, phase).requires_grad_(True))
    for T in (None, 4):
        r = RaggedToMatrix(t, T=T)
        assert torch.autograd.gradcheck(lambda *b, r=r: r(list(b)), tuple(c))
        mags = tuple(b.detach().abs().requires_grad_(True) for b in c)
        assert torch.autograd.gradcheck(lambda *b, r=r: r(list(b)), mags)
        m = r([b.detach() for b in c]).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda v, r=r: tuple(r.inverse(v)), (m,))
        real = r([b.detach() for b in mags]).requires_grad_(True)  # a mask's path
        assert torch.autograd.gradcheck(lambda v, r=r: tuple(r.inverse(v)), (real,))


def circular_interp(values, where):
    """``values`` (..., n) linearly interpolated at the positions ``where`` along the last
    axis, which wraps around (position n is column 0 again)."""
    n = values.shape[-1]
    return np.apply_along_axis(lambda v: np.interp(where, np.arange(n), v, period=n), -1, values)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("T", [16, 128])
def test_real_interpolation_is_circular_linear_interpolation(T, backend):
    """Known answer, both directions, both backends: a real block with fewer columns than
    T is upsampled by np.interp over its circular time axis (anchors on every r-th column),
    and a block with more columns is filled from the matrix by np.interp at the centres of
    the groups the forward averages."""
    t = transform("cqlog", backend=backend)
    rng = np.random.default_rng(3)
    blocks = [rng.random((1, 2, rows, 3, m)) for rows, m in t.block_shapes]
    r = RaggedToMatrix(t, T=T)
    as_backend = torch.from_numpy if backend == "torch" else np.asarray
    matrix = np.asarray(r([as_backend(b) for b in blocks]))
    inverse = [np.asarray(b) for b in r.inverse(as_backend(matrix))]
    row0 = 0
    for (rows, m), block, back in zip(t.block_shapes, blocks, inverse):
        rows_of = matrix[:, :, row0 : row0 + rows]
        row0 += rows
        if m < T:  # forward: circular linear interpolation, anchors on every r-th column
            expected = circular_interp(block, np.arange(T) / (T // m))
            np.testing.assert_allclose(rows_of, expected, rtol=0, atol=1e-12)
        elif m > T:  # inverse: output j at matrix position (j + 1/2) / r - 1/2, circular
            expected = circular_interp(rows_of, (np.arange(m) + 0.5) / (m // T) - 0.5)
            np.testing.assert_allclose(back, expected, rtol=0, atol=1e-12)


def test_numpy_backend():
    t = transform("mel", backend="numpy")
    c = t.forward(signals.music_like(1.0, SR, 2, seed=5)[None])
    r = RaggedToMatrix(t)
    m = r(c)
    assert isinstance(m, np.ndarray) and m.dtype == np.complex128
    assert max(np.abs(a - b).max() / np.abs(a).max() for a, b in zip(c, r.inverse(m))) <= 1e-12


def test_bad_inputs_name_the_shapes():
    t, c = coefs_of("bark", torch.float32, length=5000)
    r = RaggedToMatrix(t)
    bad = list(c)
    bad[2] = bad[2][:, :, :-1]
    with pytest.raises(
        ValueError,
        match=r"block shapes do not match this transform: expected "
        r"\[.*\], got \[.*\]",
    ):
        r(bad)
    other = transform("cqlog")
    assert len(other.block_shapes) != len(t.block_shapes)
    with pytest.raises(
        ValueError,
        match=rf"expected a list of {len(c)} coefficient blocks, "
        rf"got {len(other.block_shapes)}",
    ):
        r(other(torch.randn(1, 2, 5000)))
    with pytest.raises(TypeError, match="all complex or all real"):
        r([b.abs() if i else b for i, b in enumerate(c)])
    m = r(c)
    with pytest.raises(
        ValueError,
        match=rf"expected a matrix of shape \(batch, channels, "
        rf"{t.nb_bins}, slices, {r.T}\), got shape",
    ):
        r.inverse(m[..., :-1])
    with pytest.raises(ValueError, match="T must be a power of two"):
        RaggedToMatrix(t, T=100)
    with pytest.raises(ValueError, match="T must be at least the finest block's time size"):
        RaggedToMatrix(t, mode="zeropad", T=4)
    with pytest.raises(ValueError, match="unknown mode 'nearest'"):
        RaggedToMatrix(t, mode="nearest")
