"""Frequency scales: the centre frequency and bandwidth of every sliCQT bin.

Every scale places ``bins`` centre frequencies uniformly on a warped axis
``u = warp(f)`` between ``fmin`` and ``fmax``. The bandwidth of bin k is the
distance between its two neighbours on the same grid, ``f[k+1] - f[k-1]``
(the neighbours of the first and last bin are extrapolated on the warped
axis), so neighbouring Hann windows overlap and cover the band without gaps.
The quality factor is ``Q = f / bandwidth``.

Scales:
    cqlog   log-spaced centres, constant Q
    oct     log-spaced centres with ``bins`` bins per octave, constant Q
    mel     centres equally spaced in mel (O'Shaughnessy, 2595 log10(1 + f/700))
    bark    centres equally spaced in Bark (Schroeder, 7 asinh(f/650))
    vqlog   cqlog centres, bandwidth widened by a constant ``gamma`` Hz, so Q
            falls towards low frequencies (variable-Q)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

SCALES = ("cqlog", "oct", "mel", "bark", "vqlog")


@dataclass(frozen=True)
class FrequencyScale:
    """Centre frequencies and bandwidths (Hz) of the bins of one scale, ascending."""

    name: str
    freqs: np.ndarray
    bandwidths: np.ndarray

    @property
    def q(self) -> np.ndarray:
        """Quality factor of every bin, ``freqs / bandwidths``."""
        return self.freqs / self.bandwidths

    def __len__(self) -> int:
        return len(self.freqs)


def _warp(name: str):
    """(forward, inverse) warping functions of a scale's frequency axis."""
    if name in ("cqlog", "vqlog", "oct"):
        return np.log2, np.exp2
    if name == "mel":
        return (
            lambda f: 2595.0 * np.log10(1.0 + f / 700.0),
            lambda u: 700.0 * (10.0 ** (u / 2595.0) - 1.0),
        )
    if name == "bark":
        return (lambda f: 7.0 * np.arcsinh(f / 650.0), lambda u: 650.0 * np.sinh(u / 7.0))
    raise ValueError(f"unknown frequency scale {name!r}; choose one of {', '.join(SCALES)}")


MAX_SCALE_BINS = 2**20  # bins (per octave for oct) of any scale; audio scales use hundreds


def _is_real(value) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite(value) -> bool:
    """A finite real number (not a bool); False for integers too large for a float."""
    try:
        return _is_real(value) and math.isfinite(value)
    except OverflowError:
        return False


