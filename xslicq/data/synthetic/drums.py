"""The drum part of a synthetic song, on the General MIDI percussion channel.

Kick, snare and hi-hat patterns come from the section's plan; the intro keeps time
sparsely, a bridge may switch to half time, the last bar of every section but the last ends
in a fill, and crashes mark section starts (and every fourth bar of a chorus). Timing and
velocities are humanised with the song's generator.
"""

from __future__ import annotations

import numpy as np

from .patterns import (
    CLAP,
    CRASH,
    CRASH2,
    FILL_KINDS,
    HAT_KEYS,
    KICK,
    RIDE,
    SIDESTICK,
    SNARE,
    TOMS,
    fit_pattern,
    pick,
)
from .theory import STEP

DRUM_CHANNEL = 9  # GM percussion (channel 10 counted from 1)


def drum_notes(song):
    """Notes of the drum stem of a :class:`~xslicq.data.synthetic.song.Song`.

    Returns:
        list of ``(start_tick, end_tick, channel, key, velocity)``, every hit a sixteenth long.
    """
    drummer = _Drummer(song)
    for si, sec in enumerate(song.form):
        drummer.section(sec, first=si == 0, last=si == len(song.form) - 1)
    return drummer.notes


class _Drummer:
    """Plays the sections of ``song`` one after the other into ``notes``."""

    def __init__(self, song):
        self.song, self.rng, self.notes = song, song.rng, []

    def hit(self, tick, key, vel):
        tick = max(0, tick)
        self.notes.append((tick, tick + STEP, DRUM_CHANNEL, key, int(np.clip(vel, 1, 127))))

    def section(self, sec, first, last):
        """All bars of section ``sec``; ``first``/``last``: whether it opens/ends the song."""
        song, plan = self.song, self.song.plans[sec["name"]]
        self.sec = sec
        self.kick = fit_pattern(plan["kick"], song.steps)
        self.snare = fit_pattern(plan["snare"], song.steps)
        self.hats = fit_pattern(plan["hats"], song.steps)
        self.half_time = sec["name"] == "bridge" and self.rng.random() < 0.5
        for b in range(sec["bars"]):
            self.bar(sec["start"] + b, b, first, last)

    def bar(self, bar, b, first, last):
        """Bar ``bar`` of the song, the ``b``-th of the current section."""
        song, rng, sec = self.song, self.rng, self.sec
        energy, steps = sec["energy"], song.steps
        fill_from = steps
        if b == sec["bars"] - 1 and not last:
            fill_from = steps - 4 * int(pick(rng, (1, 2, 2) if sec["bars"] >= 4 else (1, 1, 2)))
        for s in range(steps):
            tick = song.tick(bar, s) + (song.jitter(3) if s % 4 else 0)
            if s < fill_from:
                self.step(tick, s)
        # pick-up variation every fourth bar
        if b % 4 == 3 and fill_from == steps and energy > 0 and rng.random() < 0.5:
            self.hit(song.tick(bar, steps - 1), SNARE, 70 + song.jitter())
            self.hit(song.tick(bar, steps - 2), KICK, 85 + song.jitter())
        # crash on section starts and every 4 bars in a chorus
        if (b == 0 and (energy > 0 or not first)) or (
            energy == 2 and b % 4 == 0 and rng.random() < 0.6
        ):
            self.hit(song.tick(bar, 0), pick(rng, (CRASH, CRASH2)), 105 + song.jitter())
            if self.kick[0] != "x" or sec["name"] == "intro":
                self.hit(song.tick(bar, 0), KICK, 100)
        if fill_from < steps:
            self.fill(bar, fill_from)

    def step(self, tick, s):
        """Kick, snare and hats of sixteenth ``s`` of a bar, at ``tick``."""
        song, sec = self.song, self.sec
        accent = 12 if s % 4 == 0 else 0
        if sec["energy"] == 0 and sec["name"] == "intro":
            # sparse: kick on the first beat and time keeping only
            if s == 0:
                self.hit(tick, KICK, 90 + song.jitter())
        elif self.kick[s] == "x" and not (self.half_time and s % 8 == 4):
            self.hit(tick, KICK, 95 + accent + song.jitter())
        if sec["energy"] > 0 or sec["name"] == "outro":
            self.snare_step(tick, s)
        h = self.hats[s]
        if h != ".":
            key = RIDE if self.half_time and h in "co" else HAT_KEYS[h]
            self.hit(tick, key, 70 + accent + song.jitter(10))

    def snare_step(self, tick, s):
        """Backbeat (with a clap in loud disco, pop and half-time choruses) or ghost note."""
        song, energy = self.song, self.sec["energy"]
        c = self.snare[s]
        if self.half_time:
            c = "x" if s == (song.steps // 2 if song.beats == 4 else 4) else "."
        if c == "x":
            key = SIDESTICK if (song.style == "ballad" and energy < 2) else SNARE
            self.hit(tick, key, 100 + song.jitter(8))
            if energy == 2 and song.style in ("disco", "pop", "halftime"):
                self.hit(tick, CLAP, 85 + song.jitter())
        elif c == "g":
            self.hit(tick, SNARE, 38 + song.jitter(8))

    def fill(self, bar, start):
        """A crescendo fill (toms, snare, both, or eighths) from sixteenth ``start`` to the
        end of bar ``bar``."""
        song, rng = self.song, self.rng
        n = song.steps - start
        kind = pick(rng, FILL_KINDS)
        toms = list(TOMS[int(rng.integers(0, 2)) :])
        for k, s in enumerate(range(start, song.steps)):
            if kind == "eighths" and s % 2:
                continue
            vel = 70 + int(50 * (k + 1) / n) + song.jitter(5)
            if kind == "snare" or (kind == "mixed" and k < n // 2):
                key = SNARE
            else:
                key = toms[min(len(toms) - 1, k * len(toms) // n)]
            self.hit(song.tick(bar, s), key, vel)
        self.hit(song.tick(bar, start), KICK, 95)
