"""Lightning plugins and callbacks: atomic checkpoints and a graceful stop on signals."""
from __future__ import annotations

import logging
import os
import signal
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file in the target folder, flushes it to disk and
    renames it into place, so a crash or a kill never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class GracefulStop(pl.Callback):
    """On SIGINT or SIGTERM, finish the current training batch, write ``last.ckpt`` (a
    resumable checkpoint: ``ckpt_path=.../last.ckpt``) and stop training."""

    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt"):
        self.dirpath, self.filename = dirpath, filename
        self.requested: int | None = None
        self._previous = {}

    def _handler(self, signum, frame):
        self.requested = signum
        log.warning("received %s: stopping after this batch with a checkpoint",
                    signal.Signals(signum).name)

    def on_train_start(self, trainer, pl_module):
        # after Lightning's own signal connector, which would raise on SIGTERM instead
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:          # not in the main thread
                pass

    def on_train_end(self, trainer, pl_module):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def checkpoint_path(self, trainer) -> Path:
        if self.dirpath:
            return Path(self.dirpath) / self.filename
        callback = trainer.checkpoint_callback
        folder = callback.dirpath if callback is not None and callback.dirpath else \
            Path(trainer.default_root_dir) / "checkpoints"
        return Path(folder) / self.filename

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.requested is None:
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        log.warning("wrote %s; resume with ckpt_path=%s", path, path)
        trainer.should_stop = True
        self.stopped_by = self.requested
        self.requested = None
