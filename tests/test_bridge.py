"""The DLPack bridge (xslicq/transform/bridge.py): torch autograd through the numpy and cupy
sliCQT, its adjoints, zero-copy hand-over, parity of training with the torch backend, and
its errors."""

import numpy as np
import pytest
import torch

from xslicq.transform import SCALES, RaggedToMatrix, SliCQT, bridge, cupy_available

from helpers import (
    SR,
    TINY_MODEL,
    compose_config,
    requires_cuda,
    requires_cupy,
    tiny_train_config,
    transform,
)

# a transform small enough for gradcheck (a few hundred coefficients)
SMALL = dict(scale="cqlog", bins=6, fmin=500.0, fmax=4000.0, sample_rate=8000, sllen=96, trlen=16)


def small(backend):
    return SliCQT(backend=backend, **SMALL)


def inner(a, b):
    """Real inner product of two arrays or two lists of (complex) blocks."""
    if isinstance(a, (list, tuple)):
        return sum(inner(x, y) for x, y in zip(a, b))
    return float((a.conj() * b).real.sum())


# ------------------------------------------------------------------ adjoints
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("scale", SCALES)
def test_adjoints_satisfy_the_inner_product_identities(scale, backend):
    """<A x, c> = <x, A^H c> (A: forward) and <S c, y> = <c, S^H y> (S: inverse), with the
    signal real and the coefficients complex, for every scale and a length that is a multiple
    of nothing."""
    t = SliCQT(scale, bins=40, fmin=40.0, fmax=SR / 2, sample_rate=SR, backend=backend)
    rng = np.random.default_rng(0)
    length = 3 * t.slice_hop + 17
    x = rng.standard_normal((2, 3, length))
    shapes = [(2, 3, rows, t.nb_slices(length), m) for rows, m in t.block_shapes]
    c = [rng.standard_normal(s) + 1j * rng.standard_normal(s) for s in shapes]
    y = rng.standard_normal((2, 3, length))
    if backend == "torch":
        x, y, c = torch.from_numpy(x), torch.from_numpy(y), [torch.from_numpy(b) for b in c]
    ax, ahc = t.forward(x), t.forward_adjoint(c, length)
    sc, shy = t.inverse(c, length), t.inverse_adjoint(y, shapes[0][3])
    assert inner(ax, c) == pytest.approx(inner(x, ahc), rel=1e-12)
    assert inner(sc, y) == pytest.approx(inner(c, shy), rel=1e-12)
    assert ahc.shape == x.shape and [tuple(b.shape) for b in shy] == shapes


def test_inverse_adjoint_needs_enough_slices():
    t = small("numpy")
    with pytest.raises(ValueError, match="slices must be an integer with slices \\* 48 >= 100"):
        t.inverse_adjoint(np.zeros((1, 1, 100)), 2)


# ------------------------------------------------------------------ gradients
def test_gradcheck_forward_and_inverse_through_numpy():
    t = small("numpy")
    x = torch.randn(1, 2, 70, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: tuple(t(s)), (x,))
    # complex blocks into the inverse, every block a differentiable input
    c = [b.detach().requires_grad_(True) for b in t(x)]
    assert torch.autograd.gradcheck(lambda *blocks: t.inverse(list(blocks), length=70), tuple(c))
    # the longest length (None) and a short one crop differently (random projections)
    for length in (None, 9):
        assert torch.autograd.gradcheck(
            lambda *blocks, n=length: t.inverse(list(blocks), n), tuple(c), fast_mode=True
        )


def test_gradcheck_of_a_masked_round_trip_through_numpy():
    """A mask on the coefficients between forward and inverse: gradients reach both the
    signal and the mask through the two bridged directions."""
    t = small("numpy")
    x = torch.randn(2, 1, 150, dtype=torch.float64, requires_grad=True)
    masks = [torch.rand(b.shape, dtype=torch.float64, requires_grad=True) for b in t(x.detach())]

    def round_trip(x, *masks):
        return t.inverse([m * b for m, b in zip(masks, t(x))], length=150)

    assert torch.autograd.gradcheck(round_trip, (x, *masks), fast_mode=True)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_gradients_equal_the_torch_backend(dtype, tol):
    tn, tt = transform("bark", backend="numpy"), transform("bark")
    x0 = torch.randn(2, 2, 9000, dtype=dtype)
    grads, values = [], []
    for t in (tt, tn):
        x = x0.clone().requires_grad_(True)
        c = t(x)
        weights = [torch.linspace(0.5, 1.5, b.shape[-1], dtype=dtype) for b in c]
        y = t.inverse([w * b for w, b in zip(weights, c)], 9000)
        loss = (y - 0.3 * x).square().sum() + sum((b.abs() ** 2).sum() for b in c)
        loss.backward()
        grads.append(x.grad)
        values.append(loss.detach())
    torch.testing.assert_close(values[1], values[0], rtol=tol, atol=0)
    scale = float(grads[0].abs().max())
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=tol * scale)
    assert grads[1].dtype == dtype


