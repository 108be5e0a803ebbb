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
    forward, inverse = _warp(name)
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    bins = int(bins)
    if not (np.isfinite(fmin) and fmin > 0):
        raise ValueError(f"fmin must be a positive frequency in Hz, got {fmin!r}")
    if not (np.isfinite(fmax) and fmax > fmin):
        raise ValueError(f"fmin must be below fmax, got fmin={fmin!r} >= fmax={fmax!r}")
    if name == "vqlog" and not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a non-negative bandwidth in Hz, got {gamma!r}")

    u_min, u_max = forward(float(fmin)), forward(float(fmax))
    if name == "oct":
        step = 1.0 / bins
        nb = int(np.floor((u_max - u_min) / step + 1e-9)) + 1
    else:
        nb = bins
        step = (u_max - u_min) / max(nb - 1, 1)
    u = u_min + step * np.arange(-1, nb + 1)
    edges = inverse(u)  # centres with one extrapolated neighbour each side
    freqs = edges[1:-1]
    freqs[0] = fmin  # exact ends, whatever the warp's rounding
    if name != "oct" and nb > 1:
        freqs[-1] = fmax
    bandwidths = edges[2:] - edges[:-2]
    if name == "vqlog":
        bandwidths = bandwidths + gamma
    return FrequencyScale(name=name, freqs=freqs, bandwidths=bandwidths)
