"""Band-limited resampling in NumPy, for the torch-free separator.

The same windowed-sinc interpolation as ``torchaudio.functional.resample`` with its
defaults (``sinc_interp_hann``, 6 zero crossings, roll-off 0.99), so the torch-free and the
torch separators resample alike (tested against torchaudio). Rates are reduced by their
greatest common divisor ``g``: output sample ``i * new + p`` of the ``new / g`` phases is the
dot product of the input around sample ``i * orig`` with phase ``p``'s kernel.
"""

from __future__ import annotations

import math

import numpy as np

ZERO_CROSSINGS = 6  # the kernel reaches this many zero crossings of the sinc either side
ROLLOFF = 0.99  # the cut-off, a fraction of the lower Nyquist frequency
FRAMES_PER_BLOCK = 1 << 15  # output frames computed at once (bounds the working memory)


def sinc_kernels(orig: int, new: int) -> tuple[np.ndarray, int]:
    """``(new, 2 * width + orig)`` float32 kernels, one per output phase, and ``width``,
    the input samples the kernels reach before the first one (rates already reduced)."""
    base = min(orig, new) * ROLLOFF
    width = math.ceil(ZERO_CROSSINGS * orig / base)
    f32 = np.float32  # computed in the signal's precision, as torchaudio does
    t = (np.arange(0, -new, -1, dtype=f32)[:, None] / f32(new)) + (
        np.arange(-width, width + orig, dtype=f32)[None] / f32(orig)
    )
    t = np.clip(t * f32(base), -ZERO_CROSSINGS, ZERO_CROSSINGS)
    window = np.cos(t * f32(math.pi / ZERO_CROSSINGS / 2)) ** 2
    t = t * f32(math.pi)
    sinc = np.where(t == 0, f32(1.0), np.sin(t) / np.where(t == 0, f32(1.0), t))
    return sinc * window * f32(base / orig), width


def resample(x: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    """Resample ``x`` (..., samples) float32 from ``orig_freq`` to ``new_freq`` Hz.

    Returns (..., ceil(samples * new_freq / orig_freq)) float32; ``x`` itself when the
    rates are equal."""
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    if orig == new:
        return x
    kernels, width = sinc_kernels(orig, new)
    kernels = kernels.T  # (K, new)
    lead, n = x.shape[:-1], x.shape[-1]
    flat = np.reshape(np.asarray(x, np.float32), (-1, n))
    padded = np.pad(flat, ((0, 0), (width, width + orig)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[0], axis=-1)[
        :, ::orig
    ]  # (rows, n // orig + 1, K), a view
    out = np.empty((flat.shape[0], frames.shape[1], new), np.float32)
    for start in range(0, frames.shape[1], FRAMES_PER_BLOCK):
        stop = start + FRAMES_PER_BLOCK
        out[:, start:stop] = frames[:, start:stop] @ kernels
    length = math.ceil(new * n / orig)
    return np.reshape(out, (flat.shape[0], -1))[:, :length].reshape(lead + (length,))
