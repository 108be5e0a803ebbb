"""Lightning plugins and callbacks: atomic checkpoints, ``last.ckpt`` and a resumable stop on
signals, and HAAQI of a validation clip (the Cadenza pipeline of :mod:`xslicq.cadenza`)."""

from __future__ import annotations

import logging
import math
import os
import signal
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint

from .checks import check_int, is_number
from .config import override_arg
from .errors import CadenzaError
from .outputs import write_failure

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_GLOB = ".*.ckpt.*.tmp"  # the temporary files of AtomicCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file in the target folder, flushes it to disk and
    renames it into place, so a crash or a kill never leaves a truncated checkpoint. The
    file gets the mode an ordinary ``open`` would (0666 less the umask), not the 0600 of a
    temporary file; a temporary file left by a killed process is removed by
    :func:`remove_stale_temp_files` when a run starts or resumes in that folder."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        """A full disk or a folder that cannot be written is an
        :class:`~xslicq.outputs.OutputError` that says so (torch's zip writer reports a full
        disk as ``unexpected pos``); the checkpoint already there is kept."""
        path = Path(path)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise write_failure(err, path) from None
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise


def _link(source: Path, path: Path) -> bool:
    """Make ``path`` a hard link to ``source`` (atomically replacing it); False when the
    file system has no hard links."""
    tmp = path.with_name(f".{path.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        os.replace(tmp, path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


def remove_stale_temp_files(folder) -> list[Path]:
    """Delete half-written checkpoint temporaries (a run killed while saving) in ``folder``;
    only call it for a run's own checkpoint folder, before that run writes. Returns them."""
    stale = sorted(Path(folder).glob(TEMP_GLOB)) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
        log.warning("removed %s, a checkpoint left half-written by an earlier process", path)
    return stale


