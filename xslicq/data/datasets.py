"""Datasets over :class:`~xslicq.data.tracks.Track` lists.

``TrainDataset`` draws random-mix training segments: for every source a random
track (or the sample's own track without ``random_mix``), a random offset, a
random gain and a random channel swap, optionally redrawing silent excerpts; the
mixture is the sum of the augmented sources. Sample ``k`` is a pure function of
``(seed, k)``; :class:`EpochSampler` hands out ``k = epoch * len + i`` so that
every epoch differs and runs are reproducible and resumable whatever the number
of workers.

``EvalDataset`` gives deterministic validation/test items: whole tracks, or
``chunks`` evenly spaced excerpts of ``seq_dur`` seconds per track.

Items are ``(mixture, targets)``: float32 tensors ``(channels, samples)`` and
``(nb_targets, channels, samples)``.
"""

from __future__ import annotations

import numpy as np
import torch

from . import SOURCES
from .augment import is_silent, random_channel_swap, random_gain
from .tracks import DatasetError, Track, read


def _check_targets(targets) -> tuple[str, ...]:
    targets = tuple(targets)
    unknown = [t for t in targets if t not in SOURCES]
    if unknown or not targets:
        raise ValueError(
            f"unknown target names {unknown or targets}; choose from {', '.join(SOURCES)}"
        )
    return targets


class TrainDataset(torch.utils.data.Dataset):
    """Random-mix training segments of ``seq_dur`` seconds."""

    def __init__(
        self,
        tracks: list[Track],
        seq_dur: float = 2.0,
        samples_per_track: int = 64,
        targets=SOURCES,
        random_mix: bool = True,
        gain: tuple = (0.25, 1.25),
        channel_swap: bool = True,
        skip_silent: bool = False,
        silence_db: float = -60.0,
        seed: int = 42,
    ):
        if not tracks:
            raise DatasetError("no training tracks")
        if not seq_dur > 0:
            raise ValueError(f"seq_dur must be positive, got {seq_dur}")
        if samples_per_track < 1:
            raise ValueError(f"samples_per_track must be >= 1, got {samples_per_track}")
        low, high = gain
        if not 0 <= low <= high:
            raise ValueError(f"gain must be a range [low, high] with 0 <= low <= high, got {gain}")
        self.tracks, self.targets = tracks, _check_targets(targets)
        self.sample_rate = tracks[0].sample_rate
        self.frames = int(round(seq_dur * self.sample_rate))
        short = [t for t in tracks if t.frames < self.frames]
        if short:
            raise DatasetError(
                f"track {short[0].folder} is {short[0].seconds:.2f} s long, shorter than one "
                f"training segment (seq_dur={seq_dur} s); {len(short)} track(s) too short"
            )
        self.samples_per_track, self.random_mix = samples_per_track, random_mix
        self.gain, self.channel_swap = (low, high), channel_swap
        self.skip_silent, self.silence_db, self.seed = skip_silent, silence_db, seed

    def __len__(self) -> int:
        return self.samples_per_track * len(self.tracks)

    def _excerpt(self, rng, own: Track, source: str) -> np.ndarray:
        """A segment of ``source``: from a random track (random mix) or ``own``; with
        ``skip_silent``, silent segments are redrawn (track and offset) up to 10 times."""
        for _ in range(10 if self.skip_silent else 1):
            track = self.tracks[int(rng.integers(len(self.tracks)))] if self.random_mix else own
            start = int(rng.integers(0, track.frames - self.frames + 1))
            audio = read(track, source, start, self.frames)
            if not (self.skip_silent and is_silent(audio, self.silence_db)):
                break
        return audio

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, int(index)])
        own = self.tracks[(int(index) % len(self)) // self.samples_per_track]
        stems = {}
        for source in SOURCES:
            audio = random_gain(self._excerpt(rng, own, source), rng, *self.gain)
            stems[source] = random_channel_swap(audio, rng) if self.channel_swap else audio
        mixture = sum(stems.values())
        targets = np.stack([stems[t] for t in self.targets])
        return torch.from_numpy(mixture), torch.from_numpy(targets)


class EpochSampler(torch.utils.data.Sampler):
    """Indices ``epoch * n + i`` in a seeded random order of ``i``; ``set_epoch`` (called by
    Lightning every epoch) moves on to the next epoch's samples."""

    def __init__(self, n: int, seed: int = 42, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = (
            np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        return iter((self.epoch * self.n + order).tolist())


class EvalDataset(torch.utils.data.Dataset):
    """Deterministic evaluation items: whole tracks (``seq_dur=None``) or ``chunks`` evenly
    spaced excerpts of ``seq_dur`` seconds per track."""

    def __init__(
        self, tracks: list[Track], targets=SOURCES, seq_dur: float | None = None, chunks: int = 1
    ):
        if not tracks:
            raise DatasetError("no evaluation tracks")
        self.tracks, self.targets = tracks, _check_targets(targets)
        self.items = []
        for t in tracks:
            if seq_dur is None:
                self.items.append((t, 0, t.frames))
                continue
            frames = min(int(round(seq_dur * t.sample_rate)), t.frames)
            starts = (
                np.linspace(0, t.frames - frames, chunks + 2)[1:-1]
                if chunks > 1
                else [(t.frames - frames) // 2]
            )
            self.items.extend((t, int(s), frames) for s in starts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        track, start, frames = self.items[index]
        mixture = read(track, "mixture", start, frames)
        targets = np.stack([read(track, t, start, frames) for t in self.targets])
        return torch.from_numpy(mixture), torch.from_numpy(targets)

    def name(self, index: int) -> str:
        track, start, _ = self.items[index]
        return f"{track.name}@{start / track.sample_rate:.1f}s"
