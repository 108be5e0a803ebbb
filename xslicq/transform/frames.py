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
    length every FFT library (pocketfft, cuFFT) transforms at full speed.

    Walks the 7-smooth numbers ``2^a 3^b 5^c 7^d`` rather than testing ``n, n + 4, ...``
    (whose gaps grow with ``n``), so it is instant at any length."""
    target = -(-max(int(n), 1) // 4)  # the answer is 4 m with m 7-smooth and m >= target
    best = 1 << max(target - 1, 0).bit_length()  # the power of two at or above target
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = p3
                while m < target:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return 4 * best


def row_extents(
    freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: float, sllen: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Support, centre sample and time size of every row at slice length ``sllen``, for all
    rows at once (no tables: cheap enough to estimate a transform before building it).

    Returns:
        first, last: (nb_rows,) int64 first and last spectrum sample where the row's window
            is non-zero (``last < first`` for a row that covers no sample).
        centre: (nb_rows,) int64 spectrum sample nearest the row's centre frequency.
        sizes: (nb_rows,) int64 time size ``M`` of every row: the power of two that holds
            the window centred on ``centre``, non-decreasing over the scale bins. Powers of
            two keep every block's time size a divisor or a multiple of any other, so blocks
            resample onto a common grid by integer factors.
    """
    nf = sllen // 2 + 1
    df = sample_rate / sllen
    centres, a, b, lo, hi = row_geometry(freqs, bandwidths, sample_rate)
    first = np.maximum(np.floor((a - lo) / df), 0).astype(np.int64)
    last = np.minimum(np.ceil((b + hi) / df), nf - 1).astype(np.int64)
    # the window is zero at the ends of [a - lo, b + hi]: step inwards to non-zero samples
    for end, inwards in ((first, 1), (last, -1)):
        while True:
            zero = (first <= last) & (window_values(end * df, a, b, lo, hi) <= 0)
            if not zero.any():
                break
            end[zero] += inwards
    centre = np.clip(np.round(centres / df), 0, nf - 1).astype(np.int64)
    half = np.maximum(centre - first, last + 1 - centre)
    sizes = np.left_shift(1, np.ceil(np.log2(np.maximum(2 * half, 2))).astype(np.int64))
    # window widths grow with frequency on every scale; keep M from jittering with the grid
    last_bin = len(centres) - 1 if freqs[-1] < sample_rate / 2.0 else len(centres)
    sizes[1:last_bin] = np.maximum.accumulate(sizes[1:last_bin])
    return first, last, centre, sizes


def build_slice_frame(
    freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: float, sllen: int
) -> SliceFrame:
    """Windows, index maps and canonical duals of the frame of one slice of ``sllen`` samples."""
    nf = sllen // 2 + 1
    df = sample_rate / sllen
    centres, a, b, lo, hi = row_geometry(freqs, bandwidths, sample_rate)
    nrows = len(centres)
    first, last, centre, sizes = row_extents(freqs, bandwidths, sample_rate, sllen)
    if np.any(last < first):
        k = int(np.flatnonzero(last < first)[0])
        raise ValueError(
            f"sllen={sllen} is too short: the window of the row at {centres[k]:.2f} Hz "
            f"covers no spectrum sample"
        )
    # every row's support, flattened in row order: row[p] and spectrum sample j[p]
    lengths = last - first + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    row = np.repeat(np.arange(nrows), lengths)
    j = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - first, lengths)
    g = window_values(j * df, a[row], b[row], lo[row], hi[row])

    diag = np.bincount(j, weights=sizes[row] * g**2, minlength=nf)
    if np.any(diag <= 0):
        gap = int(np.flatnonzero(diag <= 0)[0])
        raise ValueError(
            f"sllen={sllen}: the windows leave the spectrum sample at "
            f"{gap * df:.2f} Hz uncovered; the frame is not invertible"
        )

    blocks: list[Block] = []
    edges = np.flatnonzero(np.diff(sizes)) + 1  # rows where M changes start a new block
    for start, stop in zip([0, *edges], [*edges, nrows]):
        m = int(sizes[start])
        part = slice(offsets[start], offsets[stop])
        r, jj = row[part] - start, j[part]
        pos = (jj - centre[row[part]]) % m
        index = np.zeros((stop - start, m), dtype=np.int64)
        window = np.zeros((stop - start, m))
        index[r, pos] = jj
        window[r, pos] = g[part]
        dual = m * window / diag[index]
        blocks.append(
            Block(
                start=int(start),
                stop=int(stop),
                m=m,
                index=index,
                window=window,
                dual=dual,
                centre=centre[start:stop].copy(),
            )
        )
    return SliceFrame(
        sllen=sllen,
        sample_rate=float(sample_rate),
        freqs=centres,
        bandwidths=b - a + lo + hi,
        blocks=blocks,
        diag=diag,
    )
