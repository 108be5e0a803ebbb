"""The form of a synthetic song: its sections and what each kind of section plays.

A section is a dict ``{"name", "start", "bars", "energy"}`` (``start`` in bars from the
beginning of the song). A plan (one per section name) is a dict of the choices every
section of that name shares: its chord progression and harmonic rhythm, the drum, bass and
vocal choices.
"""

from __future__ import annotations

from .patterns import BASS_PATTERNS, HAT_PATTERNS, KICK_PATTERNS, SNARE_PATTERNS, pick
from .theory import PROGRESSIONS

SECTION_NAMES = ("intro", "verse", "chorus", "bridge", "outro")
SECTION_ENERGY = {"intro": 0, "verse": 1, "chorus": 2, "bridge": 1, "outro": 0}
FORM_TEMPLATES = (
    ["verse", "chorus", "verse", "chorus", "bridge", "chorus"],
    ["verse", "verse", "chorus", "verse", "chorus", "bridge", "chorus"],
    ["chorus", "verse", "chorus", "verse", "chorus", "bridge", "chorus"],
    ["verse", "chorus", "bridge", "verse", "chorus", "chorus"],
)


def make_form(rng, total_bars):
    """The sections of a song of ``total_bars`` bars, in order, covering it exactly.

    Songs of 8 bars or more start with an intro, of 20 or more end with an outro; the body
    follows one of :data:`FORM_TEMPLATES` (then alternates verse and chorus) and the last
    section is cut at the end of the song.

    Returns:
        list of section dicts ``{"name", "start", "bars", "energy"}``.
    """
    unit = 4 if total_bars >= 24 else 2
    intro = 0 if total_bars < 8 else unit * int(pick(rng, (1, 1, 2) if unit == 2 else (1, 1)))
    outro = unit if total_bars >= 20 else 0
    template = pick(rng, FORM_TEMPLATES)
    sizes = {"verse": 2 * unit, "chorus": 2 * unit, "bridge": unit * int(pick(rng, (1, 2)))}
    form = [("intro", intro)] if intro else []
    i = 0
    while sum(b for _, b in form) < total_bars - outro:
        name = template[i] if i < len(template) else ("verse", "chorus")[(i - len(template)) % 2]
        form.append((name, sizes[name]))
        i += 1
    if outro:
        form.append(("outro", outro))
    return _cut(form, total_bars)


def _cut(form, total_bars):
    """Section dicts of ``form`` (a list of ``(name, bars)``) up to ``total_bars`` bars."""
    sections, start = [], 0
    for name, bars in form:
        if start >= total_bars:
            break
        bars = min(bars, total_bars - start)
        sections.append(dict(name=name, start=start, bars=bars, energy=SECTION_ENERGY[name]))
        start += bars
    return sections


def make_plans(rng, style, mode, beats, seventh):
    """The plan of every section name of a song in ``style``, ``mode`` and ``beats`` per bar.

    Each name gets its own progression (no two alike); the intro repeats the verse's and the
    outro the chorus's. With ``seventh`` the chords of a section may be seventh chords.

    Returns:
        ``{name: {"prog", "per_bar", "seventh", "kick", "snare", "hats", "bass", "sung"}}``
        with ``per_bar`` chords per bar (1 or 2) and ``sung`` whether vocals are sung.
    """
    plans = {}
    progs = list(PROGRESSIONS[mode])
    for name in SECTION_NAMES:
        prog = progs.pop(int(rng.integers(len(progs))))
        per_bar = 1 if beats == 3 else int(pick(rng, (1, 1, 2)))
        plans[name] = dict(
            prog=prog,
            per_bar=per_bar,
            seventh=seventh and rng.random() < 0.7,
            kick=pick(rng, KICK_PATTERNS[style]),
            snare=pick(rng, SNARE_PATTERNS.get(style, SNARE_PATTERNS["default"])),
            hats=pick(rng, HAT_PATTERNS[SECTION_ENERGY[name]]),
            bass=pick(rng, BASS_PATTERNS[style]),
            sung=name in ("verse", "chorus") or (name == "bridge" and rng.random() < 0.6),
        )
    # intro re-uses the verse progression (common in songs)
    plans["intro"]["prog"] = plans["verse"]["prog"]
    plans["outro"]["prog"] = plans["chorus"]["prog"]
    return plans
