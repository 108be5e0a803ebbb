"""Byte-reproducible IEEE float32 WAV files."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

_WAVE_FORMAT_IEEE_FLOAT = 3


def write_float_wav(path, audio, sample_rate):
    """Write ``audio`` of shape (nb_frames, nb_channels) as an IEEE float32 WAV.

    Written by hand (RIFF ``fmt``/``fact``/``data``) because libsndfile stamps a time into
    the PEAK chunk of float WAVs, which would make identical audio differ byte-wise. The
    file reads back with soundfile as subtype ``"FLOAT"``. The bytes go to a temporary file
    next to ``path`` that is then renamed, so that ``path`` is either complete or absent
    (an interrupted render never leaves a short file behind).
    """
    audio = np.ascontiguousarray(audio, dtype="<f4")
    frames, channels = audio.shape
    data = audio.tobytes()
    fmt = struct.pack(
        "<HHIIHH",
        _WAVE_FORMAT_IEEE_FLOAT,
        channels,
        sample_rate,
        sample_rate * channels * 4,
        channels * 4,
        32,
    )
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, frames)
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    os.replace(tmp, path)