def check_scale_args(name: str, fmin, fmax, bins, gamma=25.0) -> int:
    """Raise a clear error unless the arguments describe a scale; returns ``bins`` as an int.

    ``bins`` must be a whole number in ``[1, MAX_SCALE_BINS]`` (``24`` or ``24.0``, not
    ``True`` or ``2.5``), ``fmin`` and ``fmax`` finite frequencies with ``0 < fmin < fmax``
    and ``gamma`` (vqlog) a finite bandwidth >= 0. Whether a transform can afford the
    scale's windows is checked by the transform (:mod:`xslicq.transform.budget`).
    """
    _warp(name)
    whole = _is_real(bins) and (
        isinstance(bins, numbers.Integral) or (_finite(bins) and float(bins).is_integer())
    )
    if not (whole and bins >= 1):
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if bins > MAX_SCALE_BINS:
        per = " per octave" if name == "oct" else ""
        raise ValueError(
            f"bins={bins!r} is more than MAX_SCALE_BINS={MAX_SCALE_BINS} bins{per}; "
            f"audio scales use tens to a few thousand"
        )
    for key, value in (("fmin", fmin), ("fmax", fmax)):
        if not _finite(value):
            raise ValueError(f"{key} must be a finite frequency in Hz, got {value!r}")
    if not fmin > 0:
        raise ValueError(f"fmin must be a positive frequency in Hz, got {fmin!r}")
    if not fmax > fmin:
        raise ValueError(f"fmin must be below fmax, got fmin={fmin!r} >= fmax={fmax!r}")
    if name == "vqlog" and not (_finite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a non-negative bandwidth in Hz, got {gamma!r}")
    return int(bins)


def nb_scale_bins(name: str, fmin: float, fmax: float, bins: int) -> int:
    """Number of bins of a scale, computed without building it: ``bins``, or for ``oct``
    ``bins`` per octave over ``log2(fmax / fmin)`` octaves (plus the one at ``fmin``)."""
    if name != "oct":
        return int(bins)
    octaves = math.log2(float(fmax) / float(fmin))
    return int(math.floor(octaves * float(bins) + 1e-9)) + 1


def _grid(name: str, fmin: float, fmax: float, bins: int):
    """The warped axis of a scale: ``(inverse warp, u_min, step, nb)``; bin ``k`` sits at
    ``u_min + step * k`` and its bandwidth reaches from bin ``k - 1`` to bin ``k + 1``."""
    forward, inverse = _warp(name)
    u_min, u_max = forward(float(fmin)), forward(float(fmax))
    if name == "oct":
        step = 1.0 / bins
        nb = int(np.floor((u_max - u_min) / step + 1e-9)) + 1
    else:
        nb = bins
        step = (u_max - u_min) / max(nb - 1, 1)
    return inverse, u_min, step, nb


def _bins_at(name, fmin, fmax, bins, gamma, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre frequencies and bandwidths of bins ``k`` (ascending indices) of a scale."""
    inverse, u_min, step, nb = _grid(name, fmin, fmax, bins)
    freqs = inverse(u_min + step * k)
    bandwidths = inverse(u_min + step * (k + 1)) - inverse(u_min + step * (k - 1))
    freqs = np.where(k == 0, float(fmin), freqs)  # exact ends, whatever the warp's rounding
    if name != "oct" and nb > 1:
        freqs = np.where(k == nb - 1, float(fmax), freqs)
    if name == "vqlog":
        bandwidths = bandwidths + gamma
    return freqs, bandwidths


def make_scale(
    name: str, fmin: float, fmax: float, bins: int, gamma: float = 25.0
) -> FrequencyScale:
    """Build a frequency scale.

    Args:
        name: one of ``SCALES``.
        fmin, fmax: lowest and highest centre frequency in Hz, ``0 < fmin < fmax``.
        bins: number of bins; for ``oct`` the number of bins per octave.
        gamma: extra bandwidth in Hz of every bin for ``vqlog`` (>= 0).

    Returns:
        FrequencyScale with ``freqs`` and ``bandwidths`` of shape ``(nb_bins,)``.
    """
    bins = check_scale_args(name, fmin, fmax, bins, gamma)
    nb = _grid(name, fmin, fmax, bins)[3]
    if nb > MAX_SCALE_BINS:
        raise ValueError(
            f"bins={bins} per octave from fmin={fmin} to fmax={fmax} Hz gives {nb} bins, more "
            f"than MAX_SCALE_BINS={MAX_SCALE_BINS}: lower bins or narrow fmin..fmax"
        )
    freqs, bandwidths = _bins_at(name, fmin, fmax, bins, gamma, np.arange(nb, dtype=float))
    return FrequencyScale(name=name, freqs=freqs, bandwidths=bandwidths)


def scale_ends(
    name: str, fmin: float, fmax: float, bins: int, gamma: float = 25.0
) -> FrequencyScale:
    """The first and the last bin of a scale (one bin if it has one), computed as
    :func:`make_scale` computes them but without building the others: cheap for any
    number of bins. Bandwidths grow with frequency on every scale (the inverse warps are
    convex on positive frequencies), so the first bin is the narrowest and the ends hold
    everything :func:`~xslicq.transform.frames.min_sllen` needs."""
    bins = check_scale_args(name, fmin, fmax, bins, gamma)
    nb = _grid(name, fmin, fmax, bins)[3]
    k = np.array([0.0] if nb == 1 else [0.0, float(nb - 1)])
    freqs, bandwidths = _bins_at(name, fmin, fmax, bins, gamma, k)
    return FrequencyScale(name=name, freqs=freqs, bandwidths=bandwidths)
