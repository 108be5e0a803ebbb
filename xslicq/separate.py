"""Separate a song into stems.

    python -m xslicq.separate song.wav --checkpoint model.ckpt --out DIR

Reads WAV/FLAC/OGG with soundfile and anything else (MP3, MP4/M4A, STEMS) through
ffmpeg; writes ``<target>.wav`` per target (and ``accompaniment.wav`` with
``--accompaniment``) at the input's sample rate, length and channel count.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf


def load_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 (channels, samples) and its sample rate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return np.ascontiguousarray(audio.T), int(rate)
    except (RuntimeError, sf.LibsndfileError):
        pass
    if shutil.which("ffmpeg") is None:
        raise ValueError(f"cannot read {path} with soundfile and ffmpeg is not installed")
    probe = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True,
    )
    if probe.returncode != 0 or not probe.stdout:
        raise ValueError(
            f"cannot read audio file {path}: "
            f"{probe.stderr.decode(errors='replace').strip()[-300:] or 'no audio'}"
        )
    import io

    audio, rate = sf.read(io.BytesIO(probe.stdout), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), int(rate)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xslicq.separate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("audio", help="the song to separate")
    parser.add_argument("--checkpoint", required=True, help="a training checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="folder for the stems")
    parser.add_argument("--force", action="store_true", help="overwrite an existing folder")
    parser.add_argument(
        "--accompaniment",
        action="store_true",
        help="also write accompaniment.wav (everything but vocals)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--wiener",
        type=int,
        default=None,
        help="Wiener-EM refinement iterations (default: the checkpoint's)",
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=10.0,
        help="chunk length: memory grows with it (default 10 s)",
    )
    args = parser.parse_args(argv)

    from .config import check_device
    from .separator import SeparationInputError, Separator

    out = Path(args.out)
    try:
        check_device(args.device, "--device")
        if out.exists() and any(out.iterdir()) and not args.force:
            raise FileExistsError(f"output folder {out} exists and is not empty; use --force")
        audio, rate = load_audio(args.audio)
        separator = Separator.from_checkpoint(
            args.checkpoint, device=args.device, chunk_seconds=args.chunk_seconds
        )
        if args.wiener is not None:
            if args.wiener < 0:
                raise ValueError(f"--wiener must be >= 0, got {args.wiener}")
            separator.system.wiener_iterations = args.wiener
        stems = separator.separate(audio, rate, progress=True)
    except (FileNotFoundError, FileExistsError, ValueError, SeparationInputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    if args.accompaniment and "vocals" in stems:
        stems["accompaniment"] = sum(v for k, v in stems.items() if k != "vocals")
    for name, stem in stems.items():
        sf.write(out / f"{name}.wav", stem.T, rate, subtype="FLOAT")
    print(f"wrote {', '.join(f'{n}.wav' for n in stems)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
