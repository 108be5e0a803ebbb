"""The sliCQT: exact inverse, time-frequency sanity, backends, gradients and errors."""

import numpy as np
import pytest
import torch

from xslicq import signals
from xslicq.transform import SCALES, SliCQT

from helpers import SR, rel_err, requires_cuda, requires_cupy, transform

LENGTH = 3 * SR + 17  # a length that is a multiple of nothing


def make_signal(kind, samples, channels=2, seed=0):
    if kind == "noise":
        return signals.noise(samples, channels, seed)
    if kind == "impulse":
        return signals.impulse(samples, [0, samples // 3, samples - 1], channels)
    if kind == "chirp":
        return signals.chirp(samples, SR, channels=channels)
    if kind == "music":
        return signals.music_like(samples / SR, SR, channels, seed)[:, :samples]
    raise ValueError(kind)


SIGNALS = ["noise", "impulse", "chirp", "music"]


# ---------------------------------------------------------------- exact inverse
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("kind", SIGNALS)
def test_numpy_float64_inverse_is_exact(scale, kind):
    t = transform(scale, backend="numpy")
    x = make_signal(kind, LENGTH)[None]
    c = t.forward(x)
    y = t.inverse(c, length=LENGTH)
    assert isinstance(y, np.ndarray) and y.dtype == np.float64 and y.shape == x.shape
    assert rel_err(x, y) <= 1e-12


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("kind", SIGNALS)
def test_torch_float32_inverse_is_exact(scale, kind):
    t = transform(scale)
    x = torch.from_numpy(make_signal(kind, LENGTH)[None]).float()
    c = t(x)
    assert all(b.dtype == torch.complex64 for b in c)
    y = t.inverse(c, length=LENGTH)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert rel_err(x, y) <= 1e-5


@pytest.mark.parametrize("scale", SCALES)
def test_torch_float64_inverse_is_exact(scale):
    t = transform(scale)
    x = torch.from_numpy(make_signal("music", LENGTH)[None])
    assert rel_err(x, t.inverse(t(x), length=LENGTH)) <= 1e-12


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.2, 0.99])
def test_signals_shorter_than_one_slice(scale, fraction):
    t = transform(scale)
    length = max(1, int(fraction * t.sllen))
    x = torch.from_numpy(make_signal("noise", length, seed=length)[None])
    c = t(x)
    assert all(b.shape[3] == t.nb_slices(length) <= 3 for b in c)
    assert rel_err(x, t.inverse(c, length=length)) <= 1e-12


