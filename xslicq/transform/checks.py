"""Checks shared by the transforms: the sample rate they are built for
(:func:`xslicq.checks.check_sample_rate`, the package's one definition) and the signals they
are given. One clear error for each thing a user can get wrong, raised before any work."""

from __future__ import annotations

from ..checks import SAMPLE_RATE_RANGE, check_sample_rate
from . import backend as bk

__all__ = ["SAMPLE_RATE_RANGE", "check_sample_rate", "check_signal"]


def check_signal(x, backend: str, owner: str):
    """Validate a ``(batch, channels, samples)`` signal for a transform of ``backend``.

    Half precision (float16, bfloat16) is computed in float32, so the signal comes back
    as float32 then.

    Args:
        x: the signal.
        backend: the transform's backend (``torch``, ``numpy`` or ``cupy``).
        owner: the transform's name for the messages, e.g. ``"SliCQT(backend='torch')"``.

    Returns:
        ``(xp, x)``: the array namespace and the (possibly up-cast) signal.

    Raises:
        TypeError: an array of another backend, or not real floating point.
        ValueError: not 3-D, empty, or NaN or inf values.
    """
    kind = bk.backend_of(x)
    if kind != backend:
        raise TypeError(
            f"{owner} got a {kind} array; pass a {backend} array or build the transform "
            f"with backend={kind!r}"
        )
    xp = bk.namespace(x)
    if x.ndim != 3:
        raise ValueError(
            f"expected a 3-D (batch, channels, samples) signal, got shape "
            f"{tuple(x.shape)} ({x.ndim}-D)"
        )
    if any(n == 0 for n in x.shape):
        raise ValueError(f"the signal is empty: shape {tuple(x.shape)} (batch, channels, samples)")
    if kind == "torch":
        import torch

        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
    elif x.dtype == xp.float16:
        x = xp.astype(x, xp.float32)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"the signal must be real floating point (float32 or float64), got dtype {x.dtype}"
        )
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError("the signal contains NaN or inf values")
    return xp, x
