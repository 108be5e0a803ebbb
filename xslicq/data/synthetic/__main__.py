"""Command line of the synthetic data set generator::

    python -m xslicq.data.synthetic --out DIR --tracks 8 --seconds 20 --seed 0 \\
        [--test-tracks 2] [--valid-tracks 1] [--soundfont PATH] [--workers 2] [--force]
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...cli import ArgumentParser, run_command
from .dataset import MANIFEST_NAME, SAMPLE_RATE, generate_dataset
from .render import DEFAULT_SOUNDFONTS


def _parser():
    p = ArgumentParser(
        prog="python -m xslicq.data.synthetic",
        description="Generate an offline, procedural MUSDB18-HQ-like data set "
        "(OUT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav) "
        "with fluidsynth.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tracks", type=int, required=True, help="number of tracks over all splits")
    p.add_argument(
        "--seconds", type=float, required=True, help="duration of every track (2 to 600)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--test-tracks",
        type=int,
        default=None,
        help="tracks in test/ (default tracks//4, at least 1 for 2+ tracks)",
    )
    p.add_argument(
        "--valid-tracks",
        type=int,
        default=None,
        help="validation tracks, kept in train/ and listed in the manifest (default tracks//8)",
    )
    p.add_argument(
        "--sample-rate", type=int, default=SAMPLE_RATE, help="sample rate (default 44100)"
    )
    p.add_argument(
        "--soundfont", default=None, help=f"General MIDI .sf2 (default {DEFAULT_SOUNDFONTS[0]})"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="parallel fluidsynth renders (default: CPUs)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="render again a set that this generator made in OUT (other parameters, or the "
        "same); a folder it did not make is never written into",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv=None):
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    status, m = run_command(
        lambda: generate_dataset(
            args.out,
            tracks=args.tracks,
            seconds=args.seconds,
            seed=args.seed,
            test_tracks=args.test_tracks,
            valid_tracks=args.valid_tracks,
            sample_rate=args.sample_rate,
            soundfont=args.soundfont,
            workers=args.workers,
            progress=not args.no_progress,
            force=args.force,
        ),
        handled=(ValueError, OSError, RuntimeError),  # RuntimeError: a soundfont renderer's
    )
    if status:
        return status
    sp = m["split"]
    print(
        f"{m['tracks']} tracks of {m['seconds']:g} s in {args.out} "
        f"(train {len(sp['train'])}, valid {len(sp['valid'])}, test {len(sp['test'])}); "
        f"manifest {Path(args.out) / MANIFEST_NAME}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
