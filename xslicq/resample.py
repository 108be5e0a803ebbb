"""Band-limited resampling in NumPy, for the torch-free separator.

The same windowed-sinc interpolation as ``torchaudio.functional.resample`` with its
defaults (``sinc_interp_hann``, 6 zero crossings, roll-off 0.99), so the torch-free and the
torch separators resample alike (tested against torchaudio). Rates are reduced by their
greatest common divisor to ``orig`` and ``new``; output sample ``j`` (phase ``p = j mod new``)
is the dot product of the ``2 * width + 1`` input samples around ``floor(j * orig / new)``
with phase ``p``'s kernel (:func:`phase_kernels`).

The cost does not depend on the gcd: torchaudio (and this module before) builds a
``(new, 2 * width + orig)`` kernel, 7.8 GB for 44099 Hz -> 44100 Hz; here a kernel has
``2 * width + 1`` taps (15 between rates close to each other), all phases' kernels are kept
only while they fit :data:`TABLE_LIMIT` values (else each block computes its own), and
the work runs in blocks of at most :data:`BLOCK_VALUES` gathered input samples. Beyond
the input (and its padded copy) and the output, the memory is bounded whatever the rates:
3 s of stereo peaks at 8 MiB from 44099 Hz to 44100 Hz and 5.5 MiB from 48 kHz (tracemalloc;
44056 Hz took 2.0 GiB before, 44099 Hz failed to allocate 7.25 GiB).
"""

from __future__ import annotations

import math

import numpy as np

ZERO_CROSSINGS = 6  # the kernel reaches this many zero crossings of the sinc either side
ROLLOFF = 0.99  # the cut-off, a fraction of the lower Nyquist frequency
BLOCK_VALUES = 1 << 19  # input samples gathered at once (rows x outputs x taps: 2 MiB)
TABLE_LIMIT = 1 << 20  # kernel values kept for every phase at most (4 MiB), else per block


def kernel_width(orig: int, new: int) -> int:
    """Input samples the kernels reach on either side of an output sample (rates reduced):
    ``ceil(ZERO_CROSSINGS * orig / (min(orig, new) * ROLLOFF))``, 7 between close rates."""
    return math.ceil(ZERO_CROSSINGS * orig / (min(orig, new) * ROLLOFF))


def phase_kernels(orig: int, new: int, phases) -> np.ndarray:
    """``(len(phases), 2 * width + 1)`` float32 kernels of the output ``phases`` (rates
    reduced; output sample ``j`` has phase ``j mod new``): tap ``k`` of output ``j`` weighs
    input sample ``floor(j * orig / new) + k - width``.

    torchaudio's kernels (whose rows are phases too), with the distance from each tap to
    the output sample computed exactly (an integer over ``orig * new``) and the window and
    sinc in float64: torchaudio's float32 difference of two terms near 1 loses the
    distance's digits when the reduced rates are large (a 1 kHz sine resampled from
    44099 Hz came out 3e-3 off; now 1e-4)."""
    base = min(orig, new) * ROLLOFF
    width = kernel_width(orig, new)
    p = np.asarray(phases, np.int64)
    taps = (p * orig // new - width)[:, None] + np.arange(2 * width + 1)  # from i * orig
    # input sample i * orig + taps at time (taps / orig - p / new) from output i * new + p
    t = (taps * new - (p * orig)[:, None]) / (orig * new)
    t = np.clip(t * base, -ZERO_CROSSINGS, ZERO_CROSSINGS)
    window = np.cos(t * (math.pi / ZERO_CROSSINGS / 2)) ** 2
    t = t * math.pi
    sinc = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t))
    return (sinc * window * (base / orig)).astype(np.float32)


def resample(x: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    """Resample ``x`` (..., samples) float32 from ``orig_freq`` to ``new_freq`` Hz.

    Returns (..., ceil(samples * new_freq / orig_freq)) float32; ``x`` itself when the
    rates are equal. Working memory beyond the input and output is bounded (module
    docstring), for any pair of rates."""
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    if orig == new:
        return x
    width = kernel_width(orig, new)
    taps = 2 * width + 1
    lead, n = x.shape[:-1], x.shape[-1]
    flat = np.reshape(np.asarray(x, np.float32), (-1, n))
    rows, length = flat.shape[0], math.ceil(new * n / orig)
    padded = np.pad(flat, ((0, 0), (width, width)))
    # window i: input samples i - width .. i + width, a view (rows, n, taps)
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=-1)
    table = None
    if new * taps <= TABLE_LIMIT:  # every phase's kernel, once
        table = np.concatenate(
            [
                phase_kernels(orig, new, np.arange(s, min(s + 4096, new)))
                for s in range(0, new, 4096)
            ]
        )
    out = np.empty((rows, length), np.float32)
    block = max(1, BLOCK_VALUES // (rows * taps))
    for start in range(0, length, block):
        j = np.arange(start, min(start + block, length), dtype=np.int64)
        phases = j % new
        kernels = table[phases] if table is not None else phase_kernels(orig, new, phases)
        out[:, start : start + len(j)] = np.einsum(
            "rbk,bk->rb", windows[:, j * orig // new], kernels
        )
    return out.reshape(lead + (length,))
