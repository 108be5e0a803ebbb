"""The bass part of a synthetic song: chord roots, fifths, thirds, octaves and approach notes
in the rhythm of the section's bass pattern, between E1 and D#2 for the roots."""

from __future__ import annotations

import numpy as np

from .patterns import QUIET_BASS_PATTERNS, fit_pattern, pick
from .theory import STEP

BASS_CHANNEL = 0
LOWEST_ROOT = 28  # E1: bass roots lie in 28..39


def bass_notes(song):
    """Notes of the bass stem of a :class:`~xslicq.data.synthetic.song.Song`.

    Returns:
        list of ``(start_tick, end_tick, channel, pitch, velocity)``.
    """
    notes = []
    for sec in song.form:
        _section(song, sec, notes)
    return notes


def _section(song, sec, notes):
    """Append the bass of section ``sec`` to ``notes``; quiet sections play sparse roots."""
    rng = song.rng
    pattern = fit_pattern(song.plans[sec["name"]]["bass"], song.steps)
    if sec["energy"] == 0:
        pattern = fit_pattern(pick(rng, QUIET_BASS_PATTERNS), song.steps)
    staccato = float(rng.uniform(0.45, 0.95))
    for b in range(sec["bars"]):
        pat = list(pattern)
        if rng.random() < 0.3:  # rhythmic variation
            s = int(rng.integers(1, song.steps))
            pat[s] = "." if pat[s] != "." else pick(rng, ("r", "5", "o"))
        if b == sec["bars"] - 1 and sec["energy"] > 0:
            pat[song.steps - 2] = "a"
        _bar(song, sec["start"] + b, pat, staccato, notes)


def _bar(song, bar, pat, staccato, notes):
    """Append the notes of bar ``bar`` played to pattern ``pat`` (a list of characters),
    each held for the ``staccato`` fraction of the time to the next onset."""
    onsets = [s for s, c in enumerate(pat) if c != "."]
    for k, s in enumerate(onsets):
        nxt = onsets[k + 1] if k + 1 < len(onsets) else song.steps
        start = song.tick(bar, s)
        end_full = song.tick(bar, nxt) if nxt < song.steps else (bar + 1) * song.bar_ticks
        end = start + max(STEP // 2, int((end_full - start) * staccato))
        pitch = _pitch(song, pat[s], song.chord_at(start), end_full)
        vel = 95 + (10 if s % 4 == 0 else 0) + song.jitter(8)
        notes.append((start, end, BASS_CHANNEL, int(pitch), int(np.clip(vel, 1, 127))))


def _root(song, tones):
    """MIDI pitch of the root of a chord (``tones``, semitones above the tonic)."""
    return LOWEST_ROOT + (song.tonic + tones[0] - LOWEST_ROOT) % 12


def _pitch(song, c, tones, next_tick):
    """MIDI pitch of pattern character ``c`` over the chord ``tones``; an approach note
    (``"a"``) leads a step or two into the root of the chord at ``next_tick``."""
    root = _root(song, tones)
    if c == "r":
        return root
    if c == "5":
        return root + (tones[2] - tones[0])
    if c == "3":
        return root + (tones[1] - tones[0])
    if c == "o":
        return root + 12
    target = _root(song, song.chord_at(next_tick))
    pitch = target + int(pick(song.rng, (-1, 1, -2, 2)))
    return root + 7 if pitch == root else pitch
