"""Slicing a long signal into overlapping Tukey-windowed slices, and putting it back.

Slice ``i`` is ``sllen = N`` samples long and centred on signal sample
``i * hop`` with ``hop = N / 2``. Its window is zero for ``N/4 - trlen/2``
samples at each end, rises over ``trlen`` samples (half Hann), is one over
``N/2 - trlen`` samples and falls again; the falling edge of slice ``i`` and the
rising edge of slice ``i + 1`` sum to one, so the windows form a partition of
unity and overlap-adding the windowed slices gives the signal back exactly.
The zero margins leave room for the time spread of the long low-frequency
windows inside each slice.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np

from ..checks import is_int
from . import backend as bk


def check_slicing(sllen, trlen) -> None:
    """Raise a clear error unless ``sllen`` and ``trlen`` describe a valid slicing."""
    for name, value in (("sllen", sllen), ("trlen", trlen)):
        if not is_int(value):
            raise ValueError(f"{name} must be an integer number of samples, got {value!r}")
    if sllen <= 0 or sllen % 4:
        raise ValueError(f"sllen must be a positive multiple of 4, got sllen={sllen}")
    if trlen <= 0 or trlen % 2:
        raise ValueError(f"trlen must be a positive even number, got trlen={trlen}")
    if not sllen > 2 * trlen:
        raise ValueError(f"sllen must be longer than 2 * trlen, got sllen={sllen}, trlen={trlen}")


def suggested_trlen(sllen: int) -> int:
    """Transition length used when none is given: a quarter slice, rounded up to even."""
    q = sllen // 4
    return q + q % 2


def slice_window_at(t, sllen: int, trlen: int) -> np.ndarray:
    """The slice window at (fractional) positions ``t`` in ``[0, sllen)``."""
    t = np.asarray(t, dtype=float)
    rise_start = sllen / 4 - trlen / 2
    fall_start = rise_start + sllen / 2
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - rise_start) / trlen, 0.0, 1.0))
    fall = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - fall_start) / trlen, 0.0, 1.0))
    return np.where(t < fall_start, rise, fall)


def slice_window(sllen: int, trlen: int) -> np.ndarray:
    """The (sllen,) Tukey slice window (sampled at sample centres); windows ``sllen / 2``
    apart sum to one."""
    return slice_window_at(np.arange(sllen) + 0.5, sllen, trlen)


def nb_slices(length: int, sllen: int, trlen: int) -> int:
    """Number of slices needed so that the windows sum to one over ``length`` samples."""
    plateau = sllen // 4 - trlen // 2  # distance from a slice centre to its falling edge
    return max(1, math.ceil((length - plateau) / (sllen // 2)) + 1)


def max_length(slices: int, sllen: int, trlen: int) -> int:
    """Longest signal that ``slices`` slices cover (inverse of :func:`nb_slices`)."""
    return (slices - 1) * (sllen // 2) + sllen // 4 - trlen // 2


def slice_signal(xp, x, window, sllen: int, slices: int):
    """Cut ``x`` (..., samples) into windowed slices (..., slices, sllen); ``window=None``
    leaves them unwindowed (a view where the library has one): the adjoint of
    :func:`overlap_add`."""
    hop = sllen // 2
    lead = tuple(x.shape[:-1])
    dev = array_api_compat.device(x)
    front = xp.zeros(lead + (hop,), dtype=x.dtype, device=dev)
    back = xp.zeros(lead + ((slices + 1) * hop - hop - x.shape[-1],), dtype=x.dtype, device=dev)
    padded = xp.concat([front, x, back], axis=-1)
    framed = bk.frames(xp, padded, sllen, hop)
    return framed if window is None else framed * window


def overlap_add(xp, slices, sllen: int, length: int):
    """Overlap-add windowed slices (..., slices, sllen) back to a signal (..., length)."""
    hop = sllen // 2
    lead = tuple(slices.shape[:-2])
    first, second = slices[..., :hop], slices[..., hop:]
    halves = xp.concat(
        [first[..., :1, :], first[..., 1:, :] + second[..., :-1, :], second[..., -1:, :]], axis=-2
    )
    signal = xp.reshape(halves, lead + ((slices.shape[-2] + 1) * hop,))
    return signal[..., hop : hop + length]
