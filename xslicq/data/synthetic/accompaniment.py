"""The ``other`` part of a synthetic song: one to three accompanying instruments, each in
its own MIDI channel, playing the chords in its role.

Roles: ``pad`` (held chords), ``block`` (chords to a rhythm; a piano adds a left-hand root),
``strum`` (guitar-like down and up strums), ``stab`` (short brass hits) and ``arp``
(arpeggios). The first instrument plays everywhere, the second from verse energy on, the
others only in choruses; quiet sections turn strums and stabs into pads.
"""

from __future__ import annotations

from .patterns import fit_pattern
from .theory import STEP, voicing

BASE_VELOCITY = {0: 62, 1: 76, 2: 90}  # by section energy


def other_notes(song):
    """Notes of the ``other`` stem of a :class:`~xslicq.data.synthetic.song.Song`.

    Returns:
        list of ``(start_tick, end_tick, channel, pitch, velocity)``.
    """
    notes = []
    for inst in song.others:
        for sec in song.form:
            if _plays(inst, sec["energy"]):
                _section(song, inst, sec, notes)
    return notes


def _plays(inst, energy):
    """Whether instrument ``inst`` plays in a section of ``energy``."""
    return inst["channel"] == 0 or energy == 2 or (energy == 1 and inst["channel"] == 1)


def _section(song, inst, sec, notes):
    """Append what ``inst`` plays in section ``sec`` to ``notes``."""
    role, energy = inst["role"], sec["energy"]
    if role == "pad" or (energy == 0 and role in ("stab", "strum")):
        _pad(song, inst, sec, notes)
        return
    for b in range(sec["bars"]):
        bar = sec["start"] + b
        if role == "arp":
            _arpeggio(song, inst, bar, energy, notes)
        else:
            _rhythm(song, inst, bar, energy, notes)


def _pad(song, inst, sec, notes):
    """Four-note chords held over every chord segment of section ``sec``."""
    sec_start = sec["start"] * song.bar_ticks
    sec_end = (sec["start"] + sec["bars"]) * song.bar_ticks
    vel = BASE_VELOCITY[sec["energy"]] - 8
    for start, end, tones in song.chords:
        if sec_start <= start < sec_end:
            for p in voicing(tones, song.tonic, inst["center"], 4):
                notes.append((start, end, inst["channel"], p, vel + song.jitter(4)))


def _arpeggio(song, inst, bar, energy, notes):
    """Arpeggio over two octaves of the chord, ``arp_rate`` sixteenths a note (eighths in
    quiet sections), going up, up and down, or broken."""
    rate = inst["arp_rate"] if energy > 0 else 2  # in sixteenths
    base_vel = BASE_VELOCITY[energy]
    for s in range(0, song.steps, rate):
        start = song.tick(bar, s)
        tones = song.chord_at(start)
        ladder = voicing(tones, song.tonic, inst["center"] - 5, 2 * len(tones))
        if inst["arp"] == "updown":
            ladder = ladder + ladder[-2:0:-1]
        elif inst["arp"] == "broken":
            ladder = [ladder[i] for i in (0, 2, 1, 3) if i < len(ladder)]
        p = ladder[(s // rate) % len(ladder)]
        end = start + int(rate * STEP * 0.9)
        vel = base_vel - 6 + (8 if s % 4 == 0 else 0) + song.jitter(6)
        notes.append((start, end, inst["channel"], p, vel))


def _rhythm(song, inst, bar, energy, notes):
    """Chords of one bar to the instrument's block, strum or stab pattern."""
    role, ch, base_vel = inst["role"], inst["channel"], BASE_VELOCITY[energy]
    pat = fit_pattern(inst[role], song.steps)
    onsets = [s for s, c in enumerate(pat) if c != "."]
    for k, s in enumerate(onsets):
        nxt = onsets[k + 1] if k + 1 < len(onsets) else song.steps
        start = song.tick(bar, s)
        end = song.tick(bar, nxt) if nxt < song.steps else (bar + 1) * song.bar_ticks
        tones = song.chord_at(start)
        if role == "stab":
            end = start + min(end - start, 2 * STEP)
            count = 4
        else:
            end = start + int((end - start) * 0.92)
            count = 3 if role == "block" else 5
        chord = voicing(tones, song.tonic, inst["center"] - (7 if role == "strum" else 0), count)
        if role == "strum" and pat[s] == "u":
            chord = chord[::-1][:3]
        for j, p in enumerate(chord):
            offset = j * 12 if role == "strum" else 0  # strummed: 12 ticks a string
            vel = base_vel + (8 if s % 4 == 0 else 0) + song.jitter(6)
            notes.append((start + offset, end, ch, p, vel))
        # piano left hand on the first hit of the bar
        if role == "block" and inst["family"] == "piano" and k == 0 and energy > 0:
            root = 40 + (song.tonic + tones[0] - 40) % 12
            notes.append((start, (bar + 1) * song.bar_ticks - STEP, ch, root, base_vel))
