"""Music theory of the synthetic songs: note names, modes, chord progressions and voicings.

Pitches are MIDI note numbers; chord tones are semitones above the tonic (a song's key);
scale degrees are 0-based and may leave the octave (degree 7 is the tonic an octave up,
degree -1 the leading tone below it); times are MIDI ticks, :data:`TPB` to a beat.
"""

from __future__ import annotations

TPB = 480  # MIDI ticks per beat (a quarter note)
STEP = TPB // 4  # ticks of a sixteenth note, one step of a pattern

NOTE_NAMES = ("c", "cs", "d", "eb", "e", "f", "fs", "g", "ab", "a", "bb", "b")
MODE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# chord progressions as 0-based scale degrees
PROGRESSIONS = {
    "major": [
        (0, 4, 5, 3),
        (0, 3, 4, 3),
        (5, 3, 0, 4),
        (0, 5, 3, 4),
        (1, 4, 0, 0),
        (0, 2, 3, 4),
        (3, 0, 4, 5),
        (0, 3, 5, 4),
        (3, 4, 2, 5),
        (0, 0, 3, 4),
    ],
    "minor": [
        (0, 5, 2, 6),
        (0, 3, 4, 0),
        (0, 6, 5, 6),
        (0, 3, 6, 2),
        (0, 5, 3, 4),
        (0, 2, 6, 3),
        (5, 6, 0, 0),
        (0, 3, 0, 4),
        (3, 4, 0, 0),
        (0, 6, 3, 5),
    ],
}


def scale_semitones(mode, degree):
    """Semitones above the tonic of a scale degree of ``mode`` (any integer degree).

    >>> scale_semitones("major", 9)      # the third, an octave up
    16
    """
    return MODE_STEPS[mode][degree % 7] + 12 * (degree // 7)


def chord_tones(degree, mode, seventh):
    """Chord tones of a scale degree as semitones above the tonic, root first (ascending).

    Triads, or seventh chords with ``seventh``; the dominant (degree 4) of the minor mode is
    taken from harmonic minor (raised third).

    >>> chord_tones(4, "minor", False)
    [7, 11, 14]
    """
    tones = [scale_semitones(mode, degree + k) for k in (0, 2, 4, 6)[: 4 if seventh else 3]]
    if mode == "minor" and degree == 4:  # harmonic minor dominant
        tones[1] += 1
    return tones


def voicing(tones, tonic, center, count):
    """``count`` chord tones (ascending MIDI pitches) stacked from just below ``center``.

    Each tone of ``tones`` (semitones above ``tonic``, a pitch class 0-11) is placed in the
    octave from ``center - 7`` upwards; more tones than the chord has repeat it octaves up.

    >>> voicing([0, 4, 7], 0, 64, 4)
    [60, 64, 67, 72]
    """
    low = center - 7
    pitches = sorted(low + ((tonic + t) - low) % 12 for t in tones)
    k = 0
    while len(pitches) < count:
        pitches.append(pitches[k] + 12)
        k += 1
    return pitches[:count]


def chord_degrees(mode, tones):
    """Scale degrees -7..14 of ``mode`` whose pitch class is one of ``tones`` (semitones).

    >>> chord_degrees("major", [0, 4, 7])[:4]
    [-7, -5, -3, 0]
    """
    pcs = {t % 12 for t in tones}
    scale = MODE_STEPS[mode]
    return [d for d in range(-7, 15) if scale[d % 7] % 12 in pcs]