def test_backward_is_the_backends_adjoint(monkeypatch):
    """The backward pass runs forward_adjoint / inverse_adjoint on the backend (NumPy
    arrays in, NumPy arrays out), not torch's autograd of a torch re-run."""
    t = small("numpy")
    calls = []
    for name in ("forward_adjoint", "inverse_adjoint"):
        method = getattr(t, name)

        def spy(*args, _method=method, _name=name):
            first = args[0][0] if isinstance(args[0], list) else args[0]
            calls.append((_name, type(first).__name__))
            out = _method(*args)
            calls.append((_name, type(out[0] if isinstance(out, list) else out).__name__))
            return out

        monkeypatch.setattr(t, name, spy)
    x = torch.randn(1, 2, 70, dtype=torch.float64, requires_grad=True)
    c = t(x)
    assert all(type(b) is torch.Tensor and "Analysis" in b.grad_fn.name() for b in c)
    y = t.inverse(c, 70)
    assert "Synthesis" in y.grad_fn.name()
    y.square().sum().backward()
    assert calls == [
        ("inverse_adjoint", "ndarray"),
        ("inverse_adjoint", "ndarray"),
        ("forward_adjoint", "ndarray"),
        ("forward_adjoint", "ndarray"),
    ]
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_unused_blocks_get_zero_gradients():
    t = small("numpy")
    x = torch.randn(1, 1, 70, dtype=torch.float64, requires_grad=True)
    t(x)[1].abs().sum().backward()  # only one block takes part in the loss
    xt = x.detach().clone().requires_grad_(True)
    small("torch")(xt)[1].abs().sum().backward()
    torch.testing.assert_close(x.grad, xt.grad, rtol=0, atol=1e-12)


# --------------------------------------------------------------- hand-over
def test_dlpack_hand_over_is_zero_copy_on_the_cpu():
    t = torch.randn(2, 3, 50, dtype=torch.float64)
    a = bridge.to_backend(t, "numpy")
    assert isinstance(a, np.ndarray) and np.shares_memory(a, t.numpy())
    z = np.random.default_rng(0).standard_normal((4, 6)) * (1 + 1j)
    back = bridge.to_torch(z)
    assert back.dtype == torch.complex128 and back.data_ptr() == z.ctypes.data
    # strided views (the forward returns permuted views) keep their strides, no copy
    view = np.transpose(z)
    assert bridge.to_torch(view).data_ptr() == z.ctypes.data
    w = torch.randn(3, 8)
    strided = w[:, ::2]
    assert np.shares_memory(bridge.to_backend(strided, "numpy"), w.numpy())
    # a tensor that requires grad is detached, not copied
    g = torch.randn(5, requires_grad=True)
    assert np.shares_memory(bridge.to_backend(g, "numpy"), g.detach().numpy())


def test_what_dlpack_cannot_carry_is_copied():
    z = np.arange(12.0).reshape(3, 4)
    flipped = z[::-1]  # negative strides
    torch.testing.assert_close(bridge.to_torch(flipped), torch.from_numpy(flipped.copy()))
    c = torch.randn(3, dtype=torch.complex128)
    np.testing.assert_array_equal(bridge.to_backend(c.conj(), "numpy"), c.numpy().conj())
    e = torch.ones(3, 1).expand(3, 4)  # stride 0: carried as is
    np.testing.assert_array_equal(bridge.to_backend(e, "numpy"), np.ones((3, 4)))