def resume_command(run) -> str:
    """The command that continues the run in folder ``run``, ready to paste in a shell."""
    return f"python -m xslicq.train {override_arg('resume', run)}"


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGINT/SIGTERM after writing ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int, step: int):
        self.signum, self.checkpoint, self.epoch, self.step = signum, Path(checkpoint), epoch, step
        name = signal.Signals(signum).name
        super().__init__(
            f"training interrupted by {name} in epoch {epoch} at step {step}; "
            f"resume with: {resume_command(self.checkpoint.parent.parent)}"
        )

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class LastCheckpoint(Checkpoint):
    """``checkpoints/last.ckpt``: written at the end of every training epoch (after its
    validation), and on SIGINT or SIGTERM after the current training batch, so a run can
    always resume where it stopped.

    One file per event: when the best-checkpoint callback (the trainer's first
    ``ModelCheckpoint``) has just written a checkpoint at this step, ``last.ckpt`` becomes
    a hard link to it instead of a second copy. On a signal the checkpoint is written, the
    partial epoch is not validated, and :class:`TrainingInterrupted` is raised (the CLI
    exits with 128 + the signal number and names the command that resumes).

    Lightning runs checkpoint callbacks after the others, in their configured order, so
    this one comes after the ``ModelCheckpoint`` listed before it.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt"):
        super().__init__()
        self.dirpath, self.filename = dirpath, filename
        self.requested: int | None = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested is not None:  # a second signal: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
        self.requested = signum
        log.warning(
            "received %s: stopping after this batch with a checkpoint", signal.Signals(signum).name
        )

    def on_train_start(self, trainer, pl_module):
        # after Lightning's own signal connector, which would raise on SIGTERM instead
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not in the main thread
                pass

    def _restore_signals(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_end(self, trainer, pl_module):
        self._restore_signals()

    def on_exception(self, trainer, pl_module, exception):
        self._restore_signals()

    def checkpoint_path(self, trainer) -> Path:
        if self.dirpath:
            return Path(self.dirpath) / self.filename
        callback = trainer.checkpoint_callback
        folder = (
            callback.dirpath
            if callback is not None and getattr(callback, "dirpath", None)
            else Path(trainer.default_root_dir) / "checkpoints"
        )
        return Path(folder) / self.filename

    def _write(self, trainer) -> Path:
        """Write ``last.ckpt`` (a hard link to the best checkpoint when that was just
        written at this step). Every rank takes the same branch: ``save_checkpoint`` is
        collective (rank 0 writes, all wait at a barrier), the link is rank 0's alone, so
        rank 0 decides and tells the others."""
        path = self.checkpoint_path(trainer)
        best = trainer.checkpoint_callback
        source = getattr(best, "_last_checkpoint_saved", "")
        linked = False
        if trainer.is_global_zero and source and Path(source).is_file():
            if getattr(best, "_last_global_step_saved", None) == trainer.global_step:
                linked = _link(Path(source), path)
        if trainer.world_size > 1:
            linked = trainer.strategy.broadcast(linked, src=0)
        if not linked:
            trainer.save_checkpoint(path, weights_only=False)  # a full one: resumable
        return path

    def on_train_epoch_end(self, trainer, pl_module):
        # after the epoch's validation and after ModelCheckpoint (which saves here too)
        if self.requested is None:
            self._write(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        signum = self.requested or 0
        if trainer.world_size > 1:  # a signal to any rank stops all of them at this batch
            signum = int(
                trainer.strategy.reduce(
                    torch.tensor(signum, device=pl_module.device), reduce_op="max"
                )
            )
        if not signum:
            return
        self.requested = None
        path = self._write(trainer)
        log.warning("wrote %s", path)
        raise TrainingInterrupted(signum, path, trainer.current_epoch, trainer.global_step)


def _loudest_window(references: np.ndarray, frames: int, hop: int) -> int:
    """Start of the ``frames``-long window whose quietest (stem, channel) is loudest.

    Args:
        references: (J, C, L) reference stems.
        frames: window length in samples; hop: spacing of the candidate starts.
    Returns:
        the start sample (0 when ``frames >= L``).
    """
    n = references.shape[-1]
    if frames >= n:
        return 0
    power = np.cumsum(
        np.concatenate(
            [np.zeros(references.shape[:-1] + (1,)), references.astype(np.float64) ** 2], axis=-1
        ),
        axis=-1,
    )
    starts = np.arange(0, n - frames + 1, max(1, hop))
    energy = power[..., starts + frames] - power[..., starts]  # (J, C, W)
    return int(starts[np.argmax(energy.reshape(-1, len(starts)).min(0))])


class HAAQICallback(pl.Callback):
    """At the end of a validation epoch, HAAQI of a clip of the first validation item.

    Takes the first validation batch's first item (mixture and references), separates it
    with ``pl_module(mixture[None])``, cuts the ``seconds``-long window in which the
    quietest stem is loudest, runs it through :func:`xslicq.cadenza.process_song` for one
    listener and logs ``val/haaqi`` (mean over stems and ears) and ``val/haaqi_<stem>``.
    Runs in the training process and blocks it: about 8 x ``seconds`` s of CPU per scored
    epoch with four stems (``every_n_epochs`` spaces it out); skipped in the sanity check.
    pyclarity and :mod:`xslicq.cadenza` are imported when the callback is built, not when
    this module is.

    Args:
        seconds: clip length in seconds.
        listener: listener id in ``listeners`` (``None``: the file's first listener, in the
            example file ``example_mild``).
        every_n_epochs: score every n-th epoch.
        listeners: CAD1 listener JSON file (``None``: the examples).
        reference: ``cad1`` or ``matched`` (see docs/cadenza.md).
        compressor: apply the baseline's compressor.
    """

    def __init__(
        self,
        seconds: float = 2.0,
        listener: str | None = None,
        every_n_epochs: int = 1,
        listeners: str | None = None,
        reference: str = "cad1",
        compressor: bool = False,
    ):
        # the Cadenza pipeline on first use: importing the callbacks stays free of it
        from .cadenza.haaqi import check_reference_mode
        from .cadenza.listeners import load_listeners, pick_listener

        super().__init__()
        if not is_number(seconds) or not seconds > 0:
            raise CadenzaError(f"HAAQICallback: seconds must be positive, got {seconds!r}")
        check_int(every_n_epochs, "HAAQICallback: every_n_epochs", 1, CadenzaError)
        self.seconds, self.every_n_epochs = float(seconds), every_n_epochs
        self.reference, self.compressor = check_reference_mode(reference), bool(compressor)
        self.listener = pick_listener(load_listeners(listeners), listener)
        self.last_scores: dict | None = None
        self._item = None

    def _due(self, trainer) -> bool:
        return (
            not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if batch_idx == 0 and dataloader_idx == 0 and self._due(trainer):
            self._item = (batch[0][0].detach().cpu(), batch[1][0].detach().cpu())

    def on_validation_epoch_end(self, trainer, pl_module):
        item, self._item = self._item, None
        if item is None or not self._due(trainer):
            return
        scores = self.score(pl_module, *item)
        self.last_scores = scores
        if math.isnan(scores["mean"]):
            warnings.warn(
                "HAAQICallback: every reference of the clip is silent; val/haaqi not logged",
                stacklevel=2,
            )
            return
        pl_module.log("val/haaqi", scores["mean"])
        for stem, value in scores["per_stem"].items():
            if not math.isnan(value):
                pl_module.log(f"val/haaqi_{stem}", value)

    def score(self, pl_module, mixture, references) -> dict:
        """HAAQI of the module's estimates for one item (a clip of ``seconds``).

        Args:
            pl_module: a :class:`~xslicq.system.SeparationSystem` (``pl_module(mixture[None])``
                gives (1, J, C, L) estimates; ``.targets``, ``.transform.sample_rate``).
            mixture: (C, L) tensor; references: (J, C, L) tensor.
        Returns:
            :func:`xslicq.cadenza.summarize` of the rows (``mean``, ``per_stem``, ...).
        """
        from .cadenza.pipeline import process_song  # on first use, as in __init__
        from .cadenza.reports import summarize

        sample_rate = int(pl_module.transform.sample_rate)
        with torch.no_grad():
            device = getattr(pl_module, "device", torch.device("cpu"))
            estimates = pl_module(mixture[None].to(device))[0].float().cpu().numpy()
        refs = references.float().cpu().numpy()
        if refs.shape[1] == 1:  # mono: both ears hear it
            refs, estimates = np.repeat(refs, 2, 1), np.repeat(estimates, 2, 1)
        frames = min(refs.shape[-1], int(round(self.seconds * sample_rate)))
        start = _loudest_window(refs, frames, sample_rate // 4)
        cut = slice(start, start + frames)
        targets = list(pl_module.targets)
        rows, _ = process_song(
            {t: estimates[j, :, cut] for j, t in enumerate(targets)},
            {t: refs[j, :, cut] for j, t in enumerate(targets)},
            self.listener,
            sample_rate,
            compressor=self.compressor,
            reference=self.reference,
            song="validation",
        )
        return summarize(rows)
