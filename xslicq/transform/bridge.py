"""The DLPack bridge: torch autograd through a sliCQT of another array backend.

A :class:`~xslicq.transform.SliCQT` built with ``backend="numpy"`` (CPU) or
``backend="cupy"`` (CUDA) computes with that library. Given torch tensors, its
:meth:`~xslicq.transform.SliCQT.forward` and :meth:`~xslicq.transform.SliCQT.inverse`
come here:

1. the tensors are handed to the backend through DLPack (``numpy.from_dlpack`` /
   ``cupy.from_dlpack`` of the detached tensor: no copy, the backend reads the tensor's
   memory), after a check that the tensor is on the backend's device;
2. the transform runs there, as it does for the backend's own arrays;
3. the results come back with ``torch.from_dlpack`` (again without a copy), as torch
   tensors that the rest of a model (``RaggedToMatrix``, masks, losses) uses unchanged.

Each direction is a :class:`torch.autograd.Function` whose backward pass is the adjoint
of the frame computed on the same backend, not a torch re-run:

* the analysis ``A`` (forward) has the gradient ``Re(A^H g)``: a synthesis with the
  *analysis* windows (:meth:`~xslicq.transform.SliCQT.forward_adjoint`);
* the synthesis ``S`` (inverse, dual windows) has the gradient ``S^H g``: an analysis
  with the *dual* windows (:meth:`~xslicq.transform.SliCQT.inverse_adjoint`).

Both follow torch's convention for complex tensors (the gradient of a real loss with
respect to a complex ``z`` is ``dL/dRe z + i dL/dIm z``), so ``torch.autograd.gradcheck``
passes through either direction (tests/test_bridge.py). On a GPU, CuPy runs on torch's
current CUDA stream of the tensor's device, so no synchronisation is needed between the
two libraries. The backward pass is not itself differentiable (no double backward).

Every torch tensor that meets a non-torch transform takes this path, with or without
autograd (under ``torch.no_grad()`` the functions simply run forward).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import backend as bk
from .checks import check_signal

DEVICE_OF = {"numpy": "cpu", "cupy": "cuda"}  # the torch device type each backend reads
_WHERE = {"numpy": "the CPU", "cupy": "a CUDA GPU"}


def check_device(tensor: torch.Tensor, backend: str) -> None:
    """Raise a clear error unless ``tensor`` lives where ``backend`` computes (and the
    backend can run here at all: :func:`~xslicq.transform.backend.check_backend`)."""
    _check_backend(backend)
    if backend not in DEVICE_OF:
        raise ValueError(f"backend={backend!r} takes torch tensors directly; no bridge is needed")
    wanted = DEVICE_OF[backend]
    if tensor.device.type != wanted:
        if backend == "numpy":
            advice = (
                "move it with .cpu() (Lightning: trainer=cpu), or build the transform with "
                "backend='cupy' or backend='torch' for a GPU"
            )
        else:
            advice = (
                "move it with .cuda() (Lightning: trainer=gpu), or build the transform with "
                "backend='numpy' or backend='torch' for the CPU"
            )
        raise ValueError(
            f"SliCQT(backend={backend!r}) computes on {_WHERE[backend]} but got a torch "
            f"tensor on {tensor.device}: {advice}"
        )


@functools.cache
def _usable(backend: str) -> bool:
    bk.check_backend(backend)  # raises while it is not usable: only success is cached
    return True


def _check_backend(backend: str) -> None:
    """:func:`~xslicq.transform.backend.check_backend` once per backend and process (the
    CuPy check runs a kernel)."""
    _usable(backend)


def to_backend(tensor: torch.Tensor, backend: str):
    """The backend's array that shares ``tensor``'s memory (DLPack, detached: no copy on
    the same device). Lazily conjugated or negated tensors (torch's conj/neg bits, which
    DLPack cannot carry) are resolved first, which copies them."""
    check_device(tensor, backend)
    tensor = tensor.detach().resolve_conj().resolve_neg()
    if backend == "numpy":
        return np.from_dlpack(tensor)
    import cupy

    return cupy.from_dlpack(tensor)


def to_torch(array) -> torch.Tensor:
    """A torch tensor sharing ``array``'s memory (DLPack). An array DLPack cannot carry
    (negative strides) is copied to a contiguous one first."""
    if any(s < 0 for s in array.strides):
        array = _contiguous(array)
    try:
        return torch.from_dlpack(array)
    except (BufferError, RuntimeError):
        return torch.from_dlpack(_contiguous(array))


def _contiguous(array):
    if bk.backend_of(array) == "cupy":
        import cupy

        return cupy.ascontiguousarray(array)
    return np.ascontiguousarray(array)


@contextlib.contextmanager
def on_device(backend: str, tensor: torch.Tensor):
    """Run CuPy on ``tensor``'s GPU and on torch's current stream there (so work queued
    by torch before and after needs no synchronisation); nothing to do for NumPy."""
    if backend != "cupy":
        yield
        return
    import cupy

    index = tensor.device.index
    ptr = torch.cuda.current_stream(tensor.device).cuda_stream
    with cupy.cuda.Device(index):
        # torch's default stream is CUDA's legacy null stream (pointer 0), CuPy's too
        stream = cupy.cuda.Stream.null if ptr == 0 else cupy.cuda.ExternalStream(ptr, index)
        with stream:
            yield


class Analysis(torch.autograd.Function):
    """``transform.forward`` on the transform's backend; backward: ``forward_adjoint``."""

    @staticmethod
    def forward(ctx, transform, x):
        ctx.transform, ctx.length = transform, x.shape[-1]
        with on_device(transform.backend, x):
            array = to_backend(x, transform.backend)  # checked on the torch side: analysis()
            slices = transform.nb_slices(x.shape[-1])
            coefs = transform._analyse(bk.namespace(array), array, slices, adjoint=False)
            return tuple(to_torch(c) for c in coefs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        transform = ctx.transform
        with on_device(transform.backend, grads[0]):
            g = [to_backend(grad, transform.backend) for grad in grads]
            return None, to_torch(transform.forward_adjoint(g, ctx.length))


class Synthesis(torch.autograd.Function):
    """``transform.inverse`` on the transform's backend; backward: ``inverse_adjoint``."""

    @staticmethod
    def forward(ctx, transform, length, *coefs):
        ctx.transform, ctx.slices = transform, coefs[0].shape[3]
        with on_device(transform.backend, coefs[0]):
            arrays = [to_backend(c, transform.backend) for c in coefs]  # checked: synthesis()
            xp = bk.namespace(arrays[0])
            return to_torch(transform._synthesise(xp, arrays, length, adjoint=False))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        transform = ctx.transform
        with on_device(transform.backend, grad):
            g = transform.inverse_adjoint(to_backend(grad, transform.backend), ctx.slices)
            return (None, None, *(to_torch(b) for b in g))


def analysis(transform, x: torch.Tensor) -> list[torch.Tensor]:
    """``transform(x)`` for a torch signal ``x`` (batch, channels, samples) and a ``numpy``
    or ``cupy`` transform: the list of complex torch blocks, differentiable in ``x``.

    The signal's device is checked against the backend's first, then the signal on the
    torch side (the errors of :meth:`SliCQT.forward <xslicq.transform.SliCQT.forward>`;
    half precision is computed in float32).
    """
    check_device(x, transform.backend)
    _, x = check_signal(x, "torch", f"SliCQT(backend={transform.backend!r})")
    return list(Analysis.apply(transform, x))


def synthesis(transform, coefs, length: int | None = None) -> torch.Tensor:
    """``transform.inverse(coefs, length)`` for torch blocks and a ``numpy`` or ``cupy``
    transform: the (batch, channels, length) real torch signal, differentiable in every
    block. Blocks of mixed precision are promoted (in torch, so each block's gradient
    comes back in its own precision)."""
    xp = transform.check_coefs(coefs)
    coefs, length = transform._check_synthesis(xp, list(coefs), length)
    check_device(coefs[0], transform.backend)
    devices = {str(c.device) for c in coefs}
    if len(devices) > 1:
        raise ValueError(f"coefficient blocks on one device expected, got {sorted(devices)}")
    return Synthesis.apply(transform, length, *coefs)