def test_outputs_are_torch_tensors_the_rest_of_the_model_consumes():
    tn, tt = transform("bark", backend="numpy"), transform("bark")
    x = torch.randn(1, 2, 9000, dtype=torch.float64)
    cn, ct = tn(x), tt(x)
    assert [b.shape for b in cn] == [b.shape for b in ct]
    mn, mt = (
        RaggedToMatrix(tn, T=16)([b.abs() for b in cn]),
        RaggedToMatrix(tt, T=16)([b.abs() for b in ct]),
    )
    assert isinstance(mn, torch.Tensor)
    torch.testing.assert_close(mn, mt, rtol=0, atol=1e-10)
    y = tn.inverse(cn, 9000)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)


def test_precisions_and_no_grad():
    t = transform("bark", backend="numpy")
    with torch.no_grad():
        c = t(torch.randn(1, 1, 5000))
    assert c[0].dtype == torch.complex64 and c[0].grad_fn is None
    assert t(torch.randn(1, 1, 5000).to(torch.bfloat16))[0].dtype == torch.complex64
    mixed = [b.to(torch.complex128) if i % 2 else b for i, b in enumerate(c)]
    mixed = [b.requires_grad_(True) for b in mixed]
    y = t.inverse(mixed, 5000)
    assert y.dtype == torch.float64
    y.sum().backward()
    assert [b.grad.dtype for b in mixed] == [b.dtype for b in mixed]
    # the numpy transform still takes numpy arrays and returns numpy arrays
    assert isinstance(t.forward(np.zeros((1, 1, 5000)))[0], np.ndarray)


# ------------------------------------------------------------------ errors
def test_a_tensor_on_another_device_is_one_clear_error():
    t = small("numpy")
    with pytest.raises(
        ValueError,
        match=r"SliCQT\(backend='numpy'\) computes on the CPU but got a torch tensor on "
        r"meta: move it with \.cpu\(\)",
    ):
        t(torch.empty(1, 1, 70, device="meta"))


def test_a_cpu_tensor_for_cupy_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(bridge, "_check_backend", lambda backend: None)  # as if CuPy ran
    with pytest.raises(
        ValueError,
        match=r"SliCQT\(backend='cupy'\) computes on a CUDA GPU but got a torch tensor on cpu: "
        r"move it with \.cuda\(\)",
    ):
        bridge.check_device(torch.zeros(1), "cupy")


def test_a_backend_that_cannot_run_is_the_check_backend_error():
    if cupy_available():
        pytest.skip("CuPy runs here")
    with pytest.raises(RuntimeError, match="backend='cupy' needs CuPy .* and a working CUDA GPU"):
        bridge.to_backend(torch.zeros(1), "cupy")
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        bridge.check_device(torch.zeros(1), "jax")


def test_bad_signals_and_blocks_get_the_transforms_errors():
    t = small("numpy")
    with pytest.raises(ValueError, match="NaN or inf"):
        t(torch.full((1, 1, 70), float("nan")))
    with pytest.raises(ValueError, match="expected a 3-D"):
        t(torch.zeros(70))
    c = t(torch.randn(1, 1, 70))
    with pytest.raises(ValueError, match="length must be an integer in"):
        t.inverse(c, 10**6)
    with pytest.raises(TypeError, match="of one kind of array"):
        t.inverse([c[0].numpy(), *c[1:]])


def test_training_config_with_a_backend_on_the_wrong_device_stops_early():
    """transform.backend=numpy with a GPU trainer (or cupy with a CPU one) is a ConfigError
    before any training (checked by validate_transform, next to the other transform checks)."""
    from omegaconf import OmegaConf

    from xslicq.train import ConfigError, validate_transform

    t = transform("bark", backend="numpy")
    for accelerator in ("gpu", "cuda", "mps"):
        cfg = OmegaConf.create(
            {"trainer": {"accelerator": accelerator}, "data": {"seq_dur": 2.0, "sample_rate": SR}}
        )
        with pytest.raises(
            ConfigError,
            match=f"transform.backend=numpy computes on the CPU but trainer.accelerator="
            f"{accelerator}: use trainer=cpu, or transform.backend=torch",
        ):
            validate_transform(cfg, t)
    for accelerator in ("cpu", "auto"):
        cfg.trainer.accelerator = accelerator
        validate_transform(cfg, t)


