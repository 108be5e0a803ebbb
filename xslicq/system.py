"""The LightningModule: wires transform -> matrix -> network -> masks -> inverse -> loss.

Data flow of :meth:`SeparationSystem.separate` (``B`` batch, ``J`` targets, ``C``
channels, ``L`` samples), in the order of ARCHITECTURE.md::

    mixture (B, C, L)
      -> transform              ragged complex blocks (B, C, rows, S, M)
      -> |.|, RaggedToMatrix    (B, C, F, S, T) magnitudes (or the ragged blocks, or frames)
      -> model                  masks in [0, 1] per target
      -> RaggedToMatrix.inverse masks on every block's grid (B, J, C, rows, S, M)
      -> mask * mixture         (optionally Wiener-EM refinement)
      -> transform.inverse      estimates (B, J, C, L)

The network knows nothing about audio and the transform has no parameters; this
module only wires the stages and logs.
"""

from __future__ import annotations

import math
import random
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch

from .data import SOURCES
from .transform import RaggedToMatrix
from .transform.backend import multiply


def _model_class(factory):
    return factory.func if isinstance(factory, partial) else factory


def model_input_form(factory) -> str:
    """How a model reads the mixture: ``matrix`` (B, C, F, S, T), ``frames`` (B, C, F, S*T)
    or ``ragged`` (list of blocks), from the model class's ``input_form`` attribute."""
    return getattr(_model_class(factory), "input_form", "matrix")


def model_columns_per_second(factory) -> float | None:
    """The time grid a network asks for (its class's ``columns_per_second``)."""
    return getattr(_model_class(factory), "columns_per_second", None)


def network_columns(transform, columns_per_second: float | None) -> int | None:
    """Matrix columns per slice that give the network ``columns_per_second`` of audio.

    A slice starts every ``transform.slice_hop`` samples, so ``T`` columns per slice are
    ``T * sample_rate / slice_hop`` columns per second. ``T`` is the power of two nearest to the
    wanted value (on a log scale), at least 2 and at most the finest block's time size
    (above it the matrix would only interpolate). ``None`` keeps the finest block's size.
    Every scale and slice length thus gives the network a comparable number of frames.
    """
    if columns_per_second is None:
        return None
    if isinstance(columns_per_second, bool) or not (
        isinstance(columns_per_second, (int, float))
        and columns_per_second > 0
        and math.isfinite(columns_per_second)
    ):
        raise ValueError(
            f"columns_per_second must be a positive number (matrix columns per "
            f"second of audio), got {columns_per_second!r}"
        )
    finest = max(m for _, m in transform.block_shapes)
    wanted = columns_per_second * transform.slice_hop / transform.sample_rate
    return int(min(max(2 ** round(math.log2(wanted)), 2), finest))


def _plain_config(cfg) -> dict:
    """The config as plain containers for checkpoints, resolved; outside a Hydra run (a
    benchmark, a notebook) the groups that need Hydra's run-time values (``trainer``'s
    output folder, callbacks) are kept unresolved."""
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError

    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError:
        raw, plain = OmegaConf.to_container(cfg, resolve=False), {}
        for key in cfg:
            try:
                value = cfg[key]
                plain[key] = (
                    OmegaConf.to_container(value, resolve=True)
                    if OmegaConf.is_config(value)
                    else value
                )
            except InterpolationResolutionError:
                plain[key] = raw[key]
        return plain


def apply_masks(coefs: list, masks: list) -> list:
    """The one place masks meet the mixture: ragged mixture blocks ``(B, C, rows, S, M)``
    times per-target ragged masks ``(B, J, C, rows, S, M)`` -> estimates of the same shape
    as the masks. A mask of ones returns the mixture for every target exactly."""
    return [multiply(c[:, None], m) for c, m in zip(coefs, masks)]


def build_model(factory, transform, r2m: RaggedToMatrix, channels: int, targets: int):
    """Complete a ``_partial_`` model config with the geometry of the transform."""
    form = model_input_form(factory)
    if form == "ragged":
        return factory(block_shapes=transform.block_shapes, channels=channels, targets=targets)
    if form == "frames":
        return factory(nb_bins=transform.nb_bins, channels=channels, targets=targets)
    return factory(nb_bins=transform.nb_bins, T=r2m.T, channels=channels, targets=targets)


