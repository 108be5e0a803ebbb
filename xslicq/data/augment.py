"""Training augmentations of the Open-Unmix recipe, on NumPy stems ``(channels, samples)``.

Each takes an explicit ``numpy.random.Generator`` so that a sample is a pure function
of its seed, whichever worker draws it.
"""

from __future__ import annotations

import numpy as np


def random_gain(
    audio: np.ndarray, rng: np.random.Generator, low: float = 0.25, high: float = 1.25
) -> np.ndarray:
    """Scale by a gain drawn uniformly from ``[low, high]``."""
    return audio * np.float32(rng.uniform(low, high))


def random_channel_swap(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap left and right with probability 1/2 (stereo input)."""
    return audio[::-1].copy() if audio.shape[0] == 2 and rng.random() < 0.5 else audio


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of ``audio`` is below ``threshold_db`` dBFS."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return rms <= 10.0 ** (threshold_db / 20.0)
