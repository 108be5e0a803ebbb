"""Balancing the rendered stems of a track and summing them into the mixture."""

from __future__ import annotations

import math

import numpy as np

from xslicq.data import SOURCES

PEAK_LIMIT = 0.95  # no stem and no mixture peaks above this
REFERENCE_RMS = 0.1  # loudness of a stem at 0 dB gain, before the common factor


def active_rms(x, sample_rate):
    """RMS of ``x`` (nb_frames, nb_channels) over its 50 ms blocks louder than -50 dB of the
    loudest block (the whole signal if shorter than one block); 0.0 for silence."""
    block = max(1, sample_rate // 20)
    n = x.shape[0] // block
    if n == 0:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    blocks = x[: n * block].reshape(n, block * x.shape[1])
    e = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64) / blocks.shape[1]
    peak = e.max()
    if peak <= 0:
        return 0.0
    return float(np.sqrt(np.mean(e[e > peak * 1e-5])))


def peak(x):
    """Largest absolute value of ``x``."""
    return float(max(x.max(), -x.min()))


def mix_stems(rendered, gains_db, target_peak, name):
    """Balance and scale the stems of track ``name``.

    Each stem gets its gain in ``gains_db`` relative to a common loudness (its active RMS
    brought to :data:`REFERENCE_RMS`), then all stems one factor that puts the largest peak
    (of the mixture and of every stem) at ``target_peak`` (below :data:`PEAK_LIMIT`).

    Args:
        rendered: source -> ``(audio, active_rms)`` with float32 audio (nb_frames, 2); the
            arrays are scaled in place and returned as the stems.
        gains_db: source -> gain in dB.
        target_peak: peak of the loudest of the stems and the mixture.
        name: the track's name, for the error message.

    Returns:
        ``(stems, mixture, gains_db)``: source -> float32 (nb_frames, 2) stem, their float32
        sum (nb_frames, 2) and the applied gains in dB (rounded to 1e-3).

    Raises:
        RuntimeError: a stem is silent.
    """
    gains = {}
    for s in SOURCES:
        rms = rendered[s][1]
        if rms <= 0:
            raise RuntimeError(
                f"fluidsynth rendered silence for {s} of {name}; "
                "is the SoundFont a General MIDI one?"
            )
        gains[s] = 10 ** (gains_db[s] / 20) * REFERENCE_RMS / rms
    mixture = np.zeros_like(rendered[SOURCES[0]][0])
    for s in SOURCES:
        mixture += np.float32(gains[s]) * rendered[s][0]
    loudest = max([peak(mixture)] + [gains[s] * peak(rendered[s][0]) for s in SOURCES])
    factor = target_peak / loudest
    stems = {}
    for s in SOURCES:
        stems[s] = rendered[s][0]
        stems[s] *= np.float32(gains[s] * factor)
    # float32 sum of the float32 stems: equal to their exact sum within ~3e-7
    mixture = stems[SOURCES[0]] + stems[SOURCES[1]]
    for s in SOURCES[2:]:
        mixture += stems[s]
    return stems, mixture, {s: round(20 * math.log10(gains[s] * factor), 3) for s in SOURCES}
