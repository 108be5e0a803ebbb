"""The LightningDataModule: splits, datasets and loaders for any MUSDB18-HQ-layout folder.

Every config value is checked when the module is built (:mod:`.checks`), before any work.
With ``synthetic`` set (the ``data=synthetic*`` configs), ``prepare_data`` first generates
the offline synthetic set into ``root`` if it is not there yet, resumes it if its render
was interrupted, and reuses it afterwards; it never writes into a folder that is not a
synthetic set of this project. Without ``synthetic`` (``data=musdb``) nothing is written:
a missing ``root`` is an error that says how to set it.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from . import SOURCES, checks
from .checks import LOADERS
from .datasets import EpochSampler, EvalDataset, ResumableLoader, TrainDataset
from .tracks import DatasetError, find_tracks


class MusdbDataModule(pl.LightningDataModule):
    """Training, validation and test data from ``root``.

    Args:
        root: dataset folder in MUSDB18-HQ layout.
        sample_rate: expected sample rate of every file.
        targets: sources to separate, a subset of vocals, drums, bass, other.
        seq_dur, samples_per_track, random_mix, gain, channel_swap, skip_silent,
            silence_db: training segments (see :class:`TrainDataset`).
        val_seq_dur, val_chunks: validation excerpts per track, all of one length
            (``val_seq_dur`` seconds, cropped to the shortest validation track, never
            padded; see :class:`EvalDataset`); ``val_seq_dur=None``: whole tracks.
        batch_size, num_workers, pin_memory, persistent_workers: loader settings.
        loader: ``default`` (PyTorch DataLoader) or ``dali`` (NVIDIA DALI on a GPU).
        synthetic: parameters of :func:`xslicq.data.synthetic.generate_dataset` (tracks,
            seconds, seed, test_tracks, valid_tracks, soundfont, workers, progress, force)
            to create ``root`` when it does not exist yet; ``None`` for a real dataset.
        seed: seed of all training randomness.
        name: a short name of the data set (the config sets the folder's name).

    Raises:
        DataConfigError: a bad value; the message names its key (``data.batch_size``).
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
        self.root = Path(checks.root("data.root", root)).expanduser()
        sample_rate = checks.integer("data.sample_rate", sample_rate, 1)
        self.targets = checks.targets("data.targets", targets)
        seq_dur = checks.positive("data.seq_dur", seq_dur)
        self.sample_rate, self.seq_dur = sample_rate, seq_dur
        self.samples_per_track = checks.integer("data.samples_per_track", samples_per_track, 1)
        self.train_kwargs = dict(
            random_mix=checks.boolean("data.random_mix", random_mix),
            gain=checks.gain("data.gain", gain),
            channel_swap=checks.boolean("data.channel_swap", channel_swap),
            skip_silent=checks.boolean("data.skip_silent", skip_silent),
            silence_db=checks.decibels("data.silence_db", silence_db),
            seed=checks.integer("data.seed", seed, 0),
        )
        val_seq_dur = checks.positive("data.val_seq_dur", val_seq_dur, allow_none=True)
        val_chunks = checks.integer("data.val_chunks", val_chunks, 1)
        batch_size = checks.integer("data.batch_size", batch_size, 1)
        num_workers = checks.integer("data.num_workers", num_workers, 0)
        pin_memory = checks.boolean("data.pin_memory", pin_memory)
        persistent_workers = checks.boolean("data.persistent_workers", persistent_workers)
        loader = checks.choice("data.loader", loader, LOADERS)
        synthetic = checks.synthetic("data.synthetic", synthetic, sample_rate, seq_dur)
        if name is not None and not isinstance(name, str):
            raise checks.DataConfigError(f"data.name must be a string or null, got {name!r}")
        self.name = name or self.root.name
        self.val_seq_dur, self.val_chunks = val_seq_dur, val_chunks
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.loader, self.synthetic, self.seed = loader, synthetic, self.train_kwargs["seed"]
        self.train_set = self.val_set = self.test_set = None

    def prepare_data(self) -> None:
        """Generate (or resume, or reuse) the synthetic set; check a real dataset's root."""
        if self.synthetic is None:
            self._check_root()
            return
        from .synthetic import SyntheticSetExists, generate_dataset

        try:
            generate_dataset(self.root, sample_rate=self.sample_rate, **self.synthetic)
        except SyntheticSetExists as err:
            raise DatasetError(_refusal(err)) from err

    def _check_root(self) -> None:
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise DatasetError(
                f"data.root={self.root} {what}: set data.root to your MUSDB18-HQ "
                "folder (ROOT/{train,test}/<track>/<stem>.wav), or use data=synthetic for "
                "the offline synthetic set"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.synthetic is None:
            self._check_root()
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
        self._check_batches()
        workers = self.num_workers
        return ResumableLoader(
            self.train_set,
            sampler=EpochSampler(len(self.train_set), self.seed),
            progress=self._train_progress,
            batch_size=self.batch_size,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            drop_last=True,
        )

    def _check_batches(self) -> None:
        """:class:`~xslicq.data.checks.DataConfigError` when an epoch cannot fill one batch per
        process (the loader drops incomplete batches, so the epoch would train nothing)."""
        world = self.trainer.world_size if self.trainer is not None else 1
        excerpts = len(self.train_set)
        if excerpts // world < self.batch_size:
            raise checks.DataConfigError(
                f"an epoch has {excerpts} training excerpts (data.samples_per_track="
                f"{self.samples_per_track} x {len(self.train_set.tracks)} tracks), "
                f"{excerpts // world} per process with {world} process(es): fewer than "
                f"data.batch_size={self.batch_size}, so not one batch is drawn; raise "
                "data.samples_per_track or lower data.batch_size"
            )

    def _train_progress(self) -> tuple[int, int] | None:
        """(training batches done in this epoch, batches per epoch) from the trainer."""
        trainer = self.trainer
        if trainer is None:
            return None
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return int(done), int(trainer.num_training_batches)

    def val_dataloader(self):
        return self._loader(self.val_set, 1 if self.val_seq_dur is None else self.batch_size)

    def test_dataloader(self):
        return self._loader(self.test_set, 1)


def _refusal(err) -> str:
    """The message for a ``data.root`` that the synthetic generator refused."""
    if err.replaceable:
        return (
            f"data.root={err.out} holds a synthetic set of xslicq that does not match "
            f"data.synthetic ({err.reason}); choose another data.root, delete that folder, or "
            "add +data.synthetic.force=true (once) to render it again"
        )
    return (
        f"data.root={err.out} is not empty and is not a synthetic set made by xslicq, so "
        "nothing is generated into it: for a MUSDB18-HQ folder use data=musdb "
        f"data.root={err.out}; otherwise choose a new or empty data.root"
    )
