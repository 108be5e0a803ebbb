"""The LightningDataModule: splits, datasets and loaders for any MUSDB18-HQ-layout folder.

With ``synthetic`` set (the default data config), ``prepare_data`` first generates the
offline synthetic set into ``root`` if it is not there yet (and reuses it afterwards).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from . import SOURCES
from .datasets import EpochSampler, EvalDataset, TrainDataset
from .tracks import DatasetError, find_tracks

LOADERS = ("default", "dali")


class MusdbDataModule(pl.LightningDataModule):
    """Training, validation and test data from ``root``.

    Args:
        root: dataset folder in MUSDB18-HQ layout.
        sample_rate: expected sample rate of every file.
        targets: sources to separate, a subset of vocals, drums, bass, other.
        seq_dur, samples_per_track, random_mix, gain, channel_swap, skip_silent,
            silence_db: training segments (see :class:`TrainDataset`).
        val_seq_dur, val_chunks: validation excerpts per track (``None``: whole tracks).
        batch_size, num_workers, pin_memory, persistent_workers: loader settings.
        loader: ``default`` (PyTorch DataLoader) or ``dali`` (NVIDIA DALI on a GPU).
        synthetic: parameters of :func:`xslicq.data.synthetic.generate_dataset` to create
            ``root`` when it does not exist yet; ``None`` for a real dataset.
        seed: seed of all training randomness.
        name: a short name of the data set (the config sets the folder's name).
    """

    def __init__(
        self,
        root: str,
        sample_rate: int = 44100,
        targets=SOURCES,
        seq_dur: float = 2.0,
        samples_per_track: int = 64,
        random_mix: bool = True,
        gain=(0.25, 1.25),
        channel_swap: bool = True,
        skip_silent: bool = False,
        silence_db: float = -60.0,
        val_seq_dur: float | None = 10.0,
        val_chunks: int = 1,
        batch_size: int = 16,
        num_workers: int = 2,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        loader: str = "default",
        synthetic: dict | None = None,
        seed: int = 42,
        name: str | None = None,
    ):
        super().__init__()
        if loader not in LOADERS:
            raise ValueError(f"unknown data.loader {loader!r}; choose one of {', '.join(LOADERS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.root = Path(root)
        self.name = name or self.root.name
        self.targets = tuple(targets)
        self.sample_rate, self.seq_dur, self.samples_per_track = (
            sample_rate,
            seq_dur,
            samples_per_track,
        )
        self.train_kwargs = dict(
            random_mix=random_mix,
            gain=tuple(gain),
            channel_swap=channel_swap,
            skip_silent=skip_silent,
            silence_db=silence_db,
            seed=seed,
        )
        self.val_seq_dur, self.val_chunks = val_seq_dur, val_chunks
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.loader, self.synthetic, self.seed = loader, synthetic, seed
        self.train_set = self.val_set = self.test_set = None

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            from .synthetic import generate_dataset

            generate_dataset(self.root, sample_rate=self.sample_rate, **dict(self.synthetic))
        elif not self.root.is_dir():
            raise DatasetError(
                f"dataset folder {self.root} does not exist (set data.root to a "
                "MUSDB18-HQ folder, or use data=synthetic)"
            )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = TrainDataset(
                find_tracks(self.root, "train", self.sample_rate),
                self.seq_dur,
                self.samples_per_track,
                self.targets,
                **self.train_kwargs,
            )
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = EvalDataset(
                find_tracks(self.root, "valid", self.sample_rate),
                self.targets,
                self.val_seq_dur,
                self.val_chunks,
            )
        if stage in (None, "test") and self.test_set is None:
            self.test_set = EvalDataset(
                find_tracks(self.root, "test", self.sample_rate), self.targets, None
            )

    def _loader(self, dataset, batch_size, sampler=None):
        workers = self.num_workers
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            drop_last=sampler is not None,
        )

    def train_dataloader(self):
        if self.loader == "dali":
            from .dali import DaliTrainLoader

            return DaliTrainLoader(self.train_set, self.batch_size, seed=self.seed)
        return self._loader(
            self.train_set, self.batch_size, EpochSampler(len(self.train_set), self.seed)
        )

    def val_dataloader(self):
        return self._loader(self.val_set, 1 if self.val_seq_dur is None else self.batch_size)

    def test_dataloader(self):
        return self._loader(self.test_set, 1)
