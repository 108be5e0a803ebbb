"""Train a separator: ``python -m xslicq.train [overrides]``.

    python -m xslicq.train                                  # synthetic data, CPU, defaults
    python -m xslicq.train transform=cqlog loss=sdr_mix model=xumx_matrix
    python -m xslicq.train data=musdb data.root=/path/MUSDB18-HQ trainer=gpu
    python -m xslicq.train resume=outputs/train/<run>            # continue that run in place
    python -m xslicq.train resume=outputs/train/<run> trainer.max_epochs=500
    python -m xslicq.train ckpt_path=<run>/checkpoints/last.ckpt  # from a checkpoint, new folder
    python -m xslicq.train -m hparams_search=train_optuna       # Optuna sweep

``train(cfg)`` is a plain function (tests call it); ``main`` returns the metric that a
sweep optimises (``optimized_metric``, ``val/sdr_best``). A run stopped by SIGINT or
SIGTERM writes ``checkpoints/last.ckpt`` after the current batch and exits with
128 + the signal number (130, 143) and the command that resumes it; the resumed run
reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from .callbacks import (
    AtomicCheckpointIO,
    TrainingInterrupted,
    remove_stale_temp_files,
    resume_command,
)
from .checkpoint import ARCHITECTURE_KEYS, check_compatible, read_checkpoint
from .checks import is_int, is_number
from .cli import run_command
from .config import check_device, override_arg
from .data import SOURCES
from .errors import CheckpointError, ConfigError, DataConfigError, XslicqError
from .quiet import quiet_third_party
from .system import SeparationSystem

log = logging.getLogger(__name__)

__all__ = [  # ConfigError, CheckpointError and read_checkpoint live in xslicq.errors and
    # xslicq.checkpoint; they stay importable here, where they were defined before
    "ARCHITECTURE_KEYS",
    "CheckpointError",
    "ConfigError",
    "check_compatible",
    "main",
    "read_checkpoint",
    "resumed_config",
    "train",
    "validate_config",
    "validate_transform",
]

CONF_DIR = Path(__file__).resolve().parent / "conf"  # a link to the repository's conf/


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc's malloc reuse freed memory instead of handing it back to the kernel.

    A CPU training step allocates and frees tensors of tens of MiB many times; glibc maps
    each block above its mmap threshold afresh and unmaps it on free, so every step pays
    the page faults of filling new pages (experiments/bench_training.py measures a step
    with and without this: results/training.md). This serves blocks up to ``mmap_threshold``
    (glibc's maximum, 32 MiB on 64-bit) from the heap and keeps up to ``trim_threshold``
    of free heap, so later steps reuse pages already mapped; the process's peak memory
    is unchanged, its resident memory stays near the peak.

    Returns:
        True when both settings took effect (Linux with glibc), False elsewhere.
    """
    import ctypes

    if not 0 < mmap_threshold <= 32 << 20:
        raise ValueError(f"mmap_threshold must be in (0, 32 MiB], got {mmap_threshold}")
    if not 0 <= trim_threshold < 1 << 31:
        raise ValueError(f"trim_threshold must be in [0, 2 GiB), got {trim_threshold}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(
        mallopt(m_trim_threshold, trim_threshold)
    )


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate_config(cfg: DictConfig) -> None:
    """Stop before any work with one clear message on values out of range (the data
    values are checked by the DataModule, the network's by its constructor)."""
    lr = cfg.optimizer.get("lr")
    _check(
        is_number(lr, finite=True) and lr > 0, f"optimizer.lr must be a positive number, got {lr!r}"
    )
    wd = cfg.optimizer.get("weight_decay", 0.0)
    _check(
        is_number(wd, finite=True) and wd >= 0,
        f"optimizer.weight_decay must be a number >= 0, got {wd!r}",
    )
    if cfg.get("scheduler") and "factor" in cfg.scheduler:
        f = cfg.scheduler.factor
        _check(
            is_number(f, finite=True) and 0 < f < 1,
            f"scheduler.factor must be in (0, 1), got {f!r}",
        )
    seed = cfg.get("seed")
    _check(
        seed is None or (is_int(seed) and seed >= 0),
        f"seed must be an integer >= 0 or null, got {seed!r}",
    )
    threads = cfg.get("threads")
    _check(
        threads is None or (isinstance(threads, int) and threads >= 1),
        f"threads must be an integer >= 1 or null, got {threads!r}",
    )
    keep = cfg.get("keep_freed_memory", False)
    _check(isinstance(keep, bool), f"keep_freed_memory must be true or false, got {keep!r}")
    trainer = cfg.trainer
    epochs = trainer.get("max_epochs")
    _check(
        epochs is None or (isinstance(epochs, int) and (epochs >= 1 or epochs == -1)),
        f"trainer.max_epochs must be an integer >= 1 (or -1: no limit), got {epochs!r}",
    )
    steps = trainer.get("max_steps")
    _check(
        steps is None or (is_int(steps) and (steps >= 1 or steps == -1)),
        f"trainer.max_steps must be an integer >= 1 (or -1: no limit), got {steps!r}",
    )
    clip = trainer.get("gradient_clip_val")
    _check(
        clip is None or (is_number(clip, finite=True) and clip >= 0),
        f"trainer.gradient_clip_val must be a number >= 0 or null, got {clip!r}",
    )
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = trainer.get(key)
        _check(
            value is None or (is_number(value, finite=True) and value > 0),
            f"trainer.{key} must be a positive fraction or number of batches, got {value!r}",
        )
    check_device(trainer.get("accelerator"), "trainer.accelerator")
    unknown = [t for t in cfg.data.targets if t not in SOURCES]
    if unknown or not cfg.data.targets:
        raise ConfigError(
            f"unknown target names {list(unknown or cfg.data.targets)} in "
            f"data.targets; choose from {', '.join(SOURCES)}"
        )
    if not cfg.data.seq_dur > 0:
        raise ConfigError(f"data.seq_dur must be positive, got {cfg.data.seq_dur}")


