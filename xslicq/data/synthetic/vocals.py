"""The lead vocal of a synthetic song: a melody sung in phrases separated by rests.

Sections whose plan says ``sung`` get a melody (the same one for every section of the same
name and length). A melody moves by small scale steps within a range (higher in choruses),
lands on chord tones on the beat, ends each phrase on a held chord tone, swells in velocity
over the phrase and leaves at least a second of breath between phrases.
"""

from __future__ import annotations

import math

import numpy as np

from .patterns import MELODY_CELLS, MELODY_STEPS, PHRASE_LEADS, pick
from .theory import STEP, TPB, chord_degrees, scale_semitones

VOCAL_CHANNEL = 0


def vocal_notes(song):
    """Notes of the vocal stem of a :class:`~xslicq.data.synthetic.song.Song`.

    Returns:
        list of ``(start_tick, end_tick, channel, pitch, velocity)``.
    """
    tonic_midi = 60 + song.tonic if song.tonic < 7 else 48 + song.tonic
    notes, melodies = [], {}
    for sec in song.form:
        if not song.plans[sec["name"]]["sung"]:
            continue
        key = (sec["name"], sec["bars"])
        if key not in melodies:
            melodies[key] = _melody(song, sec)
        base = sec["start"] * song.bar_ticks
        for a, e, degree, vel in melodies[key]:
            start = base + int(round(a * TPB))
            end = base + int(round(e * TPB)) - 12
            pitch = tonic_midi + scale_semitones(song.mode, degree)
            notes.append((start, max(start + STEP // 2, end), VOCAL_CHANNEL, pitch, vel))
    return notes


def _melody(song, sec):
    """Melody of section ``sec``: a list of ``(start_beat, end_beat, degree, velocity)`` with
    beats counted from the start of the section, two bars a phrase."""
    rng = song.rng
    phrase_beats = 2 * song.beats
    total_beats = sec["bars"] * song.beats
    high = sec["name"] == "chorus"
    bounds = (0, 8) if high else (-3, 5)
    degree = int(rng.integers(0, 3)) + (2 if high else 0)
    min_rest = max(2, int(math.ceil(1.0 / (60.0 / song.bpm))))  # >= 1 s of breath
    out, p0 = [], 0
    n_phrases = int(math.ceil(total_beats / phrase_beats))
    # a verse or bridge may leave out a phrase, never its first one
    skip = [ph > 0 and sec["name"] != "chorus" and rng.random() < 0.1 for ph in range(n_phrases)]
    for ph in range(n_phrases):
        p_end = min(p0 + phrase_beats, total_beats)
        lead = float(pick(rng, PHRASE_LEADS))
        if ph == 0:
            lead = 1.0 if p_end - p0 < 6 else max(lead, 1.0)
        t = p0 + lead
        # breathe >= 1 s between phrases; short phrases keep >= 1 beat of rest
        stop = p_end - min(min_rest, max(1.0, p_end - t - 2.0))
        if not skip[ph] and stop - t >= 1.0:
            phrase, degree = _phrase(song, sec, t, stop, degree, bounds)
            if phrase:
                out += _shape(song, sec, phrase, bounds)
        p0 = p_end
    return out


def _phrase(song, sec, t, stop, degree, bounds):
    """Notes ``[start_beat, end_beat, degree]`` from beat ``t`` to ``stop``, in rhythm cells,
    starting from scale degree ``degree`` and kept within ``bounds`` (lowest, highest).

    Returns:
        ``(phrase, degree)``: the notes and the degree the melody reached.
    """
    rng, (lo, hi) = song.rng, bounds
    phrase = []
    while t < stop - 1e-9:
        for dur in pick(rng, MELODY_CELLS):
            if t >= stop - 1e-9:
                break
            dur = min(dur, stop - t)
            step = int(pick(rng, MELODY_STEPS))
            if not lo <= degree + step <= hi:  # turn back at the edges of the range
                step = -step
            degree = int(np.clip(degree + step, lo, hi))
            if abs(t - round(t)) < 1e-9:  # strong beat: chord tone
                tick = sec["start"] * song.bar_ticks + int(round(t * TPB))
                cds = chord_degrees(song.mode, song.chord_at(tick))
                degree = min(cds, key=lambda c: (abs(c - degree), c))
                degree = int(np.clip(degree, lo, hi))
            phrase.append([t, t + dur, degree])
            t += dur
    return phrase, degree


def _shape(song, sec, phrase, bounds):
    """End ``phrase`` on the nearest chord tone (one degree past ``bounds`` allowed) and give
    its notes velocities that swell and fade; returns ``(start, end, degree, velocity)``s."""
    lo, hi = bounds
    last = phrase[-1]
    tick = sec["start"] * song.bar_ticks + int(round(last[0] * TPB))
    cds = chord_degrees(song.mode, song.chord_at(tick))
    last[2] = int(np.clip(min(cds, key=lambda c: abs(c - last[2])), lo - 1, hi + 1))
    n = len(phrase)
    out = []
    for k, (a, e, degree) in enumerate(phrase):
        arc = math.sin(math.pi * (k + 0.5) / n)
        out.append((a, e, degree, int(80 + 25 * arc + song.rng.integers(-5, 6))))
    return out
