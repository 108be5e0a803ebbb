"""Deterministic test signals: noise, impulses, chirps and a music-like mix.

Golden tests, demos and benchmarks use these instead of downloaded audio. All
functions return float64 NumPy arrays of shape (channels, samples).
"""

from __future__ import annotations

import numpy as np


def noise(samples: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Gaussian white noise."""
    return np.random.default_rng(seed).standard_normal((channels, samples))


def impulse(samples: int, positions, channels: int = 2) -> np.ndarray:
    """Unit impulses at the given sample positions, in every channel."""
    x = np.zeros((channels, samples))
    x[:, np.atleast_1d(positions)] = 1.0
    return x


def sinusoid(
    samples: int, freq: float, sample_rate: int, channels: int = 2, phase: float = 0.0
) -> np.ndarray:
    """A steady sinusoid of unit amplitude."""
    t = np.arange(samples) / sample_rate
    return np.tile(np.sin(2 * np.pi * freq * t + phase), (channels, 1))


def chirp(
    samples: int, sample_rate: int, f0: float = 20.0, f1: float | None = None, channels: int = 2
) -> np.ndarray:
    """An exponential sweep from ``f0`` to ``f1`` Hz (default: 90% of Nyquist)."""
    f1 = 0.45 * sample_rate if f1 is None else f1
    duration = samples / sample_rate
    t = np.arange(samples) / sample_rate
    rate = np.log(f1 / f0) / duration
    phase = 2 * np.pi * f0 * (np.exp(rate * t) - 1.0) / rate
    return np.tile(np.sin(phase), (channels, 1))


def _note_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, float) - 69.0) / 12.0)


def _tone(
    t: np.ndarray, freq: float, harmonics: int, decay: float, brightness: float
) -> np.ndarray:
    """A harmonic tone with an exponential decay; upper partials fade faster."""
    out = np.zeros_like(t)
    for h in range(1, harmonics + 1):
        if freq * h >= 20000:
            break
        out += brightness ** (h - 1) / h * np.sin(2 * np.pi * freq * h * t) * np.exp(-decay * h * t)
    return out


def music_like(
    seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0, tempo: float = 110.0
) -> np.ndarray:
    """A short song-like mix: chords, a bass line, a vibrato melody and a drum pattern.

    Stems are panned differently per channel; the mix peaks at 0.9.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    beat = 60.0 / tempo
    out = np.zeros((channels, n))
    pans = np.linspace(0.25, 0.75, channels) if channels > 1 else np.array([0.5])
    root = 48 + int(rng.integers(0, 12))
    progression = [0, 5, 7, 3, 8, 5, 10, 7]

    def place(stem, start, signal, pan):
        i0 = int(start * sample_rate)
        if i0 >= n:
            return
        seg = signal[: n - i0]
        gains = np.sqrt(np.clip(1.0 - np.abs(pans - pan), 0.05, 1.0))
        stem[:, i0 : i0 + len(seg)] += gains[:, None] * seg

    bar = 4 * beat
    for b in range(int(np.ceil(seconds / bar))):
        chord_root = root + progression[b % len(progression)]
        minor = progression[b % len(progression)] in (3, 8, 10)
        chord = [chord_root, chord_root + (3 if minor else 4), chord_root + 7, chord_root + 12]
        t = np.arange(int(bar * sample_rate)) / sample_rate
        for note in chord:  # chords (piano-like)
            place(out, b * bar, 0.12 * _tone(t, _note_hz(note + 12), 8, 1.5, 0.7), 0.35)
        for q in range(4):  # bass on every beat
            tb = np.arange(int(beat * sample_rate)) / sample_rate
            bass_note = chord_root - 12 + (7 if q == 2 else 0)
            place(out, b * bar + q * beat, 0.3 * _tone(tb, _note_hz(bass_note), 5, 3.0, 0.5), 0.5)
        for e in range(8):  # melody with vibrato on eighth notes
            te = np.arange(int(beat / 2 * sample_rate)) / sample_rate
            note = chord[int(rng.integers(0, 4))] + 24
            f = _note_hz(note) * (1.0 + 0.006 * np.sin(2 * np.pi * 5.5 * te))
            phase = 2 * np.pi * np.cumsum(f) / sample_rate
            env = np.minimum(te / 0.02, 1.0) * np.exp(-2.0 * te)
            voice = env * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase))
            place(out, b * bar + e * beat / 2, 0.1 * voice, 0.6)
        for q in range(8):  # drums: kick on 1 and 3, snare on 2 and 4, hats on eighths
            td = np.arange(int(0.25 * sample_rate)) / sample_rate
            if q % 4 == 0:
                kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-td * 30)) * td) * np.exp(-td * 12)
                place(out, b * bar + q * beat / 2, 0.6 * kick, 0.5)
            if q % 4 == 2:
                snare = rng.standard_normal(len(td)) * np.exp(-td * 25)
                place(out, b * bar + q * beat / 2, 0.25 * snare, 0.45)
            hat = np.diff(rng.standard_normal(len(td) + 1)) * np.exp(-td * 80)
            place(out, b * bar + q * beat / 2, 0.08 * hat, 0.7)
    return 0.9 * out / max(np.max(np.abs(out)), 1e-12)
