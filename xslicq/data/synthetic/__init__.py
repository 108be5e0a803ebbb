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

    OUT/xslicq_synthetic.json                      the manifest (see generate_dataset),
                                                   written last: the set is complete
    OUT/xslicq_synthetic.partial.json              while rendering (or interrupted)
    OUT/train/<track>/{mixture,vocals,drums,bass,other}.wav
    OUT/test/<track>/{mixture,vocals,drums,bass,other}.wav

All WAV files are stereo IEEE float32 (soundfile subtype ``"FLOAT"``), so that the mixture
equals the sum of the stems to float32 rounding. As in MUSDB18-HQ the validation tracks live
in ``train/``; the manifest lists them under ``split["valid"]`` and the remaining tracks of
``train/`` under ``split["train"]``. A seed gives byte-identical files on every run.

Modules, in the order of the data flow:

* :mod:`.theory` notes, modes, chords, voicings; :mod:`.patterns` style, instrument and
  rhythm tables; :mod:`.form` sections and their plans;
* :mod:`.song` the :class:`Song` (header, harmony, instruments, mixer) whose parts are
  written by :mod:`.drums`, :mod:`.bass`, :mod:`.accompaniment` (``other``) and
  :mod:`.vocals`;
* :mod:`.midi` a stem as a MIDI file; :mod:`.render` fluidsynth and the SoundFont;
  :mod:`.mix` gains and the mixture; :mod:`.wav` float WAV files;
* :mod:`.dataset` :func:`generate_dataset` (parameters, splits, manifest and progress file,
  lock, resuming an interrupted render); ``__main__`` the command line::

    python -m xslicq.data.synthetic --out DIR --tracks 8 --seconds 20 --seed 0 \\
        [--test-tracks 2] [--valid-tracks 1] [--soundfont PATH] [--workers 2] [--force]
"""

from .dataset import (
    MANIFEST_NAME,
    PROGRESS_NAME,
    SAMPLE_RATE,
    SyntheticSetExists,
    check_parameters,
    generate_dataset,
)
from .render import DEFAULT_SOUNDFONTS, find_soundfont
from .song import Song

__all__ = [
    "MANIFEST_NAME",
    "PROGRESS_NAME",
    "DEFAULT_SOUNDFONTS",
    "SAMPLE_RATE",
    "Song",
    "SyntheticSetExists",
    "check_parameters",
    "generate_dataset",
    "find_soundfont",
]
