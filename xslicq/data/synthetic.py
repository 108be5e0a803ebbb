"""An offline, procedural MUSDB18-HQ-like data set.

Every track is a short song composed from a seeded random generator: a tempo (80-150 bpm),
a key (major or minor), a style (rock, pop, funk, ballad, disco, half-time, shuffle, waltz),
chord progressions and a form of sections (intro, verse, chorus, bridge, outro) whose
density differs. Four parts are written, one per MUSDB18 source:

* ``drums``: the General MIDI percussion channel (channel index 9, a random drum kit), kick,
  snare, hi-hats, ride, toms and crashes with patterns that change per section and fills at
  the ends of sections;
* ``bass``: a GM bass (programs 32-39) following the chord roots with style-dependent
  rhythms, fifths, octaves and approach notes;
* ``other``: one to three instruments whose families vary per track (piano, guitar, strings,
  pads, organ, brass) playing block chords, arpeggios, strums, stabs or pads;
* ``vocals``: a lead melody on a GM voice (52 Choir Aahs, 53 Voice Oohs, 54 Synth Voice,
  85 Lead 6 voice) sung in phrases separated by rests, silent in the intro and outro.

Each part is written as its own MIDI file with :mod:`mido` (tempo, program change, CC7
volume, CC10 pan) and rendered by the ``fluidsynth`` command line with a General MIDI
SoundFont (``FluidR3_GM.sf2`` of the Debian package ``fluid-soundfont-gm`` by default),
reverb and chorus off. The renders are read back, cut or padded to exactly
``round(seconds * sample_rate)`` frames, balanced with a random gain per stem, then all stems
of a track are scaled by one common factor so that every stem and the mixture peak at most
0.95 (never clipped). The mixture is the sum of the four stems.

The layout is the one of MUSDB18-HQ::

    OUT/xslicq_synthetic.json                      the manifest (see generate_dataset)
    OUT/train/<track>/{mixture,vocals,drums,bass,other}.wav
    OUT/test/<track>/{mixture,vocals,drums,bass,other}.wav

All WAV files are stereo IEEE float32 (soundfile subtype ``"FLOAT"``), so that the mixture
equals the sum of the stems to float32 rounding. As in MUSDB18-HQ the validation tracks live
in ``train/``; the manifest lists them under ``split["valid"]`` and the remaining tracks of
``train/`` under ``split["train"]``. A seed gives byte-identical files on every run.

Command line::

    python -m xslicq.data.synthetic --out DIR --tracks 8 --seconds 20 --seed 0 \\
        [--test-tracks 2] [--valid-tracks 1] [--soundfont PATH] [--workers 2] [--force]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from tqdm import tqdm

from xslicq.data import SOURCES

__all__ = ["MANIFEST_NAME", "DEFAULT_SOUNDFONTS", "generate_dataset", "find_soundfont", "main"]

MANIFEST_NAME = "xslicq_synthetic.json"
VERSION = 1
SAMPLE_RATE = 44100
PEAK_LIMIT = 0.95
DEFAULT_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
# manifest keys that must agree for an existing folder to be reused as is
_PARAM_KEYS = ("version", "seed", "seconds", "sample_rate", "tracks", "test_tracks",
               "valid_tracks", "soundfont")
_TRACK_DIR = re.compile(r"^synth_\d+_[a-z0-9_]+$")

TPB = 480                      # MIDI ticks per beat
STEP = TPB // 4                # one sixteenth note
FLUID_GAIN = 0.5               # fluidsynth master gain (float output: nothing clips)

# ----------------------------------------------------------------------------- music theory
NOTE_NAMES = ("c", "cs", "d", "eb", "e", "f", "fs", "g", "ab", "a", "bb", "b")
MODE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# chord progressions as 0-based scale degrees
PROGRESSIONS = {
    "major": [(0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 0),
              (0, 2, 3, 4), (3, 0, 4, 5), (0, 3, 5, 4), (3, 4, 2, 5), (0, 0, 3, 4)],
    "minor": [(0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4),
              (0, 2, 6, 3), (5, 6, 0, 0), (0, 3, 0, 4), (3, 4, 0, 0), (0, 6, 3, 5)],
}

STYLES = {
    # tempo range, beats per bar, swing, drum kits, family preferences of "other"
    "rock": dict(bpm=(100, 150), beats=4, swing=0.0, kits=(0, 8, 16),
                 families=("guitar", "organ", "piano", "strings")),
    "pop": dict(bpm=(90, 130), beats=4, swing=0.0, kits=(0, 8, 24),
                families=("piano", "pads", "guitar", "strings", "brass")),
    "funk": dict(bpm=(90, 120), beats=4, swing=0.0, kits=(0, 8, 32),
                 families=("guitar", "organ", "brass", "piano")),
    "ballad": dict(bpm=(80, 100), beats=4, swing=0.0, kits=(0, 32, 40),
                   families=("piano", "strings", "pads", "guitar")),
    "disco": dict(bpm=(110, 130), beats=4, swing=0.0, kits=(0, 24, 25),
                  families=("strings", "brass", "guitar", "piano", "pads")),
    "halftime": dict(bpm=(120, 150), beats=4, swing=0.0, kits=(16, 24, 25),
                     families=("pads", "guitar", "piano", "organ")),
    "shuffle": dict(bpm=(80, 130), beats=4, swing=0.65, kits=(0, 32, 40),
                    families=("piano", "organ", "brass", "guitar")),
    "waltz": dict(bpm=(80, 150), beats=3, swing=0.0, kits=(0, 32, 40),
                  families=("piano", "strings", "guitar", "pads")),
}

FAMILIES = {
    # GM programs and the roles an instrument of the family may play
    "piano": dict(programs=(0, 1, 2, 4, 5), roles=("block", "arp")),
    "guitar": dict(programs=(24, 25, 26, 27, 29, 30), roles=("strum", "arp")),
    "strings": dict(programs=(48, 49, 50, 44), roles=("pad", "block")),
    "pads": dict(programs=(88, 89, 90, 91, 92, 94, 95), roles=("pad",)),
    "organ": dict(programs=(16, 17, 18, 19), roles=("pad", "block")),
    "brass": dict(programs=(61, 62, 63, 60), roles=("stab", "pad")),
}
VOICE_PROGRAMS = (52, 53, 54, 85)
BASS_PROGRAMS = tuple(range(32, 40))

# GM percussion keys
KICK, SIDESTICK, SNARE, CLAP, CLOSED_HH, PEDAL_HH, OPEN_HH = 36, 37, 38, 39, 42, 44, 46
CRASH, CRASH2, RIDE, RIDE_BELL, TAMBOURINE = 49, 57, 51, 53, 54
TOMS = (50, 48, 47, 45, 43, 41)          # high to low

# drum patterns, one character per sixteenth note ("." rest); 12 steps for 3/4
KICK_PATTERNS = {
    "rock": ["x.......x.......", "x.......x.x.....", "x..x....x.x.....", "x.....x.x.......",
             "x.......x......x"],
    "pop": ["x.....x.x.......", "x..x..x...x.....", "x.......x..x....", "x...x...x...x..."],
    "funk": ["x..x..x...x..x..", "x.x...x..x......", "x......x.x..x...", "x..x.....xx....."],
    "ballad": ["x.......x.......", "x.........x.....", "x......x........"],
    "disco": ["x...x...x...x..."],
    "halftime": ["x.........x.....", "x..x......x.....", "x.....x...x..x.."],
    "shuffle": ["x.......x.x.....", "x.....x.x.......", "x...x...x...x..."],
    "waltz": ["x...........", "x.......x...", "x.........x."],
}
# "x" backbeat, "g" ghost note
SNARE_PATTERNS = {
    "funk": ["....x..g.g..x..g", "....x.g.....x.g.", "....x..g..g.x..."],
    "halftime": ["........x.......", "........x.....g."],
    "waltz": ["....x...x...", "....x......."],
    "default": ["....x.......x...", "....x.......x..x", "....x.......x.g."],
}
# c closed hat, o open hat, p pedal hat, r ride, b ride bell, t tambourine
HAT_PATTERNS = {
    0: ["c...c...c...c...", "p...p...p...p...", "r...r...r...r..."],
    1: ["c.c.c.c.c.c.c.c.", "c.c.c.c.c.c.c.o.", "cccccccccccccccc"],
    2: ["o.o.o.o.o.o.o.o.", "r.r.r.r.r.r.r.r.", "c.o.c.o.c.o.c.o.", "r.b.r.b.r.b.r.b."],
}
# bass rhythms: r root, 5 fifth, o octave, 3 third, a approach to the next chord
BASS_PATTERNS = {
    "rock": ["r.r.r.r.r.r.r.r.", "r...r...r.r.r...", "r.......r...5...", "r.r.r.r.o.o.5.5."],
    "pop": ["r.....r.r...5...", "r..r..r...r...a.", "r...5...o...5...", "r.....r.....r.a."],
    "funk": ["r..r..o.r.5..r.a", "r.o..r..r..5.r..", "r...r.or..5.r...", "ro..r.5.r..o.5.a"],
    "ballad": ["r.......5.......", "r.........r...a.", "r...........5..."],
    "disco": ["r.o.r.o.r.o.r.o.", "r.o.r.o.5.o.r.a."],
    "halftime": ["r.........r.....", "r..r......r..5..", "r.......r.r...a."],
    "shuffle": ["r...3...5...o...", "r.r.5...r.r.5.a.", "r...5...o...5..."],
    "waltz": ["r...5...5...", "r.......5...", "r...3...5..."],
}
# "other" rhythms
BLOCK_PATTERNS = ["x.......x.......", "x...x...x...x...", "x..x..x...x..x..", "..x...x...x...x.",
                  "x.....x.....x...", "x.x...x.x...x..."]
STRUM_PATTERNS = ["d.......d...d.u.", "d...d.u...u.d.u.", "d.d.d.d.d.d.d.d.", "d.....d...d.u..."]
STAB_PATTERNS = ["x.....x...x.....", "x..x......x..x..", "......x.......x.", "x.......x..x...."]

SECTION_ENERGY = {"intro": 0, "verse": 1, "chorus": 2, "bridge": 1, "outro": 0}


# ----------------------------------------------------------------------------- helpers
def _chord(degree, mode, seventh):
    """Chord tones of a scale degree as semitones above the tonic, root first (ascending)."""
    scale = MODE_STEPS[mode]
    tones = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4, 6)[:4 if seventh else 3]]
    if mode == "minor" and degree == 4:          # harmonic minor dominant
        tones[1] += 1
    return tones


def _fit_pattern(pattern, steps):
    """Cut or repeat a pattern string to ``steps`` characters."""
    return (pattern * (steps // len(pattern) + 1))[:steps]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


class _Song:
    """The composition of one track: its header, form, harmony and the notes of each stem.

    Notes are tuples ``(start_tick, end_tick, channel, pitch, velocity)``.
    """

    def __init__(self, seed, index, seconds):
        self.rng = rng = np.random.default_rng([int(seed), int(index), 0x5EC])
        # header: drawn first, so that the name is known without composing the song
        self.style = _pick(rng, sorted(STYLES))
        st = STYLES[self.style]
        self.bpm = int(rng.integers(st["bpm"][0], st["bpm"][1] + 1))
        self.mode = "minor" if rng.random() < 0.5 else "major"
        self.tonic = int(rng.integers(12))
        self.beats = st["beats"]
        self.swing = st["swing"]
        self.index = index
        self.seconds = float(seconds)
        self.name = f"synth_{index:03d}_{NOTE_NAMES[self.tonic]}_{self.mode}_{self.style}_{self.bpm}bpm"

    # ---------------------------------------------------------------- structure
    def compose(self):
        rng = self.rng
        st = STYLES[self.style]
        self.tempo = mido.bpm2tempo(self.bpm)
        self.sec_per_tick = 60.0 / self.bpm / TPB
        self.bar_ticks = self.beats * TPB
        self.steps = self.beats * 4
        # render a little past the end; notes after it are dropped
        self.end_tick = int(math.ceil((self.seconds + 0.25) / self.sec_per_tick))
        total_bars = int(math.ceil(self.end_tick / self.bar_ticks))
        self._make_form(total_bars)
        seventh = self.style in ("funk", "shuffle", "ballad") or rng.random() < 0.25
        # per section type: progression, harmonic rhythm and the choices of each part
        self.types = {}
        progs = list(PROGRESSIONS[self.mode])
        for name in ("intro", "verse", "chorus", "bridge", "outro"):
            prog = progs.pop(int(rng.integers(len(progs))))
            per_bar = 1 if self.beats == 3 else int(_pick(rng, (1, 1, 2)))
            self.types[name] = dict(
                prog=prog, per_bar=per_bar,
                seventh=seventh and rng.random() < 0.7,
                kick=_pick(rng, KICK_PATTERNS[self.style]),
                snare=_pick(rng, SNARE_PATTERNS.get(self.style, SNARE_PATTERNS["default"])),
                hats=_pick(rng, HAT_PATTERNS[SECTION_ENERGY[name]]),
                bass=_pick(rng, BASS_PATTERNS[self.style]),
                sung=name in ("verse", "chorus") or (name == "bridge" and rng.random() < 0.6),
            )
        # intro re-uses the verse progression (common in songs)
        self.types["intro"]["prog"] = self.types["verse"]["prog"]
        self.types["outro"]["prog"] = self.types["chorus"]["prog"]
        self._make_chords()
        # instruments
        self.drum_kit = int(_pick(rng, st["kits"]))
        self.bass_program = int(_pick(rng, BASS_PROGRAMS))
        self.voice_program = int(_pick(rng, VOICE_PROGRAMS))
        n_other = int(rng.integers(1, 4))
        pref = list(st["families"])
        rest = [f for f in FAMILIES if f not in pref]
        families = []
        while len(families) < n_other:
            pool = pref if (pref and rng.random() < 0.8) else (rest or pref)
            fam = pool.pop(int(rng.integers(len(pool))))
            families.append(fam)
        self.others = []
        for k, fam in enumerate(families):
            self.others.append(dict(
                family=fam, program=int(_pick(rng, FAMILIES[fam]["programs"])),
                role=_pick(rng, FAMILIES[fam]["roles"]), channel=k,
                center=int(64 + (k % 2) * 5 - (k // 2) * 7 + rng.integers(-3, 4)),
                block=_pick(rng, BLOCK_PATTERNS), strum=_pick(rng, STRUM_PATTERNS),
                stab=_pick(rng, STAB_PATTERNS), arp=_pick(rng, ("up", "updown", "broken")),
                arp_rate=int(_pick(rng, (2, 2, 1))),
            ))
        # mixer settings per stem: CC7 volume and CC10 pan
        pan_spread = {"vocals": 8, "drums": 10, "bass": 6, "other": 40}
        self.mixer = {s: dict(volume=int(rng.integers(90, 121)),
                              pan=int(np.clip(64 + rng.integers(-pan_spread[s], pan_spread[s] + 1), 0, 127)))
                      for s in SOURCES}
        self.other_pans = [int(np.clip(64 + rng.integers(-45, 46), 0, 127)) for _ in self.others]
        self.gains_db = {"vocals": float(rng.uniform(0.0, 3.0)), "drums": float(rng.uniform(-2.0, 1.0)),
                         "bass": float(rng.uniform(-4.0, 0.0)), "other": float(rng.uniform(-5.0, -1.0))}
        self.target_peak = float(rng.uniform(0.6, PEAK_LIMIT - 0.01))   # margin for float32 rounding
        self.notes = {"vocals": self._vocals(), "drums": self._drums(),
                      "bass": self._bass(), "other": self._other()}
        return self

    def _make_form(self, total_bars):
        rng = self.rng
        unit = 4 if total_bars >= 24 else 2
        intro = 0 if total_bars < 8 else unit * int(_pick(rng, (1, 1, 2) if unit == 2 else (1, 1)))
        outro = unit if total_bars >= 20 else 0
        template = _pick(rng, (
            ["verse", "chorus", "verse", "chorus", "bridge", "chorus"],
            ["verse", "verse", "chorus", "verse", "chorus", "bridge", "chorus"],
            ["chorus", "verse", "chorus", "verse", "chorus", "bridge", "chorus"],
            ["verse", "chorus", "bridge", "verse", "chorus", "chorus"],
        ))
        sizes = {"verse": 2 * unit, "chorus": 2 * unit, "bridge": unit * int(_pick(rng, (1, 2)))}
        form = [("intro", intro)] if intro else []
        i = 0
        while sum(b for _, b in form) < total_bars - outro:
            name = template[i] if i < len(template) else ("verse", "chorus")[(i - len(template)) % 2]
            form.append((name, sizes[name]))
            i += 1
        if outro:
            form.append(("outro", outro))
        # cut to the length of the track
        self.form, start = [], 0
        for name, bars in form:
            if start >= total_bars:
                break
            bars = min(bars, total_bars - start)
            self.form.append(dict(name=name, start=start, bars=bars,
                                  energy=SECTION_ENERGY[name]))
            start += bars
        self.total_bars = total_bars

    def _make_chords(self):
        """Chord segments ``(start_tick, end_tick, tones)`` covering the song."""
        self.chords = []
        for sec in self.form:
            t = self.types[sec["name"]]
            seg = self.bar_ticks // t["per_bar"]
            n = sec["bars"] * t["per_bar"]
            for k in range(n):
                # 2 chords per bar: progression spans 2 bars; 1 per bar: 4 bars
                degree = t["prog"][k % len(t["prog"])]
                start = sec["start"] * self.bar_ticks + k * seg
                self.chords.append((start, start + seg, _chord(degree, self.mode, t["seventh"])))
        self._chord_starts = np.array([c[0] for c in self.chords])

    def chord_at(self, tick):
        k = int(np.searchsorted(self._chord_starts, tick, side="right")) - 1
        return self.chords[max(0, min(k, len(self.chords) - 1))][2]

    def _tick(self, bar, step):
        """Tick of a sixteenth step of a bar, with swing on off-beat eighths."""
        tick = bar * self.bar_ticks + step * STEP
        if self.swing and step % 4 == 2:
            tick += int(self.swing * TPB / 6)
        return tick

    def _jitter(self, spread=6):
        return int(self.rng.integers(-spread, spread + 1))

    # ---------------------------------------------------------------- drums
    def _drums(self):
        rng, ch, notes = self.rng, 9, []

        def hit(tick, key, vel):
            tick = max(0, tick)
            notes.append((tick, tick + STEP, ch, key, int(np.clip(vel, 1, 127))))

        for si, sec in enumerate(self.form):
            t = self.types[sec["name"]]
            energy = sec["energy"]
            kick = _fit_pattern(t["kick"], self.steps)
            snare = _fit_pattern(t["snare"], self.steps)
            hats = _fit_pattern(t["hats"], self.steps)
            half_time = sec["name"] == "bridge" and rng.random() < 0.5
            last_section = si == len(self.form) - 1
            for b in range(sec["bars"]):
                bar = sec["start"] + b
                fill_from = self.steps
                if b == sec["bars"] - 1 and not last_section:
                    fill_from = self.steps - 4 * int(_pick(rng, (1, 2, 2) if sec["bars"] >= 4 else (1, 1, 2)))
                for s in range(self.steps):
                    tick = self._tick(bar, s) + (self._jitter(3) if s % 4 else 0)
                    accent = 12 if s % 4 == 0 else 0
                    if s >= fill_from:
                        continue
                    if energy == 0 and sec["name"] == "intro":
                        # sparse: kick on the first beat and time keeping only
                        if s == 0:
                            hit(tick, KICK, 90 + self._jitter())
                    elif kick[s] == "x" and not (half_time and s % 8 == 4):
                        hit(tick, KICK, 95 + accent + self._jitter())
                    if energy > 0 or sec["name"] == "outro":
                        c = snare[s]
                        if half_time:
                            c = "x" if s == (self.steps // 2 if self.beats == 4 else 4) else "."
                        if c == "x":
                            key = SIDESTICK if (self.style == "ballad" and energy < 2) else SNARE
                            hit(tick, key, 100 + self._jitter(8))
                            if energy == 2 and self.style in ("disco", "pop", "halftime"):
                                hit(tick, CLAP, 85 + self._jitter())
                        elif c == "g":
                            hit(tick, SNARE, 38 + self._jitter(8))
                    h = hats[s]
                    if h != ".":
                        key = {"c": CLOSED_HH, "o": OPEN_HH, "p": PEDAL_HH, "r": RIDE,
                               "b": RIDE_BELL, "t": TAMBOURINE}[h]
                        if half_time and h in "co":
                            key = RIDE
                        hit(tick, key, 70 + accent + self._jitter(10))
                # pick-up variation every fourth bar
                if b % 4 == 3 and fill_from == self.steps and energy > 0 and rng.random() < 0.5:
                    hit(self._tick(bar, self.steps - 1), SNARE, 70 + self._jitter())
                    hit(self._tick(bar, self.steps - 2), KICK, 85 + self._jitter())
                # crash on section starts and every 4 bars in a chorus
                if (b == 0 and (energy > 0 or si > 0)) or (energy == 2 and b % 4 == 0 and rng.random() < 0.6):
                    hit(self._tick(bar, 0), _pick(rng, (CRASH, CRASH2)), 105 + self._jitter())
                    if kick[0] != "x" or sec["name"] == "intro":
                        hit(self._tick(bar, 0), KICK, 100)
                if fill_from < self.steps:
                    self._fill(hit, bar, fill_from)
        return notes

    def _fill(self, hit, bar, start):
        rng = self.rng
        n = self.steps - start
        kind = _pick(rng, ("toms", "snare", "mixed", "eighths"))
        toms = list(TOMS[int(rng.integers(0, 2)):])
        for k, s in enumerate(range(start, self.steps)):
            if kind == "eighths" and s % 2:
                continue
            vel = 70 + int(50 * (k + 1) / n) + self._jitter(5)
            if kind == "snare" or (kind == "mixed" and k < n // 2):
                key = SNARE
            else:
                key = toms[min(len(toms) - 1, k * len(toms) // n)]
            hit(self._tick(bar, s), key, vel)
        hit(self._tick(bar, start), KICK, 95)

    # ---------------------------------------------------------------- bass
    def _bass(self):
        rng, ch, notes = self.rng, 0, []
        base = 28                                  # E1: bass roots lie in 28..39
        for sec in self.form:
            t = self.types[sec["name"]]
            pattern = _fit_pattern(t["bass"], self.steps)
            if sec["energy"] == 0:
                pattern = _fit_pattern(_pick(rng, ("r" + "." * 15, "r.......r.......", "r.......5.......")),
                                       self.steps)
            staccato = float(rng.uniform(0.45, 0.95))
            for b in range(sec["bars"]):
                bar = sec["start"] + b
                pat = list(pattern)
                if rng.random() < 0.3:               # rhythmic variation
                    s = int(rng.integers(1, self.steps))
                    pat[s] = "." if pat[s] != "." else _pick(rng, ("r", "5", "o"))
                if b == sec["bars"] - 1 and sec["energy"] > 0:
                    pat[self.steps - 2] = "a"
                onsets = [s for s, c in enumerate(pat) if c != "."]
                for k, s in enumerate(onsets):
                    nxt = onsets[k + 1] if k + 1 < len(onsets) else self.steps
                    start = self._tick(bar, s)
                    end_full = self._tick(bar, nxt) if nxt < self.steps else (bar + 1) * self.bar_ticks
                    end = start + max(STEP // 2, int((end_full - start) * staccato))
                    tones = self.chord_at(start)
                    root = base + (self.tonic + tones[0] - base) % 12
                    c = pat[s]
                    if c == "r":
                        pitch = root
                    elif c == "5":
                        pitch = root + (tones[2] - tones[0])
                    elif c == "3":
                        pitch = root + (tones[1] - tones[0])
                    elif c == "o":
                        pitch = root + 12
                    else:                            # approach the next chord's root
                        nt = self.chord_at(end_full)
                        target = base + (self.tonic + nt[0] - base) % 12
                        pitch = target + int(_pick(rng, (-1, 1, -2, 2)))
                        if pitch == root:
                            pitch = root + 7
                    vel = 95 + (10 if s % 4 == 0 else 0) + self._jitter(8)
                    notes.append((start, end, ch, int(pitch), int(np.clip(vel, 1, 127))))
        return notes

    # ---------------------------------------------------------------- other
    def _voicing(self, tones, center, count):
        """``count`` chord tones (ascending MIDI pitches) stacked from just below ``center``."""
        low = center - 7
        pitches = sorted(low + ((self.tonic + t) - low) % 12 for t in tones)
        k = 0
        while len(pitches) < count:
            pitches.append(pitches[k] + 12)
            k += 1
        return pitches[:count]

    def _other(self):
        rng, notes = self.rng, []
        for inst in self.others:
            ch, role, center = inst["channel"], inst["role"], inst["center"]
            for sec in self.form:
                energy = sec["energy"]
                active = inst["channel"] == 0 or energy == 2 or (energy == 1 and inst["channel"] == 1)
                if not active:
                    continue
                base_vel = {0: 62, 1: 76, 2: 90}[energy]
                sec_start = sec["start"] * self.bar_ticks
                sec_end = (sec["start"] + sec["bars"]) * self.bar_ticks
                segs = [c for c in self.chords if sec_start <= c[0] < sec_end]
                if role == "pad" or (energy == 0 and role in ("stab", "strum")):
                    for start, end, tones in segs:
                        for p in self._voicing(tones, center, 4):
                            notes.append((start, end, ch, p, base_vel - 8 + self._jitter(4)))
                    continue
                for b in range(sec["bars"]):
                    bar = sec["start"] + b
                    if role == "arp":
                        rate = inst["arp_rate"] if energy > 0 else 2   # in sixteenths
                        seq = None
                        for s in range(0, self.steps, rate):
                            start = self._tick(bar, s)
                            tones = self.chord_at(start)
                            ladder = self._voicing(tones, center - 5, 2 * len(tones))
                            if inst["arp"] == "updown":
                                ladder = ladder + ladder[-2:0:-1]
                            elif inst["arp"] == "broken":
                                ladder = [ladder[i] for i in (0, 2, 1, 3) if i < len(ladder)]
                            seq = ladder
                            p = seq[(s // rate) % len(seq)]
                            end = start + int(rate * STEP * 0.9)
                            notes.append((start, end, ch, p, base_vel - 6 + (8 if s % 4 == 0 else 0)
                                          + self._jitter(6)))
                    else:
                        pat = {"block": inst["block"], "strum": inst["strum"], "stab": inst["stab"]}[role]
                        pat = _fit_pattern(pat, self.steps)
                        onsets = [s for s, c in enumerate(pat) if c != "."]
                        for k, s in enumerate(onsets):
                            nxt = onsets[k + 1] if k + 1 < len(onsets) else self.steps
                            start = self._tick(bar, s)
                            end = self._tick(bar, nxt) if nxt < self.steps else (bar + 1) * self.bar_ticks
                            tones = self.chord_at(start)
                            if role == "stab":
                                end = start + min(end - start, 2 * STEP)
                                count = 4
                            else:
                                end = start + int((end - start) * 0.92)
                                count = 3 if role == "block" else 5
                            voicing = self._voicing(tones, center - (7 if role == "strum" else 0), count)
                            if role == "strum" and pat[s] == "u":
                                voicing = voicing[::-1][:3]
                            for j, p in enumerate(voicing):
                                offset = j * 12 if role == "strum" else 0
                                vel = base_vel + (8 if s % 4 == 0 else 0) + self._jitter(6)
                                notes.append((start + offset, end, ch, p, vel))
                            # piano left hand on the first hit of the bar
                            if role == "block" and inst["family"] == "piano" and k == 0 and energy > 0:
                                root = 40 + (self.tonic + tones[0] - 40) % 12
                                notes.append((start, (bar + 1) * self.bar_ticks - STEP, ch, root, base_vel))
        return notes

    # ---------------------------------------------------------------- vocals
    def _vocals(self):
        rng, ch, notes = self.rng, 0, []
        scale = MODE_STEPS[self.mode]
        tonic_midi = 60 + self.tonic if self.tonic < 7 else 48 + self.tonic
        beat_sec = 60.0 / self.bpm
        min_rest = max(2, int(math.ceil(1.0 / beat_sec)))       # >= 1 s of breath between phrases
        melodies = {}

        def degree_pitch(d):
            return tonic_midi + scale[d % 7] + 12 * (d // 7)

        def chord_degrees(tones):
            pcs = {t % 12 for t in tones}
            return [d for d in range(-7, 15) if scale[d % 7] % 12 in pcs]

        def compose(sec):
            """Melody of one section as (start_tick_rel, end_tick_rel, degree, vel)."""
            phrase_beats = 2 * self.beats
            total_beats = sec["bars"] * self.beats
            high = sec["name"] == "chorus"
            lo, hi = (0, 8) if high else (-3, 5)
            d = int(rng.integers(0, 3)) + (2 if high else 0)
            out, p0, sung = [], 0, 0
            n_phrases = int(math.ceil(total_beats / phrase_beats))
            # a verse or bridge may leave out a phrase, never its first one
            skip = [ph > 0 and sec["name"] != "chorus" and rng.random() < 0.1 for ph in range(n_phrases)]
            for ph in range(n_phrases):
                p_end = min(p0 + phrase_beats, total_beats)
                lead = float(_pick(rng, (0.0, 0.5, 0.5, 1.0, 1.5)))
                if ph == 0:
                    lead = 1.0 if p_end - p0 < 6 else max(lead, 1.0)
                t = p0 + lead
                # breathe >= 1 s between phrases; short phrases keep >= 1 beat of rest
                stop = p_end - min(min_rest, max(1.0, p_end - t - 2.0))
                if skip[ph] or stop - t < 1.0:
                    p0 = p_end
                    continue
                phrase = []
                while t < stop - 1e-9:
                    cell = _pick(rng, ((0.5, 0.5), (1.0,), (1.0,), (1.5, 0.5), (2.0,), (0.5, 0.5, 1.0),
                                       (1.0, 0.5, 0.5), (0.5,)))
                    for dur in cell:
                        if t >= stop - 1e-9:
                            break
                        dur = min(dur, stop - t)
                        step = int(_pick(rng, (-2, -1, -1, 0, 1, 1, 2, 3, -3)))
                        if not lo <= d + step <= hi:      # turn back at the edges of the range
                            step = -step
                        d = int(np.clip(d + step, lo, hi))
                        tick = sec["start"] * self.bar_ticks + int(round(t * TPB))
                        if abs(t - round(t)) < 1e-9:                 # strong beat: chord tone
                            cds = chord_degrees(self.chord_at(tick))
                            d = min(cds, key=lambda c: (abs(c - d), c))
                            d = int(np.clip(d, lo, hi))
                        phrase.append([t, t + dur, d])
                        t += dur
                if not phrase:
                    p0 = p_end
                    continue
                # end the phrase on a chord tone, held
                tick = sec["start"] * self.bar_ticks + int(round(phrase[-1][0] * TPB))
                cds = chord_degrees(self.chord_at(tick))
                phrase[-1][2] = int(np.clip(min(cds, key=lambda c: abs(c - phrase[-1][2])), lo - 1, hi + 1))
                n = len(phrase)
                for k, (a, e, dd) in enumerate(phrase):
                    arc = math.sin(math.pi * (k + 0.5) / n)
                    out.append((a, e, dd, int(80 + 25 * arc + rng.integers(-5, 6))))
                sung += 1
                p0 = p_end
            return out

        for sec in self.form:
            t = self.types[sec["name"]]
            if not t["sung"]:
                continue
            key = (sec["name"], sec["bars"])
            if key not in melodies:
                melodies[key] = compose(sec)
            base = sec["start"] * self.bar_ticks
            for a, e, dd, vel in melodies[key]:
                start = base + int(round(a * TPB))
                end = base + int(round(e * TPB)) - 12
                notes.append((start, max(start + STEP // 2, end), ch, degree_pitch(dd), vel))
        return notes

    # ---------------------------------------------------------------- MIDI
    def midi(self, stem):
        """A :class:`mido.MidiFile` of one stem."""
        mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        events = [(0, 0, mido.MetaMessage("set_tempo", tempo=self.tempo)),
                  (0, 0, mido.MetaMessage("time_signature", numerator=self.beats, denominator=4))]
        mix = self.mixer[stem]
        if stem == "drums":
            setup = [(9, self.drum_kit, mix["pan"])]
        elif stem == "bass":
            setup = [(0, self.bass_program, mix["pan"])]
        elif stem == "vocals":
            setup = [(0, self.voice_program, mix["pan"])]
        else:
            setup = [(o["channel"], o["program"], pan) for o, pan in zip(self.others, self.other_pans)]
        for ch, program, pan in setup:
            events += [(0, 1, mido.Message("program_change", channel=ch, program=program)),
                       (0, 1, mido.Message("control_change", channel=ch, control=7, value=mix["volume"])),
                       (0, 1, mido.Message("control_change", channel=ch, control=10, value=pan)),
                       (0, 1, mido.Message("control_change", channel=ch, control=91, value=0)),
                       (0, 1, mido.Message("control_change", channel=ch, control=93, value=0))]
        # one voice per (channel, pitch): a note ends before the next one of the same pitch
        by_key = {}
        for n in self.notes[stem]:
            by_key.setdefault((n[2], n[3]), []).append(n)
        for (ch, pitch), group in sorted(by_key.items()):
            group.sort()
            for k, (start, end, _, _, vel) in enumerate(group):
                if k + 1 < len(group):
                    end = min(end, group[k + 1][0])
                end = min(end, self.end_tick)
                if start >= self.end_tick or end <= start:
                    continue
                events.append((start, 3, mido.Message("note_on", channel=ch, note=int(pitch),
                                                      velocity=int(np.clip(vel, 1, 127)))))
                events.append((end, 2, mido.Message("note_off", channel=ch, note=int(pitch), velocity=0)))
        events.sort(key=lambda e: (e[0], e[1], str(e[2])))
        now = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, self.end_tick - now)))
        return mid

    def info(self):
        """Description of the song for the manifest (JSON-compatible)."""
        return dict(
            bpm=self.bpm, key=NOTE_NAMES[self.tonic], mode=self.mode, style=self.style,
            meter=f"{self.beats}/4",
            form=[[s["name"], s["bars"]] for s in self.form],
            programs={"vocals": [self.voice_program], "drums": [self.drum_kit],
                      "bass": [self.bass_program], "other": [o["program"] for o in self.others]},
            other_families=[o["family"] for o in self.others],
            other_roles=[o["role"] for o in self.others],
        )


# ----------------------------------------------------------------------------- audio I/O
def _write_float_wav(path, audio, sample_rate):
    """Write ``audio`` of shape (frames, channels) as an IEEE float32 WAV.

    Written by hand (RIFF ``fmt``/``fact``/``data``) because libsndfile stamps a time into
    the PEAK chunk of float WAVs, which would make identical audio differ byte-wise. The
    file reads back with soundfile as subtype ``"FLOAT"``.
    """
    audio = np.ascontiguousarray(audio, dtype="<f4")
    frames, channels = audio.shape
    data = audio.tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, sample_rate, sample_rate * channels * 4, channels * 4, 32)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<II", 4, frames)
            + b"data" + struct.pack("<I", len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def _render(fluidsynth, soundfont, midi_path, wav_path, sample_rate, frames, config, label):
    """Render one MIDI file with fluidsynth.

    Returns ``(audio, active_rms)``: the render cut or zero-padded to float32 of shape
    (frames, 2), and its RMS over the blocks where it sounds (see :func:`_active_rms`).
    """
    cmd = [fluidsynth, "-n", "-i", "-q", "-f", str(config), "-R", "0", "-C", "0",
           "-g", str(FLUID_GAIN), "-r", str(sample_rate), "-O", "float", "-T", "wav",
           "-o", "synth.dynamic-sample-loading=1", "-o", "synth.polyphony=512",
           "-o", "synth.cpu-cores=1", "-F", str(wav_path), str(soundfont), str(midi_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                       stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"})
    errors = [ln for ln in (r.stderr + r.stdout).splitlines() if "error" in ln.lower()]
    if r.returncode != 0 or errors or not Path(wav_path).exists():
        tail = " | ".join((r.stderr.strip() or r.stdout.strip()).splitlines())[-800:]
        raise RuntimeError(f"fluidsynth failed to render {label} (exit code {r.returncode}): {tail}")
    with sf.SoundFile(str(wav_path)) as f:
        sr, channels = f.samplerate, f.channels
        audio = f.read(frames, dtype="float32", always_2d=True)
    if sr != sample_rate or channels != 2:
        raise RuntimeError(f"fluidsynth rendered {label} at {sr} Hz with {channels} channels; "
                           f"expected {sample_rate} Hz stereo")
    if audio.shape[0] < frames:
        audio = np.concatenate([audio, np.zeros((frames - audio.shape[0], 2), np.float32)])
    return audio, _active_rms(audio, sample_rate)


def _active_rms(x, sample_rate):
    """RMS of a (frames, 2) signal over its 50 ms blocks louder than -50 dB of the loudest."""
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


def _peak(x):
    return float(max(x.max(), -x.min()))


def _mix(song, rendered):
    """Balance and scale the stems of a track.

    ``rendered`` maps each source to ``(audio, active_rms)`` with float32 audio of shape
    (frames, 2). Each stem gets the song's random gain relative to a common loudness, then
    all stems one factor that puts the largest peak (of the mixture and of every stem) at the
    song's target peak (at most 0.94). Returns ``(stems, mixture, gains_db)``: a dict of
    float32 (frames, 2) stems, their float32 sum (frames, 2) and the applied gains in dB.
    """
    ref = 0.1
    gains = {}
    for s in SOURCES:
        rms = rendered[s][1]
        if rms <= 0:
            raise RuntimeError(f"fluidsynth rendered silence for {s} of {song.name}; "
                               "is the SoundFont a General MIDI one?")
        gains[s] = 10 ** (song.gains_db[s] / 20) * ref / rms
    mixture = np.zeros_like(rendered[SOURCES[0]][0])
    for s in SOURCES:
        mixture += np.float32(gains[s]) * rendered[s][0]
    peak = max([_peak(mixture)] + [gains[s] * _peak(rendered[s][0]) for s in SOURCES])
    factor = song.target_peak / peak
    stems = {}
    for s in SOURCES:
        stems[s] = rendered[s][0]
        stems[s] *= np.float32(gains[s] * factor)
    # float32 sum of the float32 stems: equal to their exact sum within ~3e-7
    mixture = stems[SOURCES[0]] + stems[SOURCES[1]]
    for s in SOURCES[2:]:
        mixture += stems[s]
    return stems, mixture, {s: round(20 * math.log10(gains[s] * factor), 3) for s in SOURCES}


# ----------------------------------------------------------------------------- data set
def find_soundfont(soundfont=None):
    """Path of the SoundFont to use: ``soundfont`` if given, else the first default found."""
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SoundFont not found: {path} (install the General MIDI SoundFont "
                                    "with `apt-get install fluid-soundfont-gm` or pass another .sf2)")
        return path.resolve()
    for cand in DEFAULT_SOUNDFONTS:
        if Path(cand).is_file():
            return Path(cand).resolve()
    raise FileNotFoundError(f"SoundFont not found: {DEFAULT_SOUNDFONTS[0]} (install it with "
                            "`apt-get install fluid-soundfont-gm` or pass soundfont=/--soundfont PATH)")


def _find_fluidsynth():
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise FileNotFoundError("fluidsynth not found on PATH; install it with `apt-get install fluidsynth`")
    return exe


def _fluidsynth_version(exe):
    try:
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in r.stdout.splitlines():
        if "version" in line.lower():
            return line.strip()
    return "unknown"


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _split_names(names, test_tracks, valid_tracks):
    n_train = len(names) - test_tracks - valid_tracks
    return {"train": names[:n_train], "valid": names[n_train:n_train + valid_tracks],
            "test": names[n_train + valid_tracks:]}


def _track_paths(out, name, folder):
    d = Path(out) / folder / name
    return d, [d / f"{s}.wav" for s in ("mixture",) + tuple(SOURCES)]


def generate_dataset(out, tracks, seconds, seed=0, test_tracks=None, valid_tracks=None,
                     sample_rate=SAMPLE_RATE, soundfont=None, workers=None, progress=True,
                     force=False):
    """Generate a MUSDB18-HQ-like data set of procedural songs into ``out``.

    Args:
        out: output folder; created if missing. Refused if it exists, is not empty and does
            not hold a manifest with the same parameters, unless ``force``. With a matching
            manifest the call returns it without work (tracks whose files are missing are
            rendered again, identically).
        tracks: number of tracks (>= 1) over all splits.
        seconds: duration of every track (>= 2); each WAV has ``round(seconds * sample_rate)``
            frames and 2 channels.
        seed: non-negative integer; the same seed gives byte-identical files.
        test_tracks: tracks written to ``out/test`` (default ``tracks // 4``, at least 1 when
            ``tracks >= 2``).
        valid_tracks: validation tracks, written to ``out/train`` as in MUSDB18-HQ and listed
            under ``split["valid"]`` (default ``tracks // 8``). ``test_tracks + valid_tracks``
            must be smaller than ``tracks``.
        sample_rate: output rate in Hz (44100 as MUSDB18-HQ).
        soundfont: General MIDI ``.sf2``; default ``/usr/share/sounds/sf2/FluidR3_GM.sf2``.
        workers: parallel fluidsynth renders (default: the CPU count, at most 8).
        progress: show a tqdm bar over tracks.
        force: overwrite ``out`` even if it holds other data (removes earlier ``synth_*``
            track folders and the manifest; other files are left alone).

    Returns:
        The manifest dict, also written as JSON to ``out / MANIFEST_NAME``: ``version``,
        ``generator``, ``seed``, ``seconds``, ``sample_rate``, ``tracks``, ``test_tracks``,
        ``valid_tracks``, ``soundfont`` (absolute path), ``fluidsynth`` (version line),
        ``sources`` (stem names), ``frames`` (samples per file), ``folders`` (split to
        subfolder: train/valid -> ``train``, test -> ``test``), ``split`` (split to list of
        track names) and ``track_info`` (track name to split, folder, bpm, key, mode, style,
        meter, form, GM programs, families and stem gains in dB).

    Raises:
        ValueError: bad ``tracks``, ``seconds``, ``seed``, split sizes, ``sample_rate`` or
            ``workers``.
        FileNotFoundError: no SoundFont at the path, or no ``fluidsynth`` on PATH.
        FileExistsError: ``out`` holds other data and ``force`` is false.
        RuntimeError: fluidsynth failed (its stderr tail is in the message).

    Processes that generate the same ``out`` at once (two training runs started together
    on a fresh machine) take turns on ``<out>.lock``; the later ones find it done.
    """
    import fcntl

    lock = Path(str(Path(out)) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return _generate_dataset(out, tracks, seconds, seed, test_tracks, valid_tracks,
                                     sample_rate, soundfont, workers, progress, force)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generate_dataset(out, tracks, seconds, seed, test_tracks, valid_tracks, sample_rate,
                      soundfont, workers, progress, force):
    """:func:`generate_dataset` under its lock."""
    tracks = _check_int("tracks", tracks, 1)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.floating, np.integer)):
        raise ValueError(f"seconds must be a number, got {seconds!r}")
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds:g}")
    if seconds < 2:
        raise ValueError(f"seconds must be >= 2 (the shortest track), got {seconds:g}")
    seed = _check_int("seed", seed, 0)
    if test_tracks is None:
        test_tracks = tracks // 4 if tracks >= 4 else (1 if tracks >= 2 else 0)
    if valid_tracks is None:
        valid_tracks = tracks // 8
    test_tracks = _check_int("test_tracks", test_tracks, 0)
    valid_tracks = _check_int("valid_tracks", valid_tracks, 0)
    if test_tracks + valid_tracks >= tracks:
        raise ValueError(f"test_tracks + valid_tracks = {test_tracks} + {valid_tracks} = "
                         f"{test_tracks + valid_tracks} must be smaller than tracks = {tracks} "
                         "(at least one training track is needed)")
    sample_rate = _check_int("sample_rate", sample_rate, 8000)
    if sample_rate > 96000:
        raise ValueError(f"sample_rate must be <= 96000, got {sample_rate}")
    if workers is None:
        workers = max(1, min(8, os.cpu_count() or 1))
    workers = _check_int("workers", workers, 1)
    sf2 = find_soundfont(soundfont)

    out = Path(out)
    params = dict(version=VERSION, seed=seed, seconds=seconds, sample_rate=sample_rate,
                  tracks=tracks, test_tracks=test_tracks, valid_tracks=valid_tracks,
                  soundfont=str(sf2))
    songs = [_Song(seed, i, seconds) for i in range(tracks)]
    names = [s.name for s in songs]
    split = _split_names(names, test_tracks, valid_tracks)
    test_names = set(split["test"])
    folder_of = {n: ("test" if n in test_names else "train") for n in names}
    manifest_path = out / MANIFEST_NAME

    todo = list(range(tracks))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        old = None
        if manifest_path.is_file():
            try:
                old = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                old = None
        same = isinstance(old, dict) and all(old.get(k) == v for k, v in params.items())
        if same and not force:
            missing = [i for i, n in enumerate(names)
                       if not all(p.is_file() for p in _track_paths(out, n, folder_of[n])[1])]
            if not missing:
                return old
            todo = missing                 # complete an interrupted copy (deterministic)
        elif not force:
            if isinstance(old, dict):
                diff = ", ".join(f"{k} {old.get(k)!r} != {v!r}" for k, v in params.items()
                                 if old.get(k) != v)
                why = f"its {MANIFEST_NAME} was made with other parameters ({diff})"
            else:
                why = f"it holds no {MANIFEST_NAME}"
            raise FileExistsError(f"refusing to write into the non-empty folder {out}: {why}; "
                                  "pass force=True (--force) to overwrite it")
        else:
            manifest_path.unlink(missing_ok=True)
            for folder in ("train", "test"):
                if (out / folder).is_dir():
                    for d in (out / folder).iterdir():
                        if d.is_dir() and _TRACK_DIR.match(d.name):
                            shutil.rmtree(d)

    exe = _find_fluidsynth()
    frames = int(round(seconds * sample_rate))
    for folder in ("train", "test"):          # both exist, as musdb expects, even if empty
        (out / folder).mkdir(parents=True, exist_ok=True)
    infos = {}
    with tempfile.TemporaryDirectory(prefix="xslicq_synth_") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(todo), desc="synthetic tracks", unit="track", disable=not progress) as bar:
        tmp = Path(tmp)
        config = tmp / "empty.cfg"           # keeps ~/.fluidsynth out of the renders
        config.write_text("")

        def submit(i):
            song = songs[i].compose()
            work = tmp / f"track{i}"
            work.mkdir()
            futures = {}
            for s in SOURCES:
                mid = work / f"{s}.mid"
                song.midi(s).save(str(mid))
                futures[s] = pool.submit(_render, exe, sf2, mid, work / f"{s}.wav", sample_rate,
                                         frames, config, f"{s} of {song.name}")
            return i, song, work, futures

        queue, pending = deque(todo), deque()
        try:
            while queue or pending:
                # keep the renders of the next track going while this one is mixed and written
                while queue and len(pending) < 2:
                    pending.append(submit(queue.popleft()))
                i, song, work, futures = pending.popleft()
                rendered = {s: f.result() for s, f in futures.items()}
                stems, mixture, gains = _mix(song, rendered)
                shutil.rmtree(work, ignore_errors=True)
                d, paths = _track_paths(out, song.name, folder_of[song.name])
                d.mkdir(parents=True, exist_ok=True)
                for path, audio in zip(paths, [mixture] + [stems[s] for s in SOURCES]):
                    _write_float_wav(path, audio, sample_rate)
                infos[song.name] = dict(song.info(), gains_db=gains)
                song.notes = None
                bar.update(1)
        except BaseException:
            for _, _, _, futures in pending:
                for f in futures.values():
                    f.cancel()
            raise

    if len(todo) < tracks:                    # completing: keep the descriptions on record
        old_info = json.loads(manifest_path.read_text()).get("track_info", {})
        infos = {**old_info, **infos}
    split_of = {n: k for k, v in split.items() for n in v}
    manifest = dict(
        params, generator="xslicq.data.synthetic", fluidsynth=_fluidsynth_version(exe),
        sources=list(SOURCES), frames=frames,
        folders={"train": "train", "valid": "train", "test": "test"},
        split=split,
        track_info={n: dict(split=split_of[n], folder=folder_of[n], **infos.get(n, {})) for n in names},
    )
    tmp_manifest = manifest_path.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp_manifest, manifest_path)
    return manifest


# ----------------------------------------------------------------------------- CLI
def _parser():
    p = argparse.ArgumentParser(
        prog="python -m xslicq.data.synthetic",
        description="Generate an offline, procedural MUSDB18-HQ-like data set "
                    "(OUT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav) with fluidsynth.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tracks", type=int, required=True, help="number of tracks over all splits")
    p.add_argument("--seconds", type=float, required=True, help="duration of every track (>= 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--test-tracks", type=int, default=None,
                   help="tracks in test/ (default tracks//4, at least 1 for 2+ tracks)")
    p.add_argument("--valid-tracks", type=int, default=None,
                   help="validation tracks, kept in train/ and listed in the manifest (default tracks//8)")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE, help="sample rate (default 44100)")
    p.add_argument("--soundfont", default=None, help=f"General MIDI .sf2 (default {DEFAULT_SOUNDFONTS[0]})")
    p.add_argument("--workers", type=int, default=None, help="parallel fluidsynth renders (default: CPUs)")
    p.add_argument("--force", action="store_true", help="overwrite an existing non-empty folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv=None):
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        m = generate_dataset(args.out, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                             test_tracks=args.test_tracks, valid_tracks=args.valid_tracks,
                             sample_rate=args.sample_rate, soundfont=args.soundfont,
                             workers=args.workers, progress=not args.no_progress, force=args.force)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sp = m["split"]
    print(f"{m['tracks']} tracks of {m['seconds']:g} s in {args.out} "
          f"(train {len(sp['train'])}, valid {len(sp['valid'])}, test {len(sp['test'])}); "
          f"manifest {Path(args.out) / MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
