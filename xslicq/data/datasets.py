"""Datasets over :class:`~xslicq.data.tracks.Track` lists.

``TrainDataset`` draws random-mix training segments: for every source a random
track (or the sample's own track without ``random_mix``), a random offset, a
random gain and a random channel swap, optionally redrawing silent excerpts; the
mixture is the sum of the augmented sources. Sample ``k`` is a pure function of
``(seed, k)``; :class:`EpochSampler` hands out ``k = epoch * len + i`` so that
every epoch differs and runs are reproducible and resumable whatever the number
of workers.

``EvalDataset`` gives deterministic validation/test items: whole tracks, or
``chunks`` evenly spaced excerpts per track, all of one length so that they batch:
``seq_dur`` seconds, or the length of the shortest track when that is shorter (never
padded, so every score is computed on real audio only).

Items are ``(mixture, targets)``: float32 tensors ``(channels, samples)`` and
``(nb_targets, channels, samples)``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..checks import check_int, is_number
from . import SOURCES
from .augment import is_silent, random_channel_swap, random_gain
from .tracks import DatasetError, Track, read

log = logging.getLogger(__name__)


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
    Lightning every epoch) moves on to the next epoch's samples. ``resume_at(epoch, skip)``
    makes the next iteration of ``epoch`` start after the first ``skip`` positions of the
    epoch's order (a run restarted in the middle of an epoch sees exactly the samples it had
    not seen yet).

    Distributed (DDP): with world size ``W`` and rank ``r`` (given, or read from
    ``torch.distributed`` when it is initialised at iteration time), rank ``r`` gets
    ``order[r::W]`` of the epoch's order truncated to ``(n // W) * W`` positions: disjoint
    shards of equal length ``n // W``, so every rank runs the same number of batches. The
    ``n % W`` positions left over are dropped, a different random set every epoch (sample
    ``k`` is a pure function of ``k``, so no position matters more than another); no index
    is ever repeated to pad. With a batch of ``b`` per rank, step ``s`` of the ``W`` ranks
    together uses positions ``s*b*W .. (s+1)*b*W - 1`` of the order, exactly the batch of
    one process with a batch of ``b*W``; the positions used after ``d`` batches per rank
    are always a prefix of the order, so ``skip = d * b * W`` resumes every rank exactly,
    even under another world size. The trainer must leave the sampler alone
    (``use_distributed_sampler: false``, as ``conf/trainer/ddp.yaml`` sets).
    """

    def __init__(
        self,
        n: int,
        seed: int = 42,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither (read from DDP)")
        if world_size is not None and not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.rank, self.world_size = rank, world_size
        self._skip: tuple[int, int] | None = None  # (epoch, positions to skip)

    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)``: as given, else from an initialised ``torch.distributed``,
        else ``(0, 1)``."""
        if self.world_size is not None:
            return self.rank, self.world_size
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, skip: int) -> None:
        """Start the next iteration of ``epoch`` after the first ``skip`` positions of its
        order, counted over all ranks (``batches done * batch size * world size``)."""
        if not 0 <= skip <= self.n:
            raise ValueError(f"cannot skip {skip} of an epoch of {self.n} samples")
        self.epoch, self._skip = int(epoch), (int(epoch), int(skip))

    def __len__(self) -> int:
        return self.n // self.shard()[1]

    def __iter__(self):
        rank, world = self.shard()
        order = (
            np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        skip, self._skip = self._skip, None
        start = skip[1] if skip is not None and skip[0] == self.epoch else 0
        rest = order[start:]
        rest = rest[: len(rest) // world * world][rank::world]
        return iter((self.epoch * self.n + rest).tolist())


class ResumableLoader(torch.utils.data.DataLoader):
    """A DataLoader over an :class:`EpochSampler` whose position is part of a Lightning
    checkpoint (``state_dict`` / ``load_state_dict``, Lightning's stateful-loader protocol).

    ``progress()`` returns ``(batches done in the current epoch, batches per epoch)`` as the
    training loop counts them (the loader itself cannot: Lightning fetches ahead). On
    loading, an epoch that was complete moves on to the next one; otherwise the sampler
    resumes after the batches already trained on by all ranks (``batches_done`` per rank
    times ``batch_size`` times the saved ``world_size``; 1 in checkpoints that predate it),
    which is exact under DDP and even when the world size changed."""

    # explicit arguments (no **kwargs): Lightning rebuilds the loader with another sampler
    # for trainer.overfit_batches, and needs to see which argument is the sampler
    def __init__(
        self,
        dataset,
        sampler=None,
        progress=None,
        batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        drop_last: bool = False,
        shuffle: bool | None = None,
        batch_sampler=None,
    ):
        super().__init__(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            batch_sampler=batch_sampler,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            drop_last=drop_last,
        )
        self.progress = progress

    def state_dict(self) -> dict:
        if not isinstance(self.sampler, EpochSampler):  # replaced, e.g. by overfit_batches
            return {}
        progress = self.progress() if self.progress is not None else None
        done, total = progress if progress is not None else (0, len(self))
        return {
            "epoch": int(self.sampler.epoch),
            "batches_done": int(done),
            "epoch_batches": int(total),
            "batch_size": int(self.batch_size),
            "world_size": int(self.sampler.shard()[1]),
        }

    def load_state_dict(self, state: dict) -> None:
        if not state or not isinstance(self.sampler, EpochSampler):
            return
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        if done >= int(state["epoch_batches"]):
            epoch, done = epoch + 1, 0
        seen = (
            done * int(state.get("batch_size", self.batch_size)) * int(state.get("world_size", 1))
        )
        self.sampler.resume_at(epoch, min(seen, self.sampler.n))


class EvalDataset(torch.utils.data.Dataset):
    """Deterministic evaluation items: whole tracks (``seq_dur=None``), or ``chunks`` evenly
    spaced excerpts per track of one common length, so that they stack into batches.

    The common length is ``seq_dur`` seconds, cropped to the shortest track when that is
    shorter (with a log line): excerpts are never padded, so an SDR is computed on real
    audio only and equals the one of the same excerpt scored alone. Excerpts of a short
    track that coincide are kept once.
    """

    def __init__(
        self, tracks: list[Track], targets=SOURCES, seq_dur: float | None = None, chunks: int = 1
    ):
        if not tracks:
            raise DatasetError("no evaluation tracks")
        if seq_dur is not None and not (is_number(seq_dur) and seq_dur > 0):
            raise ValueError(f"seq_dur must be positive or None, got {seq_dur!r}")
        check_int(chunks, "chunks", 1)
        self.tracks, self.targets = tracks, _check_targets(targets)
        self.frames = None if seq_dur is None else self._common_frames(tracks, seq_dur)
        self.items = []
        for t in tracks:
            if self.frames is None:
                self.items.append((t, 0, t.frames))
                continue
            last = t.frames - self.frames
            starts = np.linspace(0, last, chunks + 2)[1:-1] if chunks > 1 else [last // 2]
            for s in dict.fromkeys(int(s) for s in starts):  # unique, in order
                self.items.append((t, s, self.frames))

    @staticmethod
    def _common_frames(tracks: list[Track], seq_dur: float) -> int:
        """``seq_dur`` in samples, cropped to the shortest track (logged)."""
        frames = int(round(seq_dur * tracks[0].sample_rate))
        shortest = min(tracks, key=lambda t: t.frames)
        if shortest.frames < frames:
            log.warning(
                "evaluation excerpts cropped from %g s to %.2f s, the length of the shortest "
                "track %s, so that they batch without padding",
                seq_dur,
                shortest.seconds,
                shortest.name,
            )
            frames = shortest.frames
        return frames

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