def validate_transform(cfg: DictConfig, transform) -> None:
    """Stop with one clear message when the transform does not fit the data config."""
    if hasattr(transform, "sllen") and getattr(transform, "scale_name", "") != "stft":
        seq = int(round(cfg.data.seq_dur * transform.sample_rate))
        if seq < transform.sllen:
            raise ConfigError(
                f"data.seq_dur={cfg.data.seq_dur} s ({seq} samples) is shorter than one slice "
                f"of the transform (sllen={transform.sllen} samples, "
                f"{transform.sllen / transform.sample_rate:.2f} s): raise data.seq_dur or "
                "lower transform.sllen"
            )
    backend = getattr(transform, "backend", "torch")
    accelerator = str((cfg.get("trainer") or {}).get("accelerator", "auto"))
    wanted = {"numpy": ("cpu",), "cupy": ("gpu", "cuda")}.get(backend)
    if wanted and accelerator != "auto" and accelerator not in wanted:
        fix = "trainer=cpu" if backend == "numpy" else "trainer=gpu"
        raise ConfigError(
            f"transform.backend={backend} computes on the "
            f"{'CPU' if backend == 'numpy' else 'GPU'} but trainer.accelerator={accelerator}: "
            f"use {fix}, or transform.backend=torch (either device)"
        )
    if transform.sample_rate != cfg.data.sample_rate:
        raise ConfigError(
            f"transform.sample_rate={transform.sample_rate} differs from "
            f"data.sample_rate={cfg.data.sample_rate}"
        )


def config_key_message(error: Exception, cfg: DictConfig) -> str:
    """``error``'s message with the config group of the value it names: the networks name
    their arguments (``hidden must be a positive integer, got 0``), the command line names
    them ``model.hidden``."""
    message = str(error)
    word = message.split(" ", 1)[0]
    for group in ("model", "system", "loss"):
        node = cfg.get(group)
        if isinstance(node, DictConfig) and word in node:
            return f"{group}.{message}"
    return message


