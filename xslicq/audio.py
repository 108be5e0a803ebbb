"""Reading audio files for separation: WAV/FLAC/OGG (and MP3 with libsndfile >= 1.1) with
soundfile, anything else (MP4/M4A, STEMS) through ffmpeg. A file shorter than its header
says, or otherwise damaged, is refused with an error naming it.

A named pipe (``<(ffmpeg ... -f wav -)`` in bash) is read whole, up to
:data:`MAX_PIPE_BYTES`, then decoded like a file; a device (``/dev/zero``) or a socket is
refused as not a regular file."""

from __future__ import annotations

import io
import math
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioFileError

MAX_PIPE_BYTES = 4 << 30  # a named pipe is read whole: at most 4 GiB (3 h of float stereo)


def load_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 (channels, samples) and its sample rate.

    Raises :class:`FileNotFoundError` for a missing file and :class:`AudioFileError` for a
    folder, an unreadable file, or one that holds less audio than its header declares
    (WAV, AIFF and FLAC exactly; MP3/MP4 by ffprobe's duration when the file states it).
    """
    path = Path(path)
    if path.is_dir():
        raise AudioFileError(f"{path} is a folder, not an audio file")
    kind = special_file(path)
    if kind == "a named pipe":
        data = _read_pipe(path)
    elif kind is not None:
        raise AudioFileError(f"audio file {path} is {kind}, not a regular file")
    elif not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    else:
        data = None

    def source():  # what soundfile reads: the path, or the pipe's bytes
        return str(path) if data is None else io.BytesIO(data)

    try:
        info = sf.info(source())
    except (RuntimeError, OSError):  # not a format libsndfile knows (LibsndfileError)
        info = None
    audio, problem = None, None
    if info is not None:
        try:
            audio, rate = sf.read(source(), dtype="float32", always_2d=True)
            audio = np.ascontiguousarray(audio.T)
        except (RuntimeError, OSError) as err:
            problem = str(err).strip() or type(err).__name__
    if audio is None:
        audio, rate = _read_ffmpeg(path, problem, data)
    _check_complete(path, info, audio.shape[-1], int(rate), data)
    return audio, int(rate)


def special_file(path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder (``"a
    named pipe"``, ``"a character device"``, ``"a block device"``, ``"a socket"``), else
    None. Follows links: ``/dev/fd/63`` from bash's ``<(...)`` is a named pipe."""
    try:
        mode = Path(path).stat().st_mode
    except (OSError, ValueError):
        return None
    for test, name in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return None


def _read_pipe(path: Path) -> bytes:
    """All bytes of the named pipe ``path`` (it can be read only once), at most
    :data:`MAX_PIPE_BYTES`."""
    parts, size = [], 0
    with open(path, "rb", buffering=0) as f:
        while part := f.read(1 << 20):
            size += len(part)
            if size > MAX_PIPE_BYTES:
                raise AudioFileError(
                    f"audio file {path} is a named pipe that gives more than "
                    f"{MAX_PIPE_BYTES >> 30} GiB; save the audio to a file and separate that"
                )
            parts.append(part)
    return b"".join(parts)


def _read_ffmpeg(path: Path, problem: str | None, data: bytes | None = None):
    """Decode ``path`` (or ``data``, the bytes read from it) with ffmpeg (soundfile could
    not: ``problem`` says why, when it knew the format); its decoding errors mean a damaged
    file. Returns ``(audio (channels, samples) float32, rate)``."""
    if shutil.which("ffmpeg") is None:
        reason = f"soundfile: {problem}" if problem else "soundfile does not know its format"
        raise AudioFileError(f"cannot read audio file {path} ({reason}; ffmpeg is not installed)")
    run = subprocess.run(
        ["ffmpeg", "-v", "error"]
        + (["-nostdin", "-i", str(path)] if data is None else ["-i", "pipe:0"])
        + ["-f", "wav", "-acodec", "pcm_f32le", "-"],
        input=data,
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


def check_complete(path, info, frames: int, rate: int) -> None:
    """An :class:`AudioFileError` if the audio file ``path`` holds fewer than the frames its
    header declares (``info``: soundfile's description of it, or None; ``frames``: those
    read or readable at ``rate``), as :func:`load_audio` checks it: for the stream, which
    reads a file a block at a time (``python -m xslicq.stream``)."""
    _check_complete(Path(path), info, int(frames), int(rate))


def _check_complete(path: Path, info, frames: int, rate: int, data: bytes | None = None):
    """An :class:`AudioFileError` if ``path`` (``data``: the bytes read from it) holds fewer
    than the frames its header declares: a file cut short by an interrupted download or
    copy, which libsndfile and ffmpeg read up to where it ends without a word."""
    declared = _header_frames(path, data)
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
        expected = _probe_seconds(path, data)
        short = expected is not None and frames / rate < expected - max(0.25, 0.02 * expected)
    if short:
        raise AudioFileError(
            f"audio file {path} is cut short: its header says {expected:.2f} s but it holds "
            f"{frames / rate:.2f} s of audio (an interrupted download or copy?)"
        )


def _header_frames(path: Path, data: bytes | None = None) -> int | None:
    """The frame count a PCM WAV or AIFF header declares, or None (another format, or a
    header that leaves the length open, as a WAV streamed to a pipe does); ``data``: the
    file's bytes, already read."""
    with open(path, "rb") if data is None else io.BytesIO(data) as f:
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


def _probe_seconds(path: Path, data: bytes | None = None) -> float | None:
    """The duration ffprobe reads from the file's header (``data``: the file's bytes,
    already read), or None when ffprobe is missing or only estimates it from the bitrate
    (then it says nothing about truncation)."""
    if shutil.which("ffprobe") is None:
        return None
    run = subprocess.run(
        ["ffprobe", "-v", "warning", "-show_entries", "format=duration", "-of", "csv=p=0"]
        + [str(path) if data is None else "pipe:0"],
        capture_output=True,
        input=data,
        stdin=subprocess.DEVNULL if data is None else None,
    )
    if run.returncode != 0 or b"from bitrate" in run.stderr:
        return None
    try:
        seconds = float(run.stdout.decode(errors="replace").strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None
