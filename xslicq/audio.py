"""Reading audio files for separation: WAV/FLAC/OGG (and MP3 with libsndfile >= 1.1) with
soundfile, anything else (MP4/M4A, STEMS) through ffmpeg. A file shorter than its header
says, or otherwise damaged, is refused with an error naming it."""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioFileError(ValueError):
    """An audio file cannot be read, or is cut short or damaged; the message names it."""


def load_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 (channels, samples) and its sample rate.

    Raises :class:`FileNotFoundError` for a missing file and :class:`AudioFileError` for a
    folder, an unreadable file, or one that holds less audio than its header declares
    (WAV, AIFF and FLAC exactly; MP3/MP4 by ffprobe's duration when the file states it).
    """
    path = Path(path)
    if path.is_dir():
        raise AudioFileError(f"{path} is a folder, not an audio file")
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError):  # not a format libsndfile knows (LibsndfileError)
        info = None
    audio, problem = None, None
    if info is not None:
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            audio = np.ascontiguousarray(audio.T)
        except (RuntimeError, OSError) as err:
            problem = str(err).strip() or type(err).__name__
    if audio is None:
        audio, rate = _read_ffmpeg(path, problem)
    _check_complete(path, info, audio.shape[-1], int(rate))
    return audio, int(rate)


def _read_ffmpeg(path: Path, problem: str | None) -> tuple[np.ndarray, int]:
    """Decode ``path`` with ffmpeg (soundfile could not: ``problem`` says why, when it knew
    the format); its decoding errors mean a damaged file."""
    if shutil.which("ffmpeg") is None:
        reason = f"soundfile: {problem}" if problem else "soundfile does not know its format"
        raise AudioFileError(f"cannot read audio file {path} ({reason}; ffmpeg is not installed)")
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path)]
        + ["-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True,
    )
    errors = run.stderr.decode(errors="replace").strip()
    if run.returncode != 0 or not run.stdout:
        raise AudioFileError(f"cannot read audio file {path}: {errors[-300:] or 'no audio'}")
    if errors:  # decoded, but with errors: missing or corrupt data
        raise AudioFileError(
            f"audio file {path} is damaged: ffmpeg reports {errors.splitlines()[-1][-300:]!r}"
            + (f" (soundfile: {problem})" if problem else "")
        )
    audio, rate = sf.read(io.BytesIO(run.stdout), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), int(rate)


def _check_complete(path: Path, info, frames: int, rate: int) -> None:
    """An :class:`AudioFileError` if ``path`` holds fewer than the frames its header
    declares: a file cut short by an interrupted download or copy, which libsndfile and
    ffmpeg read up to where it ends without a word."""
    declared = _header_frames(path)
    if declared is None and info is not None and info.format == "FLAC" and info.frames > 0:
        declared = info.frames  # STREAMINFO's total
    if declared is not None:
        short = frames < declared
        expected = declared / rate
    elif info is not None and info.format == "OGG":
        if "lacks an end-of-stream" in info.extra_info:  # libsndfile's note on the last page
            raise AudioFileError(
                f"audio file {path} is cut short or damaged: its last Ogg page has no "
                f"end-of-stream mark (it holds {frames / rate:.2f} s)"
            )
        return
    else:
        expected = _probe_seconds(path)
        short = expected is not None and frames / rate < expected - max(0.25, 0.02 * expected)
    if short:
        raise AudioFileError(
            f"audio file {path} is cut short: its header says {expected:.2f} s but it holds "
            f"{frames / rate:.2f} s of audio (an interrupted download or copy?)"
        )


def _header_frames(path: Path) -> int | None:
    """The frame count a PCM WAV or AIFF header declares, or None (another format, or a
    header that leaves the length open, as a WAV streamed to a pipe does)."""
    with open(path, "rb") as f:
        form = f.read(12)
        if len(form) < 12:
            return None
        if form[:4] in (b"RIFF", b"RIFX") and form[8:12] == b"WAVE":
            order, kind = ("<" if form[:4] == b"RIFF" else ">"), "wav"
        elif form[:4] == b"FORM" and form[8:12] in (b"AIFF", b"AIFC"):
            order, kind = ">", "aiff"
        else:
            return None
        block = None
        for _ in range(256):  # chunks before the audio
            head = f.read(8)
            if len(head) < 8:
                return None
            name, size = head[:4], struct.unpack(order + "I", head[4:])[0]
            if kind == "aiff" and name == b"COMM":
                body = f.read(6)  # numChannels (short), numSampleFrames (unsigned long)
                return struct.unpack(">hI", body)[1] if len(body) == 6 else None
            if kind == "wav" and name == b"fmt ":
                body = f.read(min(size, 16))
                if len(body) < 14:
                    return None
                tag, block = struct.unpack(order + "H", body[:2])[0], body[12:14]
                block = struct.unpack(order + "H", block)[0]
                if tag not in (1, 3, 6, 7, 0xFFFE):  # PCM, float, A-law, mu-law, extensible
                    return None
                f.seek(size - len(body) + (size & 1), 1)
                continue
            if kind == "wav" and name == b"data":
                if not block or size == 0 or size >= 0x7FFF0000:  # open or placeholder
                    return None
                return size // block
            f.seek(size + (size & 1), 1)
    return None


def _probe_seconds(path: Path) -> float | None:
    """The duration ffprobe reads from the file's header, or None when ffprobe is missing or
    only estimates it from the bitrate (then it says nothing about truncation)."""
    if shutil.which("ffprobe") is None:
        return None
    run = subprocess.run(
        ["ffprobe", "-v", "warning", "-show_entries", "format=duration", "-of", "csv=p=0"]
        + [str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if run.returncode != 0 or "from bitrate" in run.stderr:
        return None
    try:
        seconds = float(run.stdout.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None