def instantiate_list(cfg) -> list:
    """Instantiate every ``_target_`` entry of a config group dict (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(v) for v in cfg.values() if v and "_target_" in v]


def instantiate_data(node):
    """The DataModule of ``cfg.data``; its own value checks surface as :class:`ConfigError`
    (Hydra would wrap them in an InstantiationException)."""
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, DataConfigError):
            raise ConfigError(str(cause)) from None
        raise


def _group_names() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def resumed_config(cfg: DictConfig, overrides=()) -> DictConfig:
    """The config of ``resume=<run folder>``: the run's own ``.hydra/config.yaml`` with the
    command line's ``overrides`` applied on top (their values taken from ``cfg``, the
    config Hydra composed with them), ``ckpt_path`` set to its ``checkpoints/last.ckpt``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    folder = Path(str(cfg.resume))
    record = folder / ".hydra" / "config.yaml"
    last = folder / "checkpoints" / "last.ckpt"
    if not record.is_file():
        raise CheckpointError(f"resume={folder}: not a run folder ({record} is missing)")
    if not last.is_file():
        raise CheckpointError(
            f"resume={folder}: the run has no checkpoints/last.ckpt yet (it stopped before "
            "its first epoch ended); start it again without resume"
        )
    saved = OmegaConf.load(record)
    groups = _group_names()
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in ("resume", "ckpt_path") or key.startswith("hydra"):
            continue
        with open_dict(saved):
            if key in groups:
                saved[key] = cfg[key]
            else:
                OmegaConf.update(saved, key, OmegaConf.select(cfg, key), force_add=True)
    with open_dict(saved):
        saved.resume, saved.ckpt_path = str(folder), str(last)
    return saved


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Train (and optionally test) as configured. Returns ``(metrics, objects)``.

    Raises :class:`~xslicq.callbacks.TrainingInterrupted` when a signal stopped training
    (after writing ``last.ckpt``)."""
    quiet_third_party()
    validate_config(cfg)
    checkpoint = read_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    if cfg.get("keep_freed_memory", False) and not keep_freed_memory():
        log.info("keep_freed_memory: not a glibc malloc here; left as it is")
    datamodule = instantiate_data(cfg.data)
    try:
        system = SeparationSystem.from_config(cfg)
    except ValueError as error:  # a value the network refuses (model.hidden=0, ...)
        raise ConfigError(config_key_message(error, cfg)) from None
    validate_transform(cfg, system.transform)
    if checkpoint is not None:
        check_compatible(checkpoint["xslicq"].get("config") or {}, system.config, cfg.ckpt_path)
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        # the configured bar (callbacks.progress_bar) goes with it: Lightning refuses both
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    for callback in callbacks:
        if getattr(callback, "dirpath", None):
            remove_stale_temp_files(callback.dirpath)
    loggers = instantiate_list(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    if trainer.is_global_zero:  # rank 0 writes the logs (the others hold no writer)
        for logger in loggers:
            log_hparams(logger, _flat_hparams(cfg), cfg.get("optimized_metric"))

    if cfg.get("train", True):
        datamodule.prepare_data()
        if cfg.get("ckpt_path") is None and system.init_stats_batches:
            datamodule.setup("fit")
            loader = datamodule.train_dataloader()
            batches = [b for _, b in zip(range(system.init_stats_batches), loader)]
            system.init_normalization(batches)
        trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"}
    if checkpoint is not None and trainer.global_step == checkpoint.get("global_step"):
        best = float(checkpoint["xslicq"].get("sdr_best", math.nan))
        log.warning(
            "nothing to train: %s had already finished (epoch %d, step %d, best val/sdr "
            "%.3f); raise trainer.max_epochs (now %s), trainer.max_steps (now %s) or "
            "trainer.max_time (now %s) to go on",
            cfg.ckpt_path,
            checkpoint.get("epoch", -1),
            trainer.global_step,
            best,
            cfg.trainer.get("max_epochs"),
            cfg.trainer.get("max_steps"),
            cfg.trainer.get("max_time"),
        )
        metrics.setdefault("val/sdr_best", best)
    if cfg.get("test", False):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or "best"
        trainer.test(
            system,
            datamodule=datamodule,
            ckpt_path=best if cfg.get("train", True) else cfg.get("ckpt_path"),
        )
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k != "step"})
    objects = {
        "cfg": cfg,
        "system": system,
        "datamodule": datamodule,
        "trainer": trainer,
        "transform": system.transform,
    }
    return metrics, objects


def log_hparams(logger, params: dict, metric: str | None) -> None:
    """The config in TensorBoard's hparams tab with ``metric`` as its column, without
    writing a value for it (Lightning's ``log_hyperparams(params, metrics)`` would log a
    placeholder point of the metric at step 0). Other loggers get ``log_hyperparams``."""
    from pytorch_lightning.loggers import TensorBoardLogger

    if not isinstance(logger, TensorBoardLogger) or not metric:
        logger.log_hyperparams(params)
        return
    from torch.utils.tensorboard.summary import hparams

    logger.log_hyperparams(params)  # hparams.yaml beside the events
    writer = logger.experiment._get_file_writer()
    for summary in hparams(params, {metric: 0.0}):  # the value is not written
        writer.add_summary(summary)


def _flat_hparams(cfg: DictConfig) -> dict:
    """The config flattened to ``group/key: value`` scalars for TensorBoard's hparams tab."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}/")
            elif isinstance(value, (int, float, str, bool)) or value is None:
                flat[name] = "null" if value is None else value
            else:
                flat[name] = str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return {k: v for k, v in flat.items() if not k.startswith(("hydra", "paths"))}