# ----------------------------------------------------------------- training
def train_steps(backend, steps=3, device="cpu", seconds=0.5):
    """Losses of ``steps`` AdamW steps of the system of the composed train config (tiny
    model, bark) in float64 with ``transform.backend=backend``, from seed 0, on fixed
    random batches."""
    from xslicq.system import SeparationSystem

    cfg = compose_config("train", overrides=[*TINY_MODEL, f"transform.backend={backend}"])
    torch.manual_seed(0)
    system = SeparationSystem.from_config(cfg).double().to(device)
    opt = system.optimizer_factory(params=system.parameters())
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        refs = torch.randn(2, 4, 2, int(seconds * SR), generator=gen, dtype=torch.float64)
        batch = (refs.sum(1).to(device), refs.to(device))
        opt.zero_grad()
        loss = system.compute_loss(batch)[0]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, system


def test_training_steps_through_numpy_equal_the_torch_backend():
    """The same seed and batches: three optimisation steps of the real system give the same
    losses (and weights) with transform.backend=numpy as with torch, in float64."""
    lt, st = train_steps("torch")
    ln, sn = train_steps("numpy")
    assert np.max(np.abs(np.subtract(ln, lt))) <= 1e-6
    assert len(set(lt)) == 3  # the steps changed the weights
    for a, b in zip(st.parameters(), sn.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_lightning_training_through_numpy_equals_torch(tmp_path, tiny_musdb):
    """``python -m xslicq.train transform.backend=numpy`` end to end (trainer=debug: two
    training batches and a validation) in float64 (trainer.precision=64-true) gives the
    torch backend's losses within 1e-6 and its weights. The input normalisation is not
    initialised (system.init_stats_batches=0): that pre-pass runs on float32 batches
    before Lightning casts the system, so its float32 rounding would differ between the
    backends (by about 1e-7 relative), as it does between any two float32 FFTs."""
    from xslicq.train import train

    runs = {}
    for backend in ("torch", "numpy"):
        cfg = tiny_train_config(
            tmp_path / backend,
            tiny_musdb,
            [
                f"transform.backend={backend}",
                "trainer.precision=64-true",
                "system.init_stats_batches=0",
                "log_media=false",
            ],
        )
        runs[backend] = train(cfg)
    (mt, ot), (mn, on) = runs["torch"], runs["numpy"]
    assert on["trainer"].global_step == ot["trainer"].global_step == 2
    for key in ("train/loss", "val/loss", "val/sdr"):
        assert abs(mn[key] - mt[key]) <= 1e-6, key
    for a, b in zip(ot["system"].parameters(), on["system"].parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------- GPU
@requires_cupy
@pytest.mark.gpu
def test_gradcheck_forward_and_inverse_through_cupy():
    t = small("cupy").cuda()
    x = torch.randn(1, 2, 70, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: tuple(t(s)), (x,))
    c = [b.detach().requires_grad_(True) for b in t(x)]
    assert all(b.is_cuda for b in c)
    assert torch.autograd.gradcheck(lambda *blocks: t.inverse(list(blocks), length=70), tuple(c))


@requires_cupy
@pytest.mark.gpu
def test_cupy_hand_over_is_zero_copy_on_the_gpu():
    import cupy

    t = torch.randn(2, 3, 50, dtype=torch.float64, device="cuda")
    a = bridge.to_backend(t, "cupy")
    assert isinstance(a, cupy.ndarray) and a.data.ptr == t.data_ptr()
    z = cupy.ones((4, 6), dtype=cupy.complex128)
    assert bridge.to_torch(z).data_ptr() == z.data.ptr


@requires_cupy
@pytest.mark.gpu
def test_cupy_with_a_cpu_tensor_is_one_clear_error():
    t = small("cupy")
    with pytest.raises(ValueError, match=r"computes on a CUDA GPU but got a torch tensor on cpu"):
        t(torch.randn(1, 1, 70))


@requires_cuda
@pytest.mark.gpu
def test_numpy_with_a_cuda_tensor_is_one_clear_error():
    t = small("numpy")
    with pytest.raises(
        ValueError, match=r"computes on the CPU but got a torch tensor on cuda:0: move it"
    ):
        t(torch.randn(1, 1, 70, device="cuda"))


@requires_cupy
@pytest.mark.gpu
def test_training_steps_through_cupy_equal_torch_cuda():
    lt, _ = train_steps("torch", device="cuda")
    lc, _ = train_steps("cupy", device="cuda")
    assert np.max(np.abs(np.subtract(lc, lt))) <= 1e-6
