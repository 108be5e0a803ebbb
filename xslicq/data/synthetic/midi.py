"""One stem of a synthetic song as a standard MIDI file (type 0, :data:`TPB` ticks a beat)."""

from __future__ import annotations

import mido
import numpy as np

from .theory import TPB

# order of simultaneous events: set-up, note off, then note on
_SETUP, _NOTE_OFF, _NOTE_ON = 1, 2, 3


def stem_midi(song, stem):
    """A :class:`mido.MidiFile` of one stem of a composed song.

    The file starts with the tempo, the time signature and, per channel, the program, CC7
    volume, CC10 pan and CC91/CC93 (reverb and chorus sends) at 0; the notes follow, one
    voice per (channel, pitch): a note ends where the next one of the same pitch starts.
    Notes are cut at ``song.end_tick``, where the track ends.

    Args:
        song: a :class:`~xslicq.data.synthetic.song.Song` after ``compose()``.
        stem: one of ``SOURCES``.
    """
    events = [
        (0, 0, mido.MetaMessage("set_tempo", tempo=song.tempo)),
        (0, 0, mido.MetaMessage("time_signature", numerator=song.beats, denominator=4)),
    ]
    events += _setup_events(song, stem)
    events += _note_events(song.notes[stem], song.end_tick)
    events.sort(key=lambda e: (e[0], e[1], str(e[2])))
    mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, song.end_tick - now)))
    return mid


def _channels(song, stem):
    """``(channel, program, pan)`` of every MIDI channel the stem plays on."""
    pan = song.mixer[stem]["pan"]
    if stem == "drums":
        return [(9, song.drum_kit, pan)]
    if stem == "bass":
        return [(0, song.bass_program, pan)]
    if stem == "vocals":
        return [(0, song.voice_program, pan)]
    return [(o["channel"], o["program"], p) for o, p in zip(song.others, song.other_pans)]


def _setup_events(song, stem):
    """``(tick, order, message)`` program and controller set-up at tick 0."""
    volume = song.mixer[stem]["volume"]
    events = []
    for ch, program, pan in _channels(song, stem):
        events += [
            (0, _SETUP, mido.Message("program_change", channel=ch, program=program)),
            (0, _SETUP, _control(ch, 7, volume)),
            (0, _SETUP, _control(ch, 10, pan)),
            (0, _SETUP, _control(ch, 91, 0)),
            (0, _SETUP, _control(ch, 93, 0)),
        ]
    return events


def _control(channel, control, value):
    return mido.Message("control_change", channel=channel, control=control, value=value)


def _note_events(notes, end_tick):
    """``(tick, order, message)`` note on/off pairs of ``notes`` (tuples ``(start_tick,
    end_tick, channel, pitch, velocity)``), one voice per (channel, pitch), cut at
    ``end_tick``."""
    by_key = {}
    for n in notes:
        by_key.setdefault((n[2], n[3]), []).append(n)
    events = []
    for (ch, pitch), group in sorted(by_key.items()):
        group.sort()
        for k, (start, end, _, _, vel) in enumerate(group):
            if k + 1 < len(group):
                end = min(end, group[k + 1][0])
            end = min(end, end_tick)
            if start >= end_tick or end <= start:
                continue
            events.append(
                (
                    start,
                    _NOTE_ON,
                    mido.Message(
                        "note_on", channel=ch, note=int(pitch), velocity=int(np.clip(vel, 1, 127))
                    ),
                )
            )
            events.append(
                (end, _NOTE_OFF, mido.Message("note_off", channel=ch, note=int(pitch), velocity=0))
            )
    return events
