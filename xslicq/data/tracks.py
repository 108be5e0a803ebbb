"""Tracks of a dataset in MUSDB18-HQ layout: discovery, splits, validation and reading.

Layout: ``ROOT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav``.

Splits:
    train  ``train/`` minus the validation tracks
    valid  the validation tracks (inside ``train/``)
    test   ``test/``

The validation tracks are the 14 of the standard MUSDB18 split (read from the
installed ``musdb`` package) unless ``ROOT`` holds the manifest of a synthetic
set (:mod:`xslicq.data.synthetic`), whose own split is used. A folder in the layout that
holds none of those 14 names in ``train/`` (a data set of one's own) validates on the last
eighth of its ``train/`` tracks in name order, at least one (:func:`fallback_validation`),
as the synthetic sets do. A synthetic set whose render was interrupted (its progress file
but no manifest) is an error until it is finished.

Mono stems are upmixed to stereo with a warning (MUSDB18-HQ is stereo
throughout; a mono stem usually means a re-exported file). Everything else that
is off (missing folders or stems, unreadable files, other sample rates, stems of
different lengths) is an error that names the file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DatasetError
from . import SOURCES

STEMS = ("mixture",) + SOURCES
SPLITS = ("train", "valid", "test")
SYNTHETIC_MANIFEST = "xslicq_synthetic.json"  # a complete synthetic set
SYNTHETIC_PROGRESS = "xslicq_synthetic.partial.json"  # a synthetic set still being rendered


@dataclass(frozen=True)
class Track:
    """One track: its stem files and their common format."""

    name: str
    folder: Path
    frames: int
    sample_rate: int
    channels: int  # channels in the files (mono files are upmixed)
    paths: dict = field(repr=False)  # stem name -> Path

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def musdb_validation_tracks() -> list[str]:
    """The 14 validation track names of the standard MUSDB18 split (from ``musdb``)."""
    try:
        import importlib.resources

        import yaml

        text = importlib.resources.files("musdb").joinpath("configs/mus.yaml").read_text()
        return list(yaml.safe_load(text)["validation_tracks"])
    except (ImportError, FileNotFoundError, KeyError) as err:
        raise DatasetError(
            "cannot read the MUSDB18 validation split from the musdb package "
            f"({err}); install musdb"
        ) from err


def _info(path: Path):
    try:
        return sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise DatasetError(f"cannot read audio file {path}: {err}") from err


def load_track(folder: Path, sample_rate: int = 44100, stems=STEMS) -> Track:
    """Check one track folder and describe it (reads only the file headers)."""
    folder = Path(folder)
    paths, infos = {}, {}
    for stem in stems:
        path = folder / f"{stem}.wav"
        if not path.is_file():
            raise DatasetError(f"track folder {folder} has no {stem}.wav")
        info = _info(path)
        if info.frames == 0:
            raise DatasetError(f"audio file {path} is empty")
        if info.samplerate != sample_rate:
            raise DatasetError(
                f"audio file {path} has sample rate {info.samplerate} Hz, expected {sample_rate} Hz"
            )
        if info.channels not in (1, 2):
            raise DatasetError(
                f"audio file {path} has {info.channels} channels; expected "
                "stereo (or mono, which is upmixed)"
            )
        paths[stem], infos[stem] = path, info
    lengths = {s: i.frames for s, i in infos.items()}
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"stems of track {folder} have different lengths (frames): {lengths}")
    mono = [s for s, i in infos.items() if i.channels == 1]
    if mono:
        warnings.warn(f"track {folder.name}: mono stems {mono} are upmixed to stereo", stacklevel=2)
    return Track(
        name=folder.name,
        folder=folder,
        frames=next(iter(lengths.values())),
        sample_rate=sample_rate,
        channels=2,
        paths=paths,
    )


def read(track: Track, stem: str, start: int = 0, frames: int | None = None) -> np.ndarray:
    """Read ``frames`` samples of a stem from ``start`` as float32 ``(2, frames)``."""
    frames = track.frames - start if frames is None else frames
    path = track.paths[stem]
    try:
        audio = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)[0]
    except (RuntimeError, sf.LibsndfileError) as err:
        raise DatasetError(f"cannot read audio file {path}: {err}") from err
    if audio.shape[0] != frames:
        raise DatasetError(
            f"audio file {path} ended after {start + audio.shape[0]} of {track.frames} frames"
        )
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    if not np.all(np.isfinite(audio)):
        raise DatasetError(f"audio file {path} contains NaN or inf samples")
    return np.ascontiguousarray(audio.T)


def split_names(root: Path) -> dict[str, list[str]] | None:
    """The split of a synthetic set's manifest, or None for a MUSDB18-HQ-style folder."""
    manifest = Path(root) / SYNTHETIC_MANIFEST
    if not manifest.is_file():
        return None
    split = json.loads(manifest.read_text())["split"]
    return {s: list(split.get(s, [])) for s in SPLITS}


def fallback_validation(names: list[str]) -> list[str]:
    """The validation tracks of a ``train/`` folder without any of MUSDB18's: its last
    ``max(1, len(names) // 8)`` names in sorted order (an eighth, as the synthetic sets'
    default), none when it holds a single track (that one trains)."""
    names = sorted(names)
    return names[len(names) - max(1, len(names) // 8) :] if len(names) > 1 else []


def find_tracks(root, split: str, sample_rate: int = 44100, stems=STEMS) -> list[Track]:
    """All tracks of ``split`` (``train``, ``valid`` or ``test``) under ``root``, sorted."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"dataset folder {root} {what}")
    if (root / SYNTHETIC_PROGRESS).is_file() and not (root / SYNTHETIC_MANIFEST).is_file():
        raise DatasetError(
            f"dataset folder {root} holds a synthetic set whose render was interrupted; "
            "generate it again with the same parameters (data=synthetic, or python -m "
            "xslicq.data.synthetic) to finish it"
        )
    subset = "test" if split == "test" else "train"
    folder = root / subset
    if not folder.is_dir():
        raise DatasetError(
            f"dataset folder {root} has no {subset}/ folder "
            "(expected MUSDB18-HQ layout: ROOT/{train,test}/<track>/<stem>.wav)"
        )
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    own = split_names(root)
    if own is not None:
        wanted = set(own[split])
        missing = wanted - set(names)
        if missing:
            raise DatasetError(
                f"tracks {sorted(missing)} of the {split} split are missing from {folder}"
            )
        names = [n for n in names if n in wanted]
    elif split != "test":
        valid = set(musdb_validation_tracks()) & set(names)
        if not valid:  # not MUSDB18's tracks: a data set of one's own
            valid = set(fallback_validation(names))
        if split == "valid" and len(names) == 1 and not valid:
            raise DatasetError(
                f"split 'valid' of {root} has no tracks: {folder} holds a single track, "
                "which trains; add a second track there (the last eighth of train/ in name "
                "order validates when none of MUSDB18's validation tracks is there)"
            )
        names = [n for n in names if (n in valid) == (split == "valid")]
    if not names:
        raise DatasetError(f"split {split!r} of {root} has no tracks")
    return [load_track(folder / n, sample_rate, stems) for n in names]