class SeparationSystem(pl.LightningModule):
    """A mask-based separator around a fixed, exactly invertible transform.

    Args:
        transform: :class:`~xslicq.transform.SliCQT` or :class:`~xslicq.transform.STFT`.
        model: network factory (``_partial_`` config) completed here with the geometry.
        loss: a loss of :mod:`xslicq.losses`.
        optimizer, scheduler: ``_partial_`` factories (params / optimizer completed here).
        targets: target names, a subset of vocals, drums, bass, other.
        columns_per_second: the network's time grid, matrix columns per second of audio
            (:func:`network_columns`); ``None``: the network's own (its class's
            ``columns_per_second``; a ragged network reads every block at its own size).
        channels: audio channels (2).
        wiener_iterations: Wiener-EM refinement iterations (0: plain masks).
        mask_sum_to_one: normalise the masks to sum to one over the targets, so the
            estimates add up to the mixture.
        config: the run's resolved config (stored in checkpoints to rebuild the separator).
        log_media: log spectrogram images and audio of a validation clip every epoch.
        init_stats_batches: training batches that initialise the network's input
            normalisation before training (:meth:`init_normalization`; 0: none).
    """

    def __init__(
        self,
        transform,
        model,
        loss,
        optimizer,
        scheduler=None,
        targets=SOURCES,
        columns_per_second: float | None = None,
        channels: int = 2,
        wiener_iterations: int = 0,
        mask_sum_to_one: bool = False,
        config: dict | None = None,
        log_media: bool = True,
        monitor: str = "val/sdr",
        init_stats_batches: int = 0,
    ):
        super().__init__()
        self.targets = tuple(targets)
        unknown = [t for t in self.targets if t not in SOURCES]
        if unknown or not self.targets:
            raise ValueError(
                f"unknown target names {unknown or list(self.targets)}; choose "
                f"from {', '.join(SOURCES)}"
            )
        if wiener_iterations < 0:
            raise ValueError(f"wiener_iterations must be >= 0, got {wiener_iterations}")
        if init_stats_batches < 0:
            raise ValueError(f"init_stats_batches must be >= 0, got {init_stats_batches}")
        self.transform = transform
        self.form = model_input_form(model)
        if columns_per_second is None:
            columns_per_second = model_columns_per_second(model)
        T = network_columns(transform, columns_per_second) if self.form != "ragged" else None
        self.r2m = RaggedToMatrix(transform, T=T)
        self.model = build_model(model, transform, self.r2m, channels, len(self.targets))
        self.loss = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.wiener_iterations, self.mask_sum_to_one = wiener_iterations, mask_sum_to_one
        self.config, self.log_media, self.monitor = config, log_media, monitor
        self.init_stats_batches = int(init_stats_batches)
        self.sdr_best = -math.inf
        self._val_sdr: list[torch.Tensor] = []
        self._media = None

    @classmethod
    def from_config(cls, cfg, training: bool = True) -> SeparationSystem:
        """The system of a run configuration: the composed ``train`` config, or the one a
        checkpoint stores. The one way every entry point, benchmark and test builds it.

        Args:
            cfg: a DictConfig (or dict) with ``transform``, ``model`` (the network, a
                ``_partial_`` config), ``system`` (the wiring: ``conf/system/``), ``loss``,
                ``data.targets`` and, for training, ``optimizer`` and ``scheduler``.
            training: also build the optimizer and scheduler factories.
        """
        from hydra.utils import instantiate
        from omegaconf import DictConfig, OmegaConf

        if not isinstance(cfg, DictConfig):
            cfg = OmegaConf.create(cfg)
        if "net" in cfg.model:
            raise ValueError(
                "this config nests the network under model.net (xslicq 0.1 "
                "before the system group): retrain, or move model.net to model "
                "and the wiring keys to system"
            )
        system = instantiate(cfg.system) if cfg.get("system") else partial(cls)
        optimizer = instantiate(cfg.optimizer) if training and cfg.get("optimizer") else None
        scheduler = instantiate(cfg.scheduler) if training and cfg.get("scheduler") else None
        return system(
            transform=instantiate(cfg.transform),
            model=instantiate(cfg.model),
            loss=instantiate(cfg.loss),
            optimizer=optimizer,
            scheduler=scheduler,
            targets=list(cfg.data.targets),
            config=_plain_config(cfg),
            log_media=cfg.get("log_media", True),
        )

    @property
    def columns_per_second(self) -> float:
        """The network's actual time grid: matrix columns per second of audio."""
        return self.r2m.T * self.transform.sample_rate / self.transform.slice_hop

    # ------------------------------------------------------------ separation
    def masks(self, mags: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mixture magnitudes (ragged) -> per-target masks (B, J, C, rows, S, M) per block."""
        j = len(self.targets)
        if self.form == "ragged":
            masks = self.model(mags)
        else:
            matrix = self.r2m(mags)  # (B, C, F, S, T)
            b, c, f, s, t = matrix.shape
            if self.form == "frames":
                out = self.model(self.r2m.flatten(matrix)).reshape(b, j, c, f, s, t)
            else:
                out = self.model(matrix)  # (B, J, C, F, S, T)
            ragged = self.r2m.inverse(out.reshape(b * j, c, f, s, t))
            masks = [m.reshape((b, j) + tuple(m.shape[1:])) for m in ragged]
        if self.mask_sum_to_one:
            masks = [m / m.sum(1, keepdim=True).clamp_min(1e-8) for m in masks]
        return masks

    def separate(self, mixture: torch.Tensor):
        """(B, C, L) mixture -> (estimates (B, J, C, L), estimate coefficients, masks)."""
        coefs = self.transform(mixture)
        masks = self.masks([c.abs() for c in coefs])
        est = apply_masks(coefs, masks)
        if self.wiener_iterations:
            from .filtering import wiener

            est = wiener(est, coefs, self.wiener_iterations)
        b, j = mixture.shape[0], len(self.targets)
        flat = [e.reshape((b * j,) + tuple(e.shape[2:])) for e in est]
        waves = self.transform.inverse(flat, length=mixture.shape[-1])
        return waves.reshape(b, j, *mixture.shape[1:]), est, masks

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """(B, C, L) mixture -> (B, J, C, L) estimates."""
        return self.separate(mixture)[0]

    # -------------------------------------------------------------- training
    def compute_loss(self, batch):
        """``(mixture (B, C, L), references (B, J, C, L))`` -> (loss, parts, estimates)."""
        mixture, references = batch
        estimates, est_coefs, masks = self.separate(mixture)
        b, j = references.shape[:2]
        ref_coefs = self.transform(references.reshape(b * j, *references.shape[2:]))
        ref_coefs = [r.reshape((b, j) + tuple(r.shape[1:])) for r in ref_coefs]
        loss, parts = self.loss(estimates, references, est_coefs, ref_coefs, masks)
        return loss, parts, estimates

    def common_step(self, batch, stage: str):
        loss, parts, estimates = self.compute_loss(batch)
        b = batch[0].shape[0]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage} loss is {float(loss)} at step {self.global_step}")
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=b)
        for name, value in parts.items():
            self.log(f"{stage}/{name}", value, batch_size=b)
        return loss, estimates

    def training_step(self, batch, batch_idx):
        return self.common_step(batch, "train")[0]

    def validation_step(self, batch, batch_idx):
        from .metrics import sdr_db

        _, estimates = self.common_step(batch, "val")
        self._val_sdr.append(sdr_db(estimates.float(), batch[1].float()).detach().cpu())
        if batch_idx == 0 and self.log_media:
            self._media = (
                batch[0][0].detach().cpu(),
                batch[1][0].detach().cpu(),
                estimates[0].detach().cpu(),
            )

    def on_validation_epoch_end(self):
        if not self._val_sdr:
            return
        sdr = torch.cat(self._val_sdr).float()  # (items, J)
        self._val_sdr = []
        for k, name in enumerate(self.targets):
            self.log(f"val/sdr_{name}", sdr[:, k].mean())
        mean = float(sdr.mean())
        self.log("val/sdr", mean, prog_bar=True)
        if not self.trainer.sanity_checking:
            self.sdr_best = max(self.sdr_best, mean)
        self.log("val/sdr_best", self.sdr_best if self.sdr_best > -math.inf else mean)
        if self._media is not None and not self.trainer.sanity_checking:
            self._log_media(*self._media)
        self._media = None

    def _log_media(self, mixture, references, estimates):
        from .plotting import image_to_rgb, slicq_image

        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        length = mixture.shape[-1]
        with torch.no_grad():

            def picture(x):
                image, _ = slicq_image(
                    self.transform, self.transform(x[None].float()), length, width=400
                )
                return image

            mix_img = picture(mixture)
            top = float(mix_img.max())
            rows = []
            for k, name in enumerate(self.targets):
                images = [mix_img, picture(references[k]), picture(estimates[k])]
                rows.append(np.concatenate([image_to_rgb(i, top_db=top) for i in images], axis=2))
                sr = self.transform.sample_rate
                experiment.add_audio(
                    f"val_audio/{name}",
                    estimates[k].mean(0, keepdim=True).clamp(-1, 1),
                    self.current_epoch,
                    sample_rate=sr,
                )
            grid = np.concatenate(rows, axis=1)
            experiment.add_image(
                "val/spectrograms (mixture | reference | estimate)", grid, self.current_epoch
            )

    def on_fit_start(self):
        if self.device.type == "cuda" and self.form != "ragged":
            self.model.to(memory_format=torch.channels_last)  # faster 2-D convs on GPUs

    # ------------------------------------------------------------ optimizers
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }

    # ----------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint):
        # plain tensors and Python scalars only: checkpoints load with weights_only=True
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint["xslicq"] = {
            "config": self.config,
            "sdr_best": float(self.sdr_best),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": [
                    torch.from_numpy(keys.astype(np.int64)),
                    int(pos),
                    int(has_gauss),
                    float(gauss),
                ],
                "python": random.getstate(),
            },
        }

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("xslicq", {})
        self.sdr_best = state.get("sdr_best", -math.inf)
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
            random.setstate(tuple(tuple(v) if isinstance(v, list) else v for v in rng["python"]))

    # ------------------------------------------------------ normalisation init
    @torch.no_grad()
    def init_normalization(self, batches) -> bool:
        """Initialise the model's per-bin input normalisation from mixture statistics of a
        few training batches (models with ``init_from_stats``). Returns True if done."""
        if not hasattr(self.model, "init_from_stats") or self.form == "ragged":
            return False
        values = []
        for mixture, _ in batches:
            matrix = self.r2m([c.abs() for c in self.transform(mixture)])  # (B, C, F, S, T)
            values.append(matrix.transpose(0, 2).reshape(matrix.shape[2], -1))
        values = torch.cat(values, dim=1)
        self.model.init_from_stats(values.mean(1), values.std(1).clamp_min(1e-8))
        return True