def report(metrics: dict, trainer: pl.Trainer) -> None:
    """Log (to the console and the run's train.log) the final metrics, where the run is and
    the commands that continue it and evaluate its best checkpoint."""
    if metrics:
        log.info(
            "final metrics:\n%s", "\n".join(f"  {k}: {metrics[k]:.6g}" for k in sorted(metrics))
        )
    run = Path(trainer.default_root_dir).resolve()
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    log.info("run folder: %s", run)
    if (run / "checkpoints" / "last.ckpt").is_file():
        log.info("resume with: %s", resume_command(run))
    if best:
        checkpoint = override_arg("checkpoint", Path(best).resolve())
        log.info("evaluate with: python -m xslicq.evaluate %s", checkpoint)


def metric_value(metrics: dict, name: str) -> float:
    if name not in metrics:
        raise KeyError(
            f"optimized_metric {name!r} was never logged; logged metrics: {sorted(metrics)}"
        )
    return float(metrics[name])


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; returns ``optimized_metric`` for a sweep. In a sweep an error fails that trial
    only: the sweeper records it with its reason and goes on. In a single run a failure is
    one ``error:`` line (:func:`xslicq.cli.run_command`): exit status 2 for a bad value
    (:class:`~xslicq.errors.ConfigError`), 1 for a failure while training, 128 + the
    signal's number for SIGINT or SIGTERM (after writing ``checkpoints/last.ckpt``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    single = HydraConfig.get().mode == RunMode.RUN

    def work():
        run_cfg = cfg
        if run_cfg.get("resume"):
            run_cfg = resumed_config(run_cfg, HydraConfig.get().overrides.task)
        try:
            return run_cfg, *train(run_cfg)
        except TrainingInterrupted as stop:
            if rank_zero_only.rank > 0:  # stopped with rank 0, which reports; a non-zero exit
                raise SystemExit(0) from None  # here would make Lightning kill rank 0 first
            log.warning("interrupted: %s", stop)
            raise

    # in a sweep the trial's error goes to the sweeper, a signal stops the sweep
    handled = (XslicqError, OSError, TrainingInterrupted) if single else (TrainingInterrupted,)
    status, result = run_command(work, handled)
    if status:
        raise SystemExit(status)
    cfg, metrics, objects = result
    if rank_zero_only.rank == 0:
        report(metrics, objects["trainer"])
    if cfg.get("optimized_metric"):
        if single and cfg.optimized_metric not in metrics:
            # a run that never validated (trainer=overfit validates every 10th epoch) is
            # not an error on its own; a sweep's trial without its metric is (it fails)
            log.warning(
                "%s was never logged (no validation ran: trainer.max_epochs=%s, "
                "check_val_every_n_epoch=%s)",
                cfg.optimized_metric,
                cfg.trainer.get("max_epochs"),
                cfg.trainer.get("check_val_every_n_epoch"),
            )
            return None
        value = metric_value(metrics, cfg.optimized_metric)
        if rank_zero_only.rank == 0:
            log.info("%s = %.3f", cfg.optimized_metric, value)
        return value
    return None


if __name__ == "__main__":
    main()
