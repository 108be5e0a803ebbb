"""Tables the synthetic songs draw from: styles, instruments, drum, bass and accompaniment
patterns, and the two helpers that use them (:func:`pick`, :func:`fit_pattern`).

A pattern is a string with one character per sixteenth note (16 for 4/4, 12 for 3/4),
``"."`` a rest. The order of every table is part of the data set: a seeded generator picks
by index, so reordering a table changes the songs.
"""

from __future__ import annotations

STYLES = {
    # tempo range, beats per bar, swing, drum kits, family preferences of "other"
    "rock": dict(
        bpm=(100, 150),
        beats=4,
        swing=0.0,
        kits=(0, 8, 16),
        families=("guitar", "organ", "piano", "strings"),
    ),
    "pop": dict(
        bpm=(90, 130),
        beats=4,
        swing=0.0,
        kits=(0, 8, 24),
        families=("piano", "pads", "guitar", "strings", "brass"),
    ),
    "funk": dict(
        bpm=(90, 120),
        beats=4,
        swing=0.0,
        kits=(0, 8, 32),
        families=("guitar", "organ", "brass", "piano"),
    ),
    "ballad": dict(
        bpm=(80, 100),
        beats=4,
        swing=0.0,
        kits=(0, 32, 40),
        families=("piano", "strings", "pads", "guitar"),
    ),
    "disco": dict(
        bpm=(110, 130),
        beats=4,
        swing=0.0,
        kits=(0, 24, 25),
        families=("strings", "brass", "guitar", "piano", "pads"),
    ),
    "halftime": dict(
        bpm=(120, 150),
        beats=4,
        swing=0.0,
        kits=(16, 24, 25),
        families=("pads", "guitar", "piano", "organ"),
    ),
    "shuffle": dict(
        bpm=(80, 130),
        beats=4,
        swing=0.65,
        kits=(0, 32, 40),
        families=("piano", "organ", "brass", "guitar"),
    ),
    "waltz": dict(
        bpm=(80, 150),
        beats=3,
        swing=0.0,
        kits=(0, 32, 40),
        families=("piano", "strings", "guitar", "pads"),
    ),
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
TOMS = (50, 48, 47, 45, 43, 41)  # high to low

# drum patterns; 12 steps for 3/4
KICK_PATTERNS = {
    "rock": [
        "x.......x.......",
        "x.......x.x.....",
        "x..x....x.x.....",
        "x.....x.x.......",
        "x.......x......x",
    ],
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
# per section energy (0 quiet, 1, 2 loud)
HAT_PATTERNS = {
    0: ["c...c...c...c...", "p...p...p...p...", "r...r...r...r..."],
    1: ["c.c.c.c.c.c.c.c.", "c.c.c.c.c.c.c.o.", "cccccccccccccccc"],
    2: ["o.o.o.o.o.o.o.o.", "r.r.r.r.r.r.r.r.", "c.o.c.o.c.o.c.o.", "r.b.r.b.r.b.r.b."],
}
# c closed hat, o open hat, p pedal hat, r ride, b ride bell, t tambourine
HAT_KEYS = {"c": CLOSED_HH, "o": OPEN_HH, "p": PEDAL_HH, "r": RIDE, "b": RIDE_BELL, "t": TAMBOURINE}
FILL_KINDS = ("toms", "snare", "mixed", "eighths")

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
# the bass of quiet sections (intro, outro), whatever the style
QUIET_BASS_PATTERNS = ("r" + "." * 15, "r.......r.......", "r.......5.......")

# "other" rhythms: "x" a chord, "d"/"u" a down/up strum
BLOCK_PATTERNS = [
    "x.......x.......",
    "x...x...x...x...",
    "x..x..x...x..x..",
    "..x...x...x...x.",
    "x.....x.....x...",
    "x.x...x.x...x...",
]
STRUM_PATTERNS = ["d.......d...d.u.", "d...d.u...u.d.u.", "d.d.d.d.d.d.d.d.", "d.....d...d.u..."]
STAB_PATTERNS = ["x.....x...x.....", "x..x......x..x..", "......x.......x.", "x.......x..x...."]
ARP_SHAPES = ("up", "updown", "broken")

# lead melody: rhythm cells in beats, and steps in scale degrees
MELODY_CELLS = (
    (0.5, 0.5),
    (1.0,),
    (1.0,),
    (1.5, 0.5),
    (2.0,),
    (0.5, 0.5, 1.0),
    (1.0, 0.5, 0.5),
    (0.5,),
)
MELODY_STEPS = (-2, -1, -1, 0, 1, 1, 2, 3, -3)
PHRASE_LEADS = (0.0, 0.5, 0.5, 1.0, 1.5)  # beats of rest before a phrase


def pick(rng, seq):
    """One element of ``seq`` drawn with ``rng`` (a :class:`numpy.random.Generator`)."""
    return seq[int(rng.integers(len(seq)))]


def fit_pattern(pattern, steps):
    """Cut or repeat a pattern string to ``steps`` characters.

    >>> fit_pattern("x...", 6)
    'x...x.'
    """
    return (pattern * (steps // len(pattern) + 1))[:steps]
