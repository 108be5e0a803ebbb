"""One procedural song: its header (style, tempo, key), form, harmony, instruments, mixer
settings and the notes of each of the four stems.

The song draws everything from one :class:`numpy.random.Generator` seeded by
``(seed, index)``, in a fixed order: the header first (so that :attr:`Song.name` is known
without composing), then, in :meth:`Song.compose`, the form, the section plans, the
instruments, the mixer, and the parts (vocals, drums, bass, other).
"""

from __future__ import annotations

import math

import mido
import numpy as np

from xslicq.data import SOURCES

from .accompaniment import other_notes
from .bass import bass_notes
from .drums import drum_notes
from .form import make_form, make_plans
from .mix import PEAK_LIMIT
from .patterns import (
    ARP_SHAPES,
    BASS_PROGRAMS,
    BLOCK_PATTERNS,
    FAMILIES,
    STAB_PATTERNS,
    STRUM_PATTERNS,
    STYLES,
    VOICE_PROGRAMS,
    pick,
)
from .theory import NOTE_NAMES, STEP, TPB, chord_tones
from .vocals import vocal_notes

PAN_SPREAD = {"vocals": 8, "drums": 10, "bass": 6, "other": 40}  # CC10 around the centre 64


class Song:
    """The composition of one track.

    Args:
        seed: the data set's seed (a non-negative integer).
        index: the track's number in the data set.
        seconds: duration of the track; notes are written up to a quarter second past it.

    After :meth:`compose`, ``notes[stem]`` (``stem`` one of ``SOURCES``) lists the notes of a
    stem as tuples ``(start_tick, end_tick, channel, pitch, velocity)``.
    """

    def __init__(self, seed, index, seconds):
        self.rng = rng = np.random.default_rng([int(seed), int(index), 0x5EC])
        # header: drawn first, so that the name is known without composing the song
        self.style = pick(rng, sorted(STYLES))
        st = STYLES[self.style]
        self.bpm = int(rng.integers(st["bpm"][0], st["bpm"][1] + 1))
        self.mode = "minor" if rng.random() < 0.5 else "major"
        self.tonic = int(rng.integers(12))
        self.beats = st["beats"]
        self.swing = st["swing"]
        self.index = index
        self.seconds = float(seconds)
        self.name = (
            f"synth_{index:03d}_{NOTE_NAMES[self.tonic]}_{self.mode}_{self.style}_{self.bpm}bpm"
        )
        # time grid
        self.tempo = mido.bpm2tempo(self.bpm)
        self.sec_per_tick = 60.0 / self.bpm / TPB
        self.bar_ticks = self.beats * TPB
        self.steps = self.beats * 4  # sixteenths per bar
        # render a little past the end; notes after it are dropped
        self.end_tick = int(math.ceil((self.seconds + 0.25) / self.sec_per_tick))
        self.total_bars = int(math.ceil(self.end_tick / self.bar_ticks))
        self.notes = None

    def compose(self):
        """Draw the form, harmony, instruments, mixer and the notes of every stem.

        Returns:
            self, with ``form``, ``plans``, ``chords``, the programs, ``mixer``,
            ``other_pans``, ``gains_db``, ``target_peak`` and ``notes`` set.
        """
        rng = self.rng
        self.form = make_form(rng, self.total_bars)
        seventh = self.style in ("funk", "shuffle", "ballad") or rng.random() < 0.25
        self.plans = make_plans(rng, self.style, self.mode, self.beats, seventh)
        self._lay_chords()
        self._choose_instruments()
        self._choose_mix()
        self.notes = {
            "vocals": vocal_notes(self),
            "drums": drum_notes(self),
            "bass": bass_notes(self),
            "other": other_notes(self),
        }
        return self

    def _lay_chords(self):
        """Chord segments ``(start_tick, end_tick, tones)`` covering the song."""
        self.chords = []
        for sec in self.form:
            plan = self.plans[sec["name"]]
            seg = self.bar_ticks // plan["per_bar"]
            for k in range(sec["bars"] * plan["per_bar"]):
                # 2 chords per bar: progression spans 2 bars; 1 per bar: 4 bars
                degree = plan["prog"][k % len(plan["prog"])]
                start = sec["start"] * self.bar_ticks + k * seg
                tones = chord_tones(degree, self.mode, plan["seventh"])
                self.chords.append((start, start + seg, tones))
        self._chord_starts = np.array([c[0] for c in self.chords])

    def _choose_instruments(self):
        """GM drum kit, bass and voice programs, and the one to three ``others``."""
        rng, st = self.rng, STYLES[self.style]
        self.drum_kit = int(pick(rng, st["kits"]))
        self.bass_program = int(pick(rng, BASS_PROGRAMS))
        self.voice_program = int(pick(rng, VOICE_PROGRAMS))
        families = _choose_families(rng, st["families"])
        self.others = [_other_instrument(rng, k, fam) for k, fam in enumerate(families)]

    def _choose_mix(self):
        """CC7 volume and CC10 pan per stem and per other, stem gains and the target peak."""
        rng = self.rng
        self.mixer = {
            s: dict(
                volume=int(rng.integers(90, 121)),
                pan=int(np.clip(64 + rng.integers(-PAN_SPREAD[s], PAN_SPREAD[s] + 1), 0, 127)),
            )
            for s in SOURCES
        }
        self.other_pans = [int(np.clip(64 + rng.integers(-45, 46), 0, 127)) for _ in self.others]
        self.gains_db = {
            "vocals": float(rng.uniform(0.0, 3.0)),
            "drums": float(rng.uniform(-2.0, 1.0)),
            "bass": float(rng.uniform(-4.0, 0.0)),
            "other": float(rng.uniform(-5.0, -1.0)),
        }
        # margin for float32 rounding
        self.target_peak = float(rng.uniform(0.6, PEAK_LIMIT - 0.01))

    def chord_at(self, tick):
        """Chord tones (semitones above the tonic) sounding at ``tick``."""
        k = int(np.searchsorted(self._chord_starts, tick, side="right")) - 1
        return self.chords[max(0, min(k, len(self.chords) - 1))][2]

    def tick(self, bar, step):
        """Tick of a sixteenth step of a bar, with swing on off-beat eighths."""
        tick = bar * self.bar_ticks + step * STEP
        if self.swing and step % 4 == 2:
            tick += int(self.swing * TPB / 6)
        return tick

    def jitter(self, spread=6):
        """A random integer in ``[-spread, spread]`` (humanised timing or velocity)."""
        return int(self.rng.integers(-spread, spread + 1))

    def info(self):
        """Description of the song for the manifest (JSON-compatible)."""
        return dict(
            bpm=self.bpm,
            key=NOTE_NAMES[self.tonic],
            mode=self.mode,
            style=self.style,
            meter=f"{self.beats}/4",
            form=[[s["name"], s["bars"]] for s in self.form],
            programs={
                "vocals": [self.voice_program],
                "drums": [self.drum_kit],
                "bass": [self.bass_program],
                "other": [o["program"] for o in self.others],
            },
            other_families=[o["family"] for o in self.others],
            other_roles=[o["role"] for o in self.others],
        )


def _choose_families(rng, preferred):
    """One to three distinct instrument families, most from the style's ``preferred``."""
    n_other = int(rng.integers(1, 4))
    pref = list(preferred)
    rest = [f for f in FAMILIES if f not in pref]
    families = []
    while len(families) < n_other:
        pool = pref if (pref and rng.random() < 0.8) else (rest or pref)
        families.append(pool.pop(int(rng.integers(len(pool)))))
    return families


def _other_instrument(rng, channel, family):
    """An accompanying instrument of ``family`` on MIDI ``channel``: program, role, register
    (``center``, a MIDI pitch) and the patterns it plays."""
    return dict(
        family=family,
        program=int(pick(rng, FAMILIES[family]["programs"])),
        role=pick(rng, FAMILIES[family]["roles"]),
        channel=channel,
        center=int(64 + (channel % 2) * 5 - (channel // 2) * 7 + rng.integers(-3, 4)),
        block=pick(rng, BLOCK_PATTERNS),
        strum=pick(rng, STRUM_PATTERNS),
        stab=pick(rng, STAB_PATTERNS),
        arp=pick(rng, ARP_SHAPES),
        arp_rate=int(pick(rng, (2, 2, 1))),
    )