@pytest.mark.parametrize("batch, channels", [(1, 1), (16, 1), (3, 8), (2, 5)])
def test_batches_and_channels(batch, channels):
    t = transform("bark")
    x = torch.randn(batch, channels, 20000, dtype=torch.float64)
    c = t(x)
    assert all(b.shape[:2] == (batch, channels) for b in c)
    y = t.inverse(c, length=20000)
    assert y.shape == x.shape
    assert rel_err(x, y) <= 1e-12
    # every batch item and channel is transformed on its own
    single = t(x[-1:, -1:])
    for b_all, b_one in zip(c, single):
        torch.testing.assert_close(b_all[-1:, -1:], b_one, rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("batch", [1, 2, 7, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 8])
def test_batches_and_channels_exhaustive(scale, batch, channels):
    t = transform(scale)
    length = SR + 17
    x = torch.randn(batch, channels, length)
    assert rel_err(x, t.inverse(t(x), length=length)) <= 1e-5
    xd = x.double()
    assert rel_err(xd, t.inverse(t(xd), length=length)) <= 1e-12


@pytest.mark.parametrize("sllen", [None, 4 * SR])
def test_mega_slices(sllen):
    """A slice may be as long as a whole training segment."""
    t = SliCQT("cqlog", bins=84, fmin=40.0, fmax=SR / 2, sample_rate=SR, sllen=sllen)
    x = torch.randn(2, 2, 4 * SR, dtype=torch.float64)
    c = t(x)
    assert rel_err(x, t.inverse(c, length=x.shape[-1])) <= 1e-12


def test_default_length_covers_the_signal():
    t = transform("mel")
    x = torch.randn(1, 1, 5000, dtype=torch.float64)
    y = t.inverse(t(x))
    assert y.shape[-1] >= 5000
    torch.testing.assert_close(y[..., :5000], x, rtol=0, atol=1e-12)
    torch.testing.assert_close(y[..., 5000:], torch.zeros_like(y[..., 5000:]), rtol=0, atol=1e-12)


# ------------------------------------------------------------------- structure
@pytest.mark.parametrize("scale", SCALES)
def test_blocks_match_block_shapes_and_freqs(scale):
    t = transform(scale)
    x = torch.randn(2, 3, 30000)
    c = t(x)
    slices = t.nb_slices(30000)
    assert [tuple(b.shape) for b in c] == [(2, 3, r, slices, m) for r, m in t.block_shapes]
    assert sum(r for r, _ in t.block_shapes) == len(t.freqs) == t.nb_bins
    assert t.freqs[0] == 0.0 and np.all(np.diff(t.freqs) > 0)
    assert t.freqs[-1] == pytest.approx(SR / 2)
    assert isinstance(t.sllen, int) and isinstance(t.trlen, int)
    assert t.sllen % 4 == 0 and t.trlen % 2 == 0 and t.sllen > 2 * t.trlen
    ms = [m for _, m in t.block_shapes]
    assert ms[1:] == sorted(ms[1:]) or ms[-1] < ms[-2]  # time resolution grows with frequency


def test_nyquist_row_when_fmax_below_nyquist():
    t = SliCQT("cqlog", bins=48, fmin=50.0, fmax=8000.0, sample_rate=SR)
    assert len(t.freqs) == 48 + 2
    assert t.freqs[0] == 0 and t.freqs[-1] == SR / 2
    x = torch.randn(1, 2, 30000, dtype=torch.float64)
    assert rel_err(x, t.inverse(t(x), length=30000)) <= 1e-12


def test_suggested_lengths_and_q():
    t = transform("cqlog")
    # narrowest window (the first bin) spans about three spectrum samples at the suggested sllen
    first_bw = t.scale.bandwidths[0]
    assert 3 <= first_bw * t.sllen / SR < 3.2
    assert t.trlen == t.sllen // 4
    np.testing.assert_allclose(t.q[1:], t.q[1], rtol=1e-9)  # constant Q over the scale bins
    assert t.q[0] == 0.0


def test_canonical_dual_gives_an_orthogonal_projection():
    """Within one slice, analysis followed by synthesis with the dual windows is the
    orthogonal projection onto the frame's range (idempotent and self-adjoint for the real
    inner product), which holds for the canonical dual only."""
    t = SliCQT("mel", bins=40, fmin=30.0, fmax=SR / 2, sample_rate=SR, backend="numpy")
    frame, n = t.frame, t.sllen

    def analyse(x):
        spec = np.fft.rfft(x, norm="forward")
        return [np.fft.ifft(spec[b.index] * b.window, norm="forward") for b in frame.blocks]

    canonical = [b.dual for b in frame.blocks]

    def synthesise(c, duals=canonical):
        spec = np.zeros(frame.nf, complex)
        for b, cb, dual in zip(frame.blocks, c, duals):
            np.add.at(spec, b.index, np.fft.fft(cb, norm="forward") * dual)
        return np.fft.irfft(spec, n=n, norm="forward")

    def dot(a, b):
        return sum(np.vdot(u, v).real for u, v in zip(a, b))

    rng = np.random.default_rng(1)
    x = rng.standard_normal(n)
    assert rel_err(x, synthesise(analyse(x))) < 1e-13
    c1, c2 = (
        [
            rng.standard_normal(b.index.shape) + 1j * rng.standard_normal(b.index.shape)
            for b in frame.blocks
        ]
        for _ in range(2)
    )
    p1, p2 = analyse(synthesise(c1)), analyse(synthesise(c2))
    assert max(np.abs(a - b).max() for a, b in zip(analyse(synthesise(p1)), p1)) < 1e-12
    assert abs(dot(p1, c2) - dot(c1, p2)) < 1e-10 * dot(c1, c1)
    # another dual (without the M weights) reconstructs exactly too, but its projection
    # is not self-adjoint
    plain = np.zeros(frame.nf)
    for b in frame.blocks:
        np.add.at(plain, b.index, b.window**2)
    other = [b.window / plain[b.index] for b in frame.blocks]
    assert rel_err(x, synthesise(analyse(x), other)) < 1e-13
    q1, q2 = analyse(synthesise(c1, other)), analyse(synthesise(c2, other))
    assert abs(dot(q1, c2) - dot(c1, q2)) > 1e-3 * abs(dot(q1, c2))


# ---------------------------------------------------- time-frequency sanity
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("target", [110.0, 440.0, 1234.5, 5000.0, 15000.0])
@pytest.mark.parametrize("offset", [0.0, 0.3, -0.3])
def test_sinusoid_peaks_in_nearest_bin(scale, target, offset):
    """A sinusoid at a bin's centre, or 30% of the way towards a neighbour, has most of
    its energy in that bin's row."""
    t = transform(scale, backend="numpy")
    k = int(np.argmin(np.abs(t.freqs[1:-1] - target))) + 1
    f0 = t.freqs[k] + offset * (t.freqs[k + (1 if offset > 0 else -1)] - t.freqs[k])
    x = signals.sinusoid(2 * SR, f0, SR, channels=1)[None]
    c = t.forward(x)
    energy = np.concatenate([np.mean(np.abs(b[0, 0]) ** 2, axis=(1, 2)) for b in c])
    assert int(np.argmax(energy)) == k


@pytest.mark.parametrize("n", [0, 12345, 44100, 100003, 131071])
def test_impulse_peaks_at_the_coefficient_covering_it(n):
    t = transform("cqlog", backend="numpy")
    x = signals.impulse(3 * SR, [n], channels=1)[None]
    c = t.forward(x)
    for block in (len(c) // 2, len(c) - 2, len(c) - 1):
        mag = np.abs(c[block][0, 0]).sum(axis=0)  # (slices, time), summed over rows
        peak = np.unravel_index(np.argmax(mag), mag.shape)
        assert tuple(int(v) for v in peak) == tuple(int(v) for v in t.locate(n, block))
        assert abs(t.coef_sample(block, *peak) - n) <= t.sllen / t.block_shapes[block][1] / 2 + 1


# --------------------------------------------------------------- backends
@pytest.mark.parametrize("scale", SCALES)
def test_numpy_and_torch_agree_in_float64(scale):
    tn, tt = transform(scale, backend="numpy"), transform(scale)
    x = make_signal("music", SR + 17)[None]
    cn, ct = tn.forward(x), tt(torch.from_numpy(x))
    scale_ = max(np.abs(b).max() for b in cn)
    for a, b in zip(cn, ct):
        np.testing.assert_allclose(b.numpy(), a, rtol=0, atol=1e-10 * scale_)
    np.testing.assert_allclose(
        tt.inverse(ct, SR + 17).numpy(), tn.inverse(cn, SR + 17), rtol=0, atol=1e-10
    )


def test_numpy_backend_keeps_float32():
    t = transform("bark", backend="numpy")
    x = np.random.default_rng(0).standard_normal((1, 2, 9000)).astype(np.float32)
    c = t.forward(x)
    assert all(b.dtype == np.complex64 for b in c)
    y = t.inverse(c, 9000)
    assert y.dtype == np.float32 and rel_err(x, y) <= 1e-5


def test_tables_are_cached_per_device_and_dtype():
    t = SliCQT("mel", bins=30, fmin=30.0, fmax=SR / 2, sample_rate=SR)
    t(torch.randn(1, 1, 100))
    t(torch.randn(1, 1, 200))
    assert len(t._cache) == 1
    t(torch.randn(1, 1, 100, dtype=torch.float64))
    assert len(t._cache) == 2
    # the tables are non-persistent buffers: moved with the module, not saved in checkpoints
    assert t.state_dict() == {}
    assert "index_0" in dict(t.named_buffers())


def test_module_dtype_cast_keeps_exactness():
    t = SliCQT("bark", bins=50, fmin=30.0, fmax=SR / 2, sample_rate=SR).float()
    assert t.segment_window_0.dtype == torch.float64 and t.dual_0.dtype == torch.float64
    x = torch.randn(1, 2, 12345, dtype=torch.float64)
    assert rel_err(x, t.inverse(t(x), 12345)) <= 1e-12


def test_half_precision_input_runs_in_float32():
    t = transform("bark")
    x = torch.randn(1, 1, 5000).to(torch.bfloat16)
    c = t(x)
    assert c[0].dtype == torch.complex64


@requires_cupy
@pytest.mark.gpu
@pytest.mark.parametrize("scale", SCALES)
def test_cupy_matches_numpy(scale):
    import cupy

    tc, tn = transform(scale, backend="cupy"), transform(scale, backend="numpy")
    x = make_signal("music", SR + 17)[None]
    cc = tc.forward(cupy.asarray(x))
    for a, b in zip(tn.forward(x), cc):
        np.testing.assert_allclose(cupy.asnumpy(b), a, rtol=0, atol=1e-10)
    y = tc.inverse(cc, SR + 17)
    assert isinstance(y, cupy.ndarray) and rel_err(x, cupy.asnumpy(y)) <= 1e-12
    y32 = tc.inverse(tc.forward(cupy.asarray(x, dtype=cupy.float32)), SR + 17)
    assert rel_err(x, cupy.asnumpy(y32)) <= 1e-5


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("scale", SCALES)
def test_torch_cuda_matches_cpu(scale):
    t = SliCQT(scale=scale, sample_rate=SR, **({"bins": 24} if scale == "oct" else {}))
    x = torch.from_numpy(make_signal("music", SR + 17)[None])
    c_cpu = t(x)
    t = t.cuda()
    c_gpu = t(x.cuda())
    for a, b in zip(c_cpu, c_gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-10)
    assert rel_err(x, t.inverse(c_gpu, SR + 17).cpu()) <= 1e-12
    x32 = x.float().cuda()
    assert rel_err(x32.cpu(), t.inverse(t(x32), SR + 17).cpu()) <= 1e-5


def test_cupy_backend_without_gpu_is_a_clear_error():
    from xslicq.transform import cupy_available

    if cupy_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(RuntimeError, match="backend='cupy' needs CuPy .* and a working CUDA GPU"):
        SliCQT(backend="cupy")


# --------------------------------------------------------------- gradients
def test_gradcheck_forward_and_inverse():
    t = SliCQT("cqlog", bins=6, fmin=500.0, fmax=4000.0, sample_rate=8000, sllen=96, trlen=16)
    x = torch.randn(1, 2, 70, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: tuple(t(s)), (x,))
    c = [b.detach().requires_grad_(True) for b in t(x)]
    assert torch.autograd.gradcheck(lambda *blocks: t.inverse(list(blocks), length=70), tuple(c))


def test_backward_of_the_default_transform_at_training_size():
    """The backward pass of a full-size transform stays within ordinary memory (a naive
    gradient of the strided spectrum runs would ask for about a hundred gigabytes)."""
    t = transform("cqlog")
    x = torch.randn(2, 2, 2 * SR, requires_grad=True)
    y = t.inverse([0.5 * b for b in t(x)], 2 * SR)
    y.square().mean().backward()
    torch.testing.assert_close(x.grad, 0.5 * y.detach() * 2 / y.numel(), rtol=1e-4, atol=1e-9)


def test_gradients_flow_through_a_masked_round_trip():
    t = transform("bark")
    x = torch.randn(1, 2, 9000)
    mask_logits = [torch.zeros(b.shape, requires_grad=True) for b in t(x)]
    y = t.inverse([torch.sigmoid(m) * b for m, b in zip(mask_logits, t(x))], 9000)
    (y - 0.5 * x).pow(2).sum().backward()
    assert all(m.grad is not None and torch.isfinite(m.grad).all() for m in mask_logits)
    assert sum(float(m.grad.abs().sum()) for m in mask_logits) > 0


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(fmin=500.0, fmax=100.0), ValueError, "fmin must be below fmax"),
        (dict(fmax=30000.0), ValueError, "fmax=30000.0 Hz is above the Nyquist frequency 22050.0"),
        (dict(bins=0), ValueError, "bins must be a positive integer, got 0"),
        (
            dict(sllen=4096),
            ValueError,
            "sllen=4096 is too short for the longest window .* use sllen >= ",
        ),
        (
            dict(sllen=107522),
            ValueError,
            "sllen must be a positive multiple of 4, got sllen=107522",
        ),
        (
            dict(sllen=107520, trlen=1001),
            ValueError,
            "trlen must be a positive even number, got trlen=1001",
        ),
        (dict(sllen=107520, trlen=53760), ValueError, "sllen must be longer than 2 \\* trlen"),
        (dict(sample_rate=0), ValueError, "sample_rate must be a positive number"),
        (dict(scale="erb"), ValueError, "unknown frequency scale 'erb'"),
        (dict(backend="jax"), ValueError, "unknown backend 'jax'"),
    ],
)
def test_bad_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        SliCQT(**kwargs)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (
            torch.randn(1000),
            ValueError,
            "expected a 3-D \\(batch, channels, samples\\) signal, got shape \\(1000,\\)",
        ),
        (torch.randn(1, 1, 2, 1000), ValueError, "got shape \\(1, 1, 2, 1000\\) \\(4-D\\)"),
        (
            torch.ones(1, 2, 1000, dtype=torch.int16),
            TypeError,
            "must be real floating point .*int16",
        ),
        (
            torch.randn(1, 2, 1000, dtype=torch.complex64),
            TypeError,
            "must be real floating point .*complex64",
        ),
        (torch.full((1, 2, 100), float("nan")), ValueError, "NaN or inf"),
        (torch.tensor([[[0.0, float("inf")]]]), ValueError, "NaN or inf"),
        (torch.zeros(1, 2, 0), ValueError, "the signal is empty: shape \\(1, 2, 0\\)"),
        (np.zeros((1, 2, 100)), TypeError, "SliCQT\\(backend='torch'\\) got a numpy array"),
    ],
)
def test_bad_signal(x, error, match):
    with pytest.raises(error, match=match):
        transform("bark")(x)


def test_bad_coefficients():
    t = transform("bark")
    c = t(torch.randn(1, 2, 5000))
    with pytest.raises(ValueError, match=f"expected a list of {len(c)} coefficient blocks, got 2"):
        t.inverse(c[:2])
    bad = list(c)
    bad[1] = bad[1][:, :, :, :, :-1]
    with pytest.raises(
        ValueError, match="coefficient block shapes do not match this transform: expected .* got"
    ):
        t.inverse(bad)
    with pytest.raises(TypeError, match="coefficients must be complex"):
        t.inverse([b.real for b in c])
    with pytest.raises(ValueError, match="length must be an integer in \\[1, "):
        t.inverse(c, length=10**9)
