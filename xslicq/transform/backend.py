"""Array backends: the array-API namespace of each backend and a shim for what the
standard lacks (scatter-add).

The sliCQT is written once against the array API standard (through
``array_api_compat``); this module is the only place that knows which library
is underneath.
"""

from __future__ import annotations

import array_api_compat
import numpy as np

BACKENDS = ("torch", "numpy", "cupy")


def cupy_available() -> bool:
    """True when CuPy imports and can run on a CUDA device."""
    try:
        import cupy

        if not cupy.cuda.is_available():
            return False
        cupy.zeros(1).sum()  # the driver may still refuse the first kernel
        return True
    except (ImportError, RuntimeError, OSError):
        return False
    except Exception as err:  # cupy raises its own CUDA error types
        if type(err).__module__.startswith("cupy"):
            return False
        raise


def check_backend(backend: str) -> None:
    """Raise a clear error if ``backend`` is unknown or cannot run here."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        from .module import TORCH_MISSING, torch_available

        if not torch_available():
            raise RuntimeError(f"backend='torch' cannot run: {TORCH_MISSING}")
    if backend == "cupy" and not cupy_available():
        raise RuntimeError(
            "backend='cupy' needs CuPy (pip install 'xslicq[gpu]') and a working CUDA GPU; "
            "none is usable on this machine. Use backend='torch' or backend='numpy'."
        )


def backend_of(x) -> str:
    """Name of the backend an array belongs to ('torch', 'numpy' or 'cupy')."""
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    raise TypeError(f"expected a torch, numpy or cupy array, got {type(x).__name__}")


def namespace(x):
    """The array-API namespace of ``x``."""
    return array_api_compat.array_namespace(x)


def to_numpy(x) -> np.ndarray:
    """A host NumPy copy of any backend's array (detached for torch)."""
    kind = backend_of(x)
    if kind == "torch":
        return x.detach().cpu().numpy()
    if kind == "cupy":
        return x.get()
    return np.asarray(x)


def real_dtype(xp, dtype):
    """The real dtype of a complex ``dtype`` (complex64 -> float32, complex128 ->
    float64); real dtypes are returned unchanged."""
    if dtype == xp.complex64:
        return xp.float32
    if dtype == xp.complex128:
        return xp.float64
    return dtype


def multiply(a, b):
    """``a * b`` for a complex ``a`` and a real or complex ``b``, broadcast. Torch multiplies
    a complex tensor by a real one through a complex copy of the real one, and its gradient
    of the real factor reduces the (real, imag) pairs of a product; here both directions work
    on the two parts instead (same values, several times faster on the CPU)."""
    if backend_of(a) == "torch" and a.is_complex() and not b.is_complex():
        return _torch_complex_times_real().apply(a, b)
    return a * b


_COMPLEX_TIMES_REAL = None


