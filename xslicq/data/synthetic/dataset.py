"""Generating a synthetic data set: checking the parameters, planning the splits, reusing,
completing or resuming an existing copy, rendering the tracks and writing the manifest.

Two files in the output folder say what it holds:

* ``xslicq_synthetic.partial.json`` (:data:`PROGRESS_NAME`), written before anything else
  into a new or empty folder and rewritten after every finished track: a render under way
  (or interrupted), with its parameters and the descriptions of the finished tracks;
* ``xslicq_synthetic.json`` (:data:`MANIFEST_NAME`), written last: the set is complete.
  The progress file is removed after it.

Every file is written to a temporary name and renamed, so that a file is complete or
absent. A folder with neither marker is never written into nor deleted from.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from xslicq.checks import is_int, is_number
from xslicq.data import SOURCES
from xslicq.outputs import write_atomic

from .midi import stem_midi
from .mix import mix_stems
from .render import find_fluidsynth, find_soundfont, fluidsynth_version, render_midi
from .song import Song
from .wav import write_float_wav

MANIFEST_NAME = "xslicq_synthetic.json"  # written last: the set is complete
PROGRESS_NAME = "xslicq_synthetic.partial.json"  # written first: a render is under way
VERSION = 1
SAMPLE_RATE = 44100
MAX_SECONDS = 600.0  # the longest track: each is rendered and mixed in memory (MUSDB's ~10 min)
GENERATOR = "xslicq.data.synthetic"  # recorded in the manifest
FOLDERS = {"train": "train", "valid": "train", "test": "test"}  # split -> subfolder
_TRACK_DIR = re.compile(r"^synth_\d+_[a-z0-9_]+$")

log = logging.getLogger(__name__)


class SyntheticSetExists(FileExistsError):
    """The output folder holds something other than the requested set.

    Attributes:
        out: the folder.
        reason: what it holds: for a set of this generator, how it differs (``other
            parameters: seed 0 != 1``); else why it is not one.
        replaceable: True for a set of this generator made with other parameters, which
            ``force`` replaces; False for a folder this generator did not make, which is
            never written into.
    """

    def __init__(self, out, reason: str, replaceable: bool):
        self.out, self.reason, self.replaceable = Path(out), reason, replaceable
        if replaceable:
            why = f"it holds a synthetic set that does not match ({reason}); pass force=True "
            why += "(--force) to replace it"
        else:
            why = f"{reason}; choose a new or empty folder (nothing is written into or deleted "
            why += "from a folder that this generator did not make)"
        super().__init__(f"refusing to write into the non-empty folder {out}: {why}")


def generate_dataset(
    out,
    tracks,
    seconds,
    seed=0,
    test_tracks=None,
    valid_tracks=None,
    sample_rate=SAMPLE_RATE,
    soundfont=None,
    workers=None,
    progress=True,
    force=False,
):
    """Generate a MUSDB18-HQ-like data set of procedural songs into ``out``.

    Args:
        out: output folder; created if missing. A new or empty folder first gets the
            progress file (see the module docstring), the manifest last. With a manifest of
            the same parameters the call returns it without work (tracks whose files are
            missing are rendered again, identically). With only the progress file (an
            interrupted render) the render resumes: finished tracks are kept, the others
            rendered, with a log line saying so; the result is byte-identical to an
            uninterrupted render. A progress file of other parameters is started over.
            A manifest of other parameters is refused unless ``force``; a non-empty folder
            with neither file (not made by this generator) is always refused.
        tracks: number of tracks (>= 1) over all splits.
        seconds: duration of every track (>= 2); each WAV has ``round(seconds * sample_rate)``
            frames and 2 channels.
        seed: non-negative integer; the same seed gives byte-identical files.
        test_tracks: tracks written to ``out/test`` (default ``tracks // 4``, at least 1 when
            ``tracks >= 2``).
        valid_tracks: validation tracks, written to ``out/train`` as in MUSDB18-HQ and listed
            under ``split["valid"]`` (default ``tracks // 8``). ``test_tracks + valid_tracks``
            must be smaller than ``tracks``.
        sample_rate: output rate in Hz (44100 as MUSDB18-HQ).
        soundfont: General MIDI ``.sf2``; default ``/usr/share/sounds/sf2/FluidR3_GM.sf2``.
        workers: parallel fluidsynth renders (default: the CPU count, at most 8).
        progress: show a tqdm bar over tracks.
        force: render the set again even if ``out`` holds a set of this generator (made
            with other parameters, or the same): its ``synth_*`` track folders, manifest and
            progress file are removed first (other files are left alone). A folder this
            generator did not make is refused all the same.

    Returns:
        The manifest dict, also written as JSON to ``out / MANIFEST_NAME``: ``version``,
        ``generator``, ``seed``, ``seconds``, ``sample_rate``, ``tracks``, ``test_tracks``,
        ``valid_tracks``, ``soundfont`` (absolute path), ``fluidsynth`` (version line),
        ``sources`` (stem names), ``frames`` (samples per file), ``folders`` (split to
        subfolder: train/valid -> ``train``, test -> ``test``), ``split`` (split to list of
        track names) and ``track_info`` (track name to split, folder, bpm, key, mode, style,
        meter, form, GM programs, families and stem gains in dB).

    Raises:
        ValueError: bad ``tracks``, ``seconds``, ``seed``, split sizes, ``sample_rate`` or
            ``workers``.
        FileNotFoundError: no SoundFont at the path, or no ``fluidsynth`` on PATH.
        SyntheticSetExists: (a FileExistsError) ``out`` holds a set of other parameters and
            ``force`` is false, or other data.
        RuntimeError: fluidsynth failed (its stderr tail is in the message).

    Processes that generate the same ``out`` at once (two training runs started together
    on a fresh machine) take turns on ``<out>.lock``; the later ones find it done.
    """
    import fcntl

    out = Path(out)
    params, workers = check_parameters(
        tracks, seconds, seed, test_tracks, valid_tracks, sample_rate, workers
    )
    _refuse_foreign(out)  # before the lock file is made next to it
    params["soundfont"] = str(find_soundfont(soundfont))
    lock = Path(str(out) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return _generate(out, params, workers, progress, force)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- parameters
def _check_int(name, value, minimum):
    if not is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_seconds(seconds):
    if not is_number(seconds):
        raise ValueError(f"seconds must be a number, got {seconds!r}")
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds:g}")
    if seconds < 2:
        raise ValueError(f"seconds must be >= 2 (the shortest track), got {seconds:g}")
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"seconds must be at most {MAX_SECONDS:g} (each track is rendered and mixed in "
            f"memory), got {seconds:g}"
        )
    return seconds


def _check_split(tracks, test_tracks, valid_tracks):
    """``(test_tracks, valid_tracks)`` checked, with the defaults for None."""
    if test_tracks is None:
        test_tracks = tracks // 4 if tracks >= 4 else (1 if tracks >= 2 else 0)
    if valid_tracks is None:
        valid_tracks = tracks // 8
    test_tracks = _check_int("test_tracks", test_tracks, 0)
    valid_tracks = _check_int("valid_tracks", valid_tracks, 0)
    if test_tracks + valid_tracks >= tracks:
        raise ValueError(
            f"test_tracks + valid_tracks = {test_tracks} + {valid_tracks} = "
            f"{test_tracks + valid_tracks} must be smaller than tracks = {tracks} "
            "(at least one training track is needed)"
        )
    return test_tracks, valid_tracks


def check_parameters(
    tracks,
    seconds,
    seed=0,
    test_tracks=None,
    valid_tracks=None,
    sample_rate=SAMPLE_RATE,
    workers=None,
):
    """The checked parameters of :func:`generate_dataset` that need no file: the manifest's
    ``version`` to ``valid_tracks``, and the worker count.

    Raises ValueError for a bad value (checked in the order of the arguments); its message
    starts with the argument's name.
    """
    tracks = _check_int("tracks", tracks, 1)
    seconds = _check_seconds(seconds)
    seed = _check_int("seed", seed, 0)
    test_tracks, valid_tracks = _check_split(tracks, test_tracks, valid_tracks)
    sample_rate = _check_int("sample_rate", sample_rate, 8000)
    if sample_rate > 96000:
        raise ValueError(f"sample_rate must be <= 96000, got {sample_rate}")
    if workers is None:
        workers = max(1, min(8, os.cpu_count() or 1))
    workers = _check_int("workers", workers, 1)
    params = dict(
        version=VERSION,
        seed=seed,
        seconds=seconds,
        sample_rate=sample_rate,
        tracks=tracks,
        test_tracks=test_tracks,
        valid_tracks=valid_tracks,
    )
    return params, workers


def _split_names(names, test_tracks, valid_tracks):
    """Split name -> track names: training first, then validation, then test."""
    n_train = len(names) - test_tracks - valid_tracks
    return {
        "train": names[:n_train],
        "valid": names[n_train : n_train + valid_tracks],
        "test": names[n_train + valid_tracks :],
    }


def _track_files(track_dir):
    """The WAV files of a track: mixture first, then the sources."""
    return [track_dir / f"{s}.wav" for s in ("mixture",) + tuple(SOURCES)]


# ----------------------------------------------------------------------------- the set
def _generate(out, params, workers, progress, force):
    """:func:`generate_dataset` with checked parameters, under its lock."""
    songs = [Song(params["seed"], i, params["seconds"]) for i in range(params["tracks"])]
    names = [s.name for s in songs]
    split = _split_names(names, params["test_tracks"], params["valid_tracks"])
    dirs = {n: out / FOLDERS[k] / n for k, v in split.items() for n in v}
    manifest, kept, todo = _plan(out, params, names, [dirs[n] for n in names], force)
    if manifest is not None and not todo:
        return manifest
    exe = find_fluidsynth()
    frames = int(round(params["seconds"] * params["sample_rate"]))
    for folder in ("train", "test"):  # both exist, as musdb expects, even if empty
        (out / folder).mkdir(parents=True, exist_ok=True)
    settings = _RenderSettings(exe, params["soundfont"], params["sample_rate"], frames)
    jobs = [(i, songs[i], dirs[names[i]]) for i in todo]
    # a complete set being repaired keeps its manifest; a new render records its progress
    record = None if manifest is not None else _recorder(out, params, kept)
    infos = _render_tracks(jobs, settings, workers, progress, record)
    manifest = _manifest(params, fluidsynth_version(exe), frames, names, split, {**kept, **infos})
    _write_json(out / MANIFEST_NAME, manifest)  # the completion marker, written last
    (out / PROGRESS_NAME).unlink(missing_ok=True)
    return manifest


def _manifest(params, fluidsynth, frames, names, split, infos):
    """The manifest dict (see :func:`generate_dataset`); ``infos`` maps a track name to its
    description, ``names`` are the tracks in order."""
    split_of = {n: k for k, v in split.items() for n in v}
    return dict(
        params,
        generator=GENERATOR,
        fluidsynth=fluidsynth,
        sources=list(SOURCES),
        frames=frames,
        folders=dict(FOLDERS),
        split=split,
        track_info={
            n: dict(split=split_of[n], folder=FOLDERS[split_of[n]], **infos.get(n, {}))
            for n in names
        },
    )


def _descriptions(track_info):
    """The track descriptions of a manifest's ``track_info``, less ``split`` and ``folder``."""
    return {
        n: {k: v for k, v in d.items() if k not in ("split", "folder")}
        for n, d in track_info.items()
    }


def _refuse_foreign(out):
    """Raise :class:`SyntheticSetExists` if ``out`` is a non-empty folder that this generator
    did not make (it holds neither its manifest nor its progress file)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if not out.is_dir() or (out / MANIFEST_NAME).is_file() or (out / PROGRESS_NAME).is_file():
        return
    if any(out.iterdir()):
        raise SyntheticSetExists(
            out,
            f"it holds no {MANIFEST_NAME} (nor {PROGRESS_NAME}), so it is not a set made by "
            "this generator",
            replaceable=False,
        )


def _plan(out, params, names, track_dirs, force):
    """What to do with ``out``: ``(its complete manifest or None, descriptions of the tracks
    kept, indices of the tracks to render)``.

    A missing or empty folder renders everything. A manifest of the same parameters renders
    only the tracks with missing files (none: the set is complete). A progress file of the
    same parameters (an interrupted render) keeps the tracks it records as finished. With
    ``force``, or a progress file of other parameters, the render starts over. Anything else
    is refused.
    """
    _refuse_foreign(out)
    everything = list(range(len(names)))
    if (out / MANIFEST_NAME).is_file() and not force:
        old = _read_manifest(out / MANIFEST_NAME)
        if not _same_params(old, params):
            raise SyntheticSetExists(out, _difference(old, params, MANIFEST_NAME), replaceable=True)
        (out / PROGRESS_NAME).unlink(missing_ok=True)  # stopped between the last two steps
        missing = [i for i, d in enumerate(track_dirs) if not _complete(d)]
        return old, _descriptions(old.get("track_info", {})), missing
    if (out / PROGRESS_NAME).is_file() and not force:
        old = _read_manifest(out / PROGRESS_NAME)
        if _same_params(old, params):
            done = old.get("track_info", {})
            kept = {n: done[n] for n, d in zip(names, track_dirs) if n in done and _complete(d)}
            todo = [i for i, n in enumerate(names) if n not in kept]
            _remove_tracks(out, keep={d.name for d in track_dirs})  # left by a start-over
            log.warning(
                "%s holds an interrupted render of this synthetic set (%d of %d tracks "
                "finished): rendering the other %d",
                out,
                len(kept),
                len(names),
                len(todo),
            )
            return None, kept, todo
        log.warning(
            "%s holds an interrupted render of a synthetic set that does not match (%s): "
            "starting again",
            out,
            _difference(old, params, PROGRESS_NAME),
        )
    elif force and out.is_dir() and any(out.iterdir()):
        log.warning("%s: removing the synthetic set there and rendering it again (force)", out)
    out.mkdir(parents=True, exist_ok=True)
    # the progress file first: stopped anywhere after this, the folder is still known as ours
    _write_json(out / PROGRESS_NAME, _progress(params, {}))
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    _remove_tracks(out)
    return None, {}, everything


def _same_params(old, params):
    return isinstance(old, dict) and all(old.get(k) == v for k, v in params.items())


def _complete(track_dir):
    """All the WAV files of a track are there (each is written whole or not at all)."""
    return all(p.is_file() for p in _track_files(track_dir))


def _progress(params, track_info):
    """The progress file's content: the parameters and the finished tracks' descriptions."""
    return dict(params, generator=GENERATOR, track_info=track_info)


def _recorder(out, params, kept):
    """A callback ``(track name, description)`` that records a finished track in the
    progress file of ``out``."""
    done = dict(kept)

    def record(name, info):
        done[name] = info
        _write_json(out / PROGRESS_NAME, _progress(params, done))

    return record


def _read_manifest(path):
    """The JSON in ``path``, or None if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _difference(old, params, name):
    """Why the content ``old`` of the manifest or progress file ``name`` does not match
    ``params``, for messages: ``its NAME is unreadable`` or ``other parameters: seed 0 != 1``."""
    if not isinstance(old, dict):
        return f"its {name} is unreadable"
    diff = ", ".join(f"{k} {old.get(k)!r} != {v!r}" for k, v in params.items() if old.get(k) != v)
    return f"other parameters: {diff}"


def _remove_tracks(out, keep=()):
    """Delete the files this generator writes (:func:`_track_files`, and their temporary
    files) in the ``synth_*`` track folders of ``out`` whose names are not in ``keep``, and
    each folder then empty; a file the generator does not write is left where it is, and
    its folder with it (a log line names them)."""
    for folder in ("train", "test"):
        if (out / folder).is_dir():
            for d in sorted((out / folder).iterdir()):
                if d.is_symlink() or not d.is_dir() or not _TRACK_DIR.match(d.name):
                    continue
                if d.name in keep:
                    continue
                for path in _track_files(d) + sorted(d.glob("*.wav.tmp")):
                    if path.is_file() or path.is_symlink():
                        path.unlink()
                others = sorted(p.name for p in d.iterdir())
                if others:
                    log.warning(
                        "%s: kept, with files this generator did not write: %s",
                        d,
                        ", ".join(others),
                    )
                else:
                    d.rmdir()


def _write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically (through a temporary file)."""
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class _RenderSettings:
    fluidsynth: str
    soundfont: str
    sample_rate: int
    frames: int


def _render_tracks(jobs, settings, workers, progress, on_track=None):
    """Compose, render, mix and write the tracks of ``jobs`` (``(index, song, track_dir)``).

    The stems render in a pool of ``workers`` threads; the next track's renders run while
    the current one is mixed and written. ``on_track(name, description)`` is called after
    each track's files are written. Returns track name -> its manifest description.
    """
    infos = {}
    with (
        tempfile.TemporaryDirectory(prefix="xslicq_synth_") as tmp,
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(jobs), desc="synthetic tracks", unit="track", disable=not progress) as bar,
    ):
        config = Path(tmp) / "empty.cfg"  # keeps ~/.fluidsynth out of the renders
        config.write_text("")
        queue, pending = deque(jobs), deque()
        try:
            while queue or pending:
                while queue and len(pending) < 2:
                    pending.append(
                        _start_track(pool, Path(tmp), config, settings, *queue.popleft())
                    )
                song, track_dir, work, futures = pending.popleft()
                infos[song.name] = _finish_track(song, track_dir, work, futures, settings)
                if on_track is not None:
                    on_track(song.name, infos[song.name])
                bar.update(1)
        except BaseException:
            for *_, futures in pending:
                for f in futures.values():
                    f.cancel()
            raise
    return infos


def _start_track(pool, tmp, config, settings, index, song, track_dir):
    """Compose ``song``, write its stems as MIDI under ``tmp`` and submit their renders.

    Returns ``(song, track_dir, work folder, source -> future of render_midi)``.
    """
    song.compose()
    work = tmp / f"track{index}"
    work.mkdir()
    futures = {}
    for s in SOURCES:
        mid = work / f"{s}.mid"
        stem_midi(song, s).save(str(mid))
        futures[s] = pool.submit(
            render_midi,
            settings.fluidsynth,
            settings.soundfont,
            mid,
            work / f"{s}.wav",
            settings.sample_rate,
            settings.frames,
            config,
            f"{s} of {song.name}",
        )
    return song, track_dir, work, futures


def _finish_track(song, track_dir, work, futures, settings):
    """Wait for the renders of ``song``, mix them and write the track's WAV files.

    Returns the track's description for the manifest (with the applied gains in dB).
    """
    rendered = {s: f.result() for s, f in futures.items()}
    stems, mixture, gains = mix_stems(rendered, song.gains_db, song.target_peak, song.name)
    shutil.rmtree(work, ignore_errors=True)
    track_dir.mkdir(parents=True, exist_ok=True)
    for path, audio in zip(_track_files(track_dir), [mixture] + [stems[s] for s in SOURCES]):
        write_float_wav(path, audio, settings.sample_rate)
    info = dict(song.info(), gains_db=gains)
    song.notes = None  # the notes are no longer needed
    return info
