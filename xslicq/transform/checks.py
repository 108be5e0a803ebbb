"""Checks shared by the transforms: the sample rate they are built for and the signals they
are given. One clear error for each thing a user can get wrong, raised before any work."""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend as bk

SAMPLE_RATE_RANGE = (8000, 384000)  # Hz: telephone speech to the fastest studio converters


def check_sample_rate(sample_rate, allowed=SAMPLE_RATE_RANGE):
    """Return ``sample_rate`` unchanged if it is a number of Hz within ``allowed``.

    Args:
        sample_rate: int or float (not a bool).
        allowed: ``(lowest, highest)`` rate in Hz, both included; a transform's
            ``sample_rate_range`` argument widens or narrows the default.

    Raises:
        ValueError: naming the value and the range allowed.
    """
    if not (
        isinstance(allowed, (tuple, list))
        and len(allowed) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in allowed)
        and 0 < allowed[0] <= allowed[1] < math.inf
    ):
        raise ValueError(
            f"sample_rate_range must be (lowest, highest) positive rates in Hz, got {allowed!r}"
        )
    lowest, highest = allowed
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, numbers.Real):
        raise ValueError(
            f"sample_rate must be a positive number of Hz (not a bool), got {sample_rate!r}"
        )
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if not lowest <= sample_rate <= highest:
        raise ValueError(
            f"sample_rate={sample_rate!r} Hz is outside {lowest:g}..{highest:g} Hz; pass "
            f"sample_rate_range=(low, high) to the transform to allow it"
        )
    return sample_rate


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
