"""Rendering MIDI with the ``fluidsynth`` command line and a General MIDI SoundFont."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from .mix import active_rms

DEFAULT_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
FLUID_GAIN = 0.5  # fluidsynth master gain (float output: nothing clips)


def find_soundfont(soundfont=None):
    """Path of the SoundFont to use: ``soundfont`` if given, else the first default found.

    Raises:
        FileNotFoundError: ``soundfont`` is not a file, or none of
            :data:`DEFAULT_SOUNDFONTS` is installed.
    """
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"SoundFont not found: {path} (install the General MIDI "
                "SoundFont with `apt-get install fluid-soundfont-gm` or "
                "pass another .sf2)"
            )
        return path.resolve()
    for cand in DEFAULT_SOUNDFONTS:
        if Path(cand).is_file():
            return Path(cand).resolve()
    raise FileNotFoundError(
        f"SoundFont not found: {DEFAULT_SOUNDFONTS[0]} (install it with "
        "`apt-get install fluid-soundfont-gm` or pass soundfont=/--soundfont "
        "PATH)"
    )


def find_fluidsynth():
    """Path of the ``fluidsynth`` executable; FileNotFoundError if it is not on PATH."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise FileNotFoundError(
            "fluidsynth not found on PATH; install it with `apt-get install fluidsynth`"
        )
    return exe


def fluidsynth_version(exe):
    """The version line ``fluidsynth --version`` prints, or ``"unknown"``."""
    try:
        r = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in r.stdout.splitlines():
        if "version" in line.lower():
            return line.strip()
    return "unknown"


def render_midi(fluidsynth, soundfont, midi_path, wav_path, sample_rate, frames, config, label):
    """Render one MIDI file with fluidsynth (reverb and chorus off, float output).

    Args:
        fluidsynth: the executable.
        soundfont: the ``.sf2`` file.
        midi_path: the MIDI file to render.
        wav_path: where fluidsynth writes its WAV.
        sample_rate: rate in Hz.
        frames: nb_frames of the result.
        config: a fluidsynth configuration file (empty, to keep ``~/.fluidsynth`` out).
        label: what is rendered, for error messages.

    Returns:
        ``(audio, active_rms)``: the render cut or zero-padded to float32 of shape
        (nb_frames, 2), and its RMS over the blocks where it sounds (:func:`active_rms`).

    Raises:
        RuntimeError: fluidsynth failed or wrote something other than stereo at
            ``sample_rate`` (the message holds its stderr tail).
    """
    cmd = [
        fluidsynth,
        "-n",
        "-i",
        "-q",
        "-f",
        str(config),
        "-R",
        "0",
        "-C",
        "0",
        "-g",
        str(FLUID_GAIN),
        "-r",
        str(sample_rate),
        "-O",
        "float",
        "-T",
        "wav",
        "-o",
        "synth.dynamic-sample-loading=1",
        "-o",
        "synth.polyphony=512",
        "-o",
        "synth.cpu-cores=1",
        "-F",
        str(wav_path),
        str(soundfont),
        str(midi_path),
    ]
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        env={**os.environ, "LC_ALL": "C"},
    )
    errors = [ln for ln in (r.stderr + r.stdout).splitlines() if "error" in ln.lower()]
    if r.returncode != 0 or errors or not Path(wav_path).exists():
        tail = " | ".join((r.stderr.strip() or r.stdout.strip()).splitlines())[-800:]
        raise RuntimeError(
            f"fluidsynth failed to render {label} (exit code {r.returncode}): {tail}"
        )
    with sf.SoundFile(str(wav_path)) as f:
        sr, channels = f.samplerate, f.channels
        audio = f.read(frames, dtype="float32", always_2d=True)
    if sr != sample_rate or channels != 2:
        raise RuntimeError(
            f"fluidsynth rendered {label} at {sr} Hz with {channels} channels; "
            f"expected {sample_rate} Hz stereo"
        )
    if audio.shape[0] < frames:
        audio = np.concatenate([audio, np.zeros((frames - audio.shape[0], 2), np.float32)])
    return audio, active_rms(audio, sample_rate)