def _torch_complex_times_real():
    """Autograd function for :func:`multiply` of a complex and a real torch tensor:
    gradient ``grad * b`` for ``a`` and ``Re(grad conj(a)) = g_re a_re + g_im a_im`` for
    ``b``, each summed back to its factor's shape where the product broadcast it."""
    global _COMPLEX_TIMES_REAL
    if _COMPLEX_TIMES_REAL is None:
        import torch

        class ComplexTimesReal(torch.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                ctx.save_for_backward(a, b)
                return torch.view_as_complex(torch.view_as_real(a) * b[..., None])

            @staticmethod
            def backward(ctx, grad):
                a, b = ctx.saved_tensors
                grad_a = grad_b = None
                if ctx.needs_input_grad[0]:
                    grad_a = torch.view_as_complex(torch.view_as_real(grad) * b[..., None])
                    grad_a = grad_a.sum_to_size(a.shape)
                if ctx.needs_input_grad[1]:
                    grad_b = torch.addcmul(grad.real * a.real, grad.imag, a.imag)
                    grad_b = grad_b.sum_to_size(b.shape)
                return grad_a, grad_b

        _COMPLEX_TIMES_REAL = ComplexTimesReal
    return _COMPLEX_TIMES_REAL


def split(x, sizes, axis: int):
    """``x`` cut along ``axis`` into consecutive pieces of ``sizes``. For torch this is
    ``torch.split``, whose backward writes every piece's gradient into one array; slicing
    piece by piece would make autograd fill and add a full-size zero array per piece."""
    if backend_of(x) == "torch":
        import torch

        return list(torch.split(x, [int(n) for n in sizes], dim=axis))
    bounds = np.cumsum([0] + [int(n) for n in sizes])
    index = [slice(None)] * x.ndim
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        index[axis] = slice(int(lo), int(hi))
        pieces.append(x[tuple(index)])
    return pieces


def squared_magnitude(a):
    """``|a| ** 2``, smooth and differentiable everywhere (no square root): for a complex
    torch tensor ``re * re + im * im`` on the two parts, which is about three times faster
    on the CPU than torch's complex ``abs``; real tensors give ``a * a``."""
    if backend_of(a) != "torch":
        return abs(a) ** 2
    if not a.is_complex():
        return a.square()
    import torch

    return torch.addcmul(a.real.square(), a.imag, a.imag)


def magnitude(a):
    """``|a|``; for a complex torch tensor that needs no gradient, the square root of
    :func:`squared_magnitude` (the same values to float rounding, three to four times
    faster than ``a.abs()`` on the CPU). With a gradient it is ``a.abs()``, whose gradient
    is defined at zero."""
    if backend_of(a) == "torch" and a.is_complex() and not a.requires_grad:
        return squared_magnitude(a).sqrt_()
    return abs(a)


def scatter_add_last(xp, values, index, size: int, out=None):
    """``out[..., index[p]] += values[..., p]``, into zeros of shape
    ``values.shape[:-1] + (size,)`` when ``out`` is None; returns the sum.

    Args:
        xp: array namespace of ``values``.
        values: (..., P) real or complex array.
        index: (P,) integer array on the same device, values in ``[0, size)``.
        out: optional (..., size) array to accumulate into (updated in place for
            torch, whose ``index_add_`` is differentiable).
    """
    lead = tuple(values.shape[:-1])
    kind = backend_of(values)
    if out is None:
        out = xp.zeros(lead + (size,), dtype=values.dtype, device=array_api_compat.device(values))
    if kind == "torch":
        return out.index_add_(-1, index, values)
    rows = xp.reshape(values, (-1, values.shape[-1]))
    parts = (rows.real, rows.imag) if xp.isdtype(values.dtype, "complex floating") else (rows,)
    summed = []
    for part in parts:
        if kind == "cupy":
            import cupyx

            acc = xp.zeros((rows.shape[0], size), dtype=part.dtype)
            cupyx.scatter_add(acc, (slice(None), index), part)
        else:  # numpy: one bincount per row keeps memory at one row of indices
            acc = np.zeros((rows.shape[0], size), dtype=part.dtype)
            for r, row in enumerate(part):
                acc[r] = np.bincount(index, weights=row, minlength=size)
        summed.append(acc)
    total = summed[0] if len(summed) == 1 else summed[0] + 1j * summed[1]
    return out + xp.reshape(xp.astype(total, values.dtype), lead + (size,))


def runs(xp, x, size: int, starts):
    """Contiguous runs ``x[..., s:s + size]`` for every ``s`` in ``starts`` (1-D integer
    array), as one array ``(..., len(starts), size)``: a strided window view indexed by
    the starts, which copies whole runs (much faster than an element-wise gather)."""
    kind = backend_of(x)
    if kind == "torch":
        return _torch_runs().apply(x, starts, size)
    if kind == "numpy":
        return np.lib.stride_tricks.sliding_window_view(x, size, axis=-1)[..., starts, :]
    import cupy

    view = cupy.lib.stride_tricks.as_strided(
        x, tuple(x.shape[:-1]) + (x.shape[-1] - size + 1, size), x.strides + x.strides[-1:]
    )
    return view[..., starts, :]


_RUNS = None


def _torch_runs():
    """Autograd function for :func:`runs` on torch. Autograd's own backward of indexing a
    strided window view would build a gradient of the whole view (every possible start,
    gigabytes); this one scatter-adds the runs' gradients straight into the input's."""
    global _RUNS
    if _RUNS is None:
        import torch

        class Runs(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, starts, size):
                ctx.size, ctx.length = size, x.shape[-1]
                ctx.save_for_backward(starts)
                return x.unfold(-1, size, 1)[..., starts, :]

            @staticmethod
            def backward(ctx, grad):
                (starts,) = ctx.saved_tensors
                index = (starts[:, None] + torch.arange(ctx.size, device=starts.device)).reshape(-1)
                flat = grad.reshape(grad.shape[:-2] + (-1,))
                out = torch.zeros(
                    grad.shape[:-2] + (ctx.length,), dtype=grad.dtype, device=grad.device
                )
                return out.index_add(-1, index, flat), None, None

        _RUNS = Runs
    return _RUNS


def frames(xp, x, size: int, hop: int):
    """Overlapping frames ``(..., n_frames, size)`` of ``x`` (..., samples), ``hop`` apart,
    as a view where the library has one (the array API has no sliding window)."""
    n_frames = (x.shape[-1] - size) // hop + 1
    kind = backend_of(x)
    if kind == "torch":
        return x.unfold(-1, size, hop)
    if kind == "numpy":
        return np.lib.stride_tricks.sliding_window_view(x, size, axis=-1)[..., ::hop, :]
    import cupy

    strides = x.strides[:-1] + (x.strides[-1] * hop, x.strides[-1])
    return cupy.lib.stride_tricks.as_strided(x, tuple(x.shape[:-1]) + (n_frames, size), strides)
