"""Train a separator: ``python -m xslicq.train [overrides]``.

    python -m xslicq.train                                  # synthetic data, CPU, defaults
    python -m xslicq.train transform=cqlog loss=sdr_mix model=xumx_matrix
    python -m xslicq.train data=musdb data.root=/path/MUSDB18-HQ trainer=gpu
    python -m xslicq.train ckpt_path=outputs/train/<run>/checkpoints/last.ckpt   # resume
    python -m xslicq.train -m hparams_search=train_optuna                       # Optuna sweep

``train(cfg)`` is a plain function (tests call it); ``main`` returns the metric that a
sweep optimises (``optimized_metric``, ``val/sdr_best``).
"""

from __future__ import annotations

import logging
import math

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration value is out of range; the message names it."""


def validate_config(cfg: DictConfig) -> None:
    """Stop before training with one clear message on values out of range."""
    from .data import SOURCES

    lr = cfg.optimizer.get("lr")
    if lr is None or not lr > 0:
        raise ConfigError(f"optimizer.lr must be positive, got {lr}")
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
    if transform.sample_rate != cfg.data.sample_rate:
        raise ConfigError(
            f"transform.sample_rate={transform.sample_rate} differs from "
            f"data.sample_rate={cfg.data.sample_rate}"
        )


def instantiate_list(cfg) -> list:
    """Instantiate every ``_target_`` entry of a config group dict (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(v) for v in cfg.values() if v and "_target_" in v]


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Train (and optionally test) as configured. Returns ``(metrics, objects)``."""
    from .callbacks import AtomicCheckpointIO
    from .system import SeparationSystem

    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    validate_config(cfg)
    system = SeparationSystem.from_config(cfg)
    validate_transform(cfg, system.transform)
    datamodule = hydra.utils.instantiate(cfg.data)
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = instantiate_list(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    for logger in loggers:
        logger.log_hyperparams(_flat_hparams(cfg), {cfg.optimized_metric: math.nan})

    if cfg.get("train", True):
        datamodule.prepare_data()
        if cfg.get("ckpt_path") is None and system.init_stats_batches:
            datamodule.setup("fit")
            loader = datamodule.train_dataloader()
            batches = [b for _, b in zip(range(system.init_stats_batches), loader)]
            system.init_normalization(batches)
        trainer.fit(system, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", False):
        trainer.test(
            system,
            datamodule=datamodule,
            ckpt_path="best" if cfg.get("train", True) else cfg.get("ckpt_path"),
        )
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    objects = {
        "cfg": cfg,
        "system": system,
        "datamodule": datamodule,
        "trainer": trainer,
        "transform": system.transform,
    }
    return metrics, objects


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


def metric_value(metrics: dict, name: str) -> float:
    if name not in metrics:
        raise KeyError(
            f"optimized_metric {name!r} was never logged; logged metrics: {sorted(metrics)}"
        )
    return float(metrics[name])


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; returns ``optimized_metric`` for a sweep. In a sweep an error fails that trial
    only: the sweeper records it with its reason and goes on."""
    metrics, _ = train(cfg)
    if cfg.get("optimized_metric"):
        value = metric_value(metrics, cfg.optimized_metric)
        log.info("%s = %.3f", cfg.optimized_metric, value)
        return value
    return None


if __name__ == "__main__":
    main()
