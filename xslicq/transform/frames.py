"""Painless non-stationary Gabor frame of one slice: windows, index maps and duals.

Pure NumPy functions, evaluated once per transform and turned into backend
arrays by :mod:`xslicq.transform.slicqt`.

Conventions (one slice of ``sllen = N`` samples, one-sided spectrum of
``nf = N // 2 + 1`` frequency samples, ``df = sample_rate / N`` Hz apart):

* Row 0 is the DC window (flat from 0 Hz, falling to zero at the first
  centre), rows 1..K are the scale's bins (Hann windows of the bin's bandwidth
  around its centre) and, when the last centre is below Nyquist, a last row is
  the Nyquist window (rising from the last centre, flat up to Nyquist); see
  :func:`row_geometry`.
* Row k keeps the spectrum samples ``j`` where its window is non-zero, a
  contiguous run of ``s_k`` samples, and places sample ``j`` at position
  ``(j - c_k) mod M_k`` of a buffer of ``M_k`` samples (``c_k`` is the window's
  centre sample; the window fits in the ``M_k`` samples centred on ``c_k``), so the
  coefficients are demodulated to base band and nothing aliases ("painless" case). Its
  coefficients are the inverse DFT of the windowed buffer: ``M_k`` time samples spread
  evenly over the slice.
* ``M_k`` is rounded up to a power of two; rows with the same ``M`` that are
  neighbours in frequency form one block.
* With the analysis ``c_k = IDFT_M(g_k X)`` (unnormalised sum), the frame
  operator is the diagonal ``D[j] = sum_k M_k g_k[j]^2``; the canonical dual
  windows are ``M_k g_k / D``, and ``sum_k (dual_k g_k)`` is 1 at every
  spectrum sample, so the synthesis is an exact inverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_WINDOW_SAMPLES = 2  # narrowest admissible window width, in spectrum samples
SUGGESTED_WINDOW_SAMPLES = 3  # width of the narrowest window at the suggested sllen


@dataclass(frozen=True)
class Block:
    """Rows that share one time resolution ``M``: rows ``start:stop`` of the transform."""

    start: int
    stop: int
    m: int
    index: np.ndarray  # (rows, M) int64: spectrum sample read into each buffer position
    window: np.ndarray  # (rows, M) float64: analysis window at each buffer position (0 if unused)
    dual: np.ndarray  # (rows, M) float64: canonical dual window at each buffer position
    centre: np.ndarray  # (rows,) int64: spectrum sample c of every row (its buffer position 0)

    @property
    def segment_start(self) -> np.ndarray:
        """First spectrum sample ``c - M/2`` of the contiguous run of ``M`` samples centred
        on every row's centre; the row's window lies inside it. May be negative or run past
        Nyquist (those samples are zero padding)."""
        return self.centre - self.m // 2

    @property
    def segment_window(self) -> np.ndarray:
        """(rows, M) analysis window in segment order: position ``m`` holds spectrum
        sample ``c - M/2 + m`` (the buffer rolled by ``M/2``)."""
        return np.roll(self.window, self.m // 2, axis=1)

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class SliceFrame:
    """The frame of one slice: row frequencies and the per-block tables."""

    sllen: int
    sample_rate: float
    freqs: np.ndarray  # (nb_rows,) centre frequency of every row in Hz, ascending
    bandwidths: np.ndarray  # (nb_rows,) full bandwidth of every row in Hz
    blocks: list[Block] = field(repr=False)
    diag: np.ndarray = field(repr=False)  # (nf,) frame operator diagonal

    @property
    def nf(self) -> int:
        return self.sllen // 2 + 1


def _pow2_size(n: int) -> int:
    """Smallest power of two >= max(n, 2): the time size of a row whose window covers n
    spectrum samples. Powers of two keep every block's time size a divisor or a multiple
    of any other, so blocks resample onto a common grid by integer factors."""
    return 1 << int(np.ceil(np.log2(max(n, 2))))


def row_geometry(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: float):
    """Shape of every row's window, DC and Nyquist rows included, all in Hz.

    A window is one on ``[a, b]`` and falls to zero as a half Hann over ``lo`` Hz
    below ``a`` and ``hi`` Hz above ``b``. Scale bins have ``a = b = centre`` and
    half the bandwidth each side. The DC window is flat up to where the first
    bin's window starts and then falls as the mirror image of that bin's rising
    edge (so the two never both fade out together); the Nyquist window does the
    same against the last bin.

    Returns:
        centre, a, b, lo, hi: arrays of shape (nb_rows,).
    """
    nyquist = sample_rate / 2.0
    half = bandwidths / 2.0
    flat_dc = max(freqs[0] - half[0], 0.0)
    centre = [0.0, *freqs]
    a, b = [-flat_dc, *freqs], [flat_dc, *freqs]
    lo, hi = [freqs[0] - flat_dc, *half], [freqs[0] - flat_dc, *half]
    if freqs[-1] < nyquist:
        flat_ny = min(freqs[-1] + half[-1], nyquist)
        centre.append(nyquist)
        a.append(flat_ny)
        b.append(2.0 * nyquist - flat_ny)
        lo.append(flat_ny - freqs[-1])
        hi.append(flat_ny - freqs[-1])
    return tuple(np.asarray(v, float) for v in (centre, a, b, lo, hi))


def window_values(f: np.ndarray, a: float, b: float, lo: float, hi: float) -> np.ndarray:
    """Window (flat on [a, b], half-Hann edges of ``lo`` and ``hi``) at frequencies ``f``."""
    below = 0.5 + 0.5 * np.cos(np.pi * np.clip((a - f) / lo, 0.0, 1.0))
    above = 0.5 + 0.5 * np.cos(np.pi * np.clip((f - b) / hi, 0.0, 1.0))
    return np.where(f < a, below, np.where(f > b, above, 1.0))


def min_sllen(
    freqs: np.ndarray,
    bandwidths: np.ndarray,
    sample_rate: float,
    window_samples: int = MIN_WINDOW_SAMPLES,
) -> int:
    """Shortest slice length (a multiple of 4) at which the narrowest window spans
    ``window_samples`` spectrum samples."""
    _, a, b, lo, hi = row_geometry(freqs, bandwidths, sample_rate)
    narrowest = float(np.min(b - a + lo + hi))
    n = int(np.ceil(window_samples * sample_rate / narrowest - 1e-9))
    return n + (-n) % 4


def fft_friendly_sllen(n: int) -> int:
    """Smallest multiple of 4 that is >= ``n`` and has no prime factor above 7, a
    length every FFT library (pocketfft, cuFFT) transforms at full speed."""
    n += (-n) % 4
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 4


def build_slice_frame(
    freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: float, sllen: int
) -> SliceFrame:
    """Windows, index maps and canonical duals of the frame of one slice of ``sllen`` samples."""
    nf = sllen // 2 + 1
    df = sample_rate / sllen
    centres, a, b, lo, hi = row_geometry(freqs, bandwidths, sample_rate)
    nrows = len(centres)

    supports, windows, centre_samples = [], [], []
    sizes = np.empty(nrows, dtype=np.int64)
    for k in range(nrows):
        first = max(int(np.floor((a[k] - lo[k]) / df)), 0)
        last = min(int(np.ceil((b[k] + hi[k]) / df)), nf - 1)
        j = np.arange(first, last + 1)
        g = window_values(j * df, a[k], b[k], lo[k], hi[k])
        j, g = j[g > 0], g[g > 0]
        if len(j) == 0:
            raise ValueError(
                f"sllen={sllen} is too short: the window of the row at {centres[k]:.2f} Hz "
                f"covers no spectrum sample"
            )
        supports.append(j)
        windows.append(g)
        centre_samples.append(int(np.clip(np.round(centres[k] / df), 0, nf - 1)))
        # the window must fit in the run of M samples centred on its centre sample
        sizes[k] = _pow2_size(2 * max(centre_samples[k] - j[0], j[-1] + 1 - centre_samples[k]))
    # window widths grow with frequency on every scale; keep M from jittering with the grid
    last_bin = nrows - 1 if freqs[-1] < sample_rate / 2.0 else nrows
    sizes[1:last_bin] = np.maximum.accumulate(sizes[1:last_bin])

    diag = np.zeros(nf)
    for k in range(nrows):
        diag[supports[k]] += sizes[k] * windows[k] ** 2
    if np.any(diag <= 0):
        gap = int(np.flatnonzero(diag <= 0)[0])
        raise ValueError(
            f"sllen={sllen}: the windows leave the spectrum sample at "
            f"{gap * df:.2f} Hz uncovered; the frame is not invertible"
        )

    blocks: list[Block] = []
    start = 0
    for k in range(1, nrows + 1):
        if k < nrows and sizes[k] == sizes[start]:
            continue
        m = int(sizes[start])
        index = np.zeros((k - start, m), dtype=np.int64)
        window = np.zeros((k - start, m))
        for r, row in enumerate(range(start, k)):
            pos = (supports[row] - centre_samples[row]) % m
            index[r, pos] = supports[row]
            window[r, pos] = windows[row]
        dual = m * window / diag[index]
        blocks.append(
            Block(
                start=start,
                stop=k,
                m=m,
                index=index,
                window=window,
                dual=dual,
                centre=np.asarray(centre_samples[start:k], dtype=np.int64),
            )
        )
        start = k
    return SliceFrame(
        sllen=sllen,
        sample_rate=float(sample_rate),
        freqs=centres,
        bandwidths=b - a + lo + hi,
        blocks=blocks,
        diag=diag,
    )
