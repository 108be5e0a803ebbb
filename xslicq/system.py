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

import json
import math
import random
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from .checks import check_positive_number, is_int
from .data import SOURCES
from .errors import ConfigError, EvaluationError
from .evaluation import METRICS, check_metric, score_arrays, summarize, write_summary
from .evaluation.reports import json_safe, median
from .filtering import wiener
from .metrics import sdr_db
from .models.protocol import check_model, check_model_class, normalises_from_stats
from .outputs import write_atomic
from .torch_separation import TorchSeparator, apply_masks
from .transform import RaggedToMatrix
from .transform.backend import magnitude

# A media event of the default config (10 s validation clip, 4 targets, cqlog) measured
# 9.44 MB: 9 mono 16-bit WAV clips of 0.88 MB and a 1024 x 1024 PNG of 1.50 MB (the STFT's:
# 9.21 MB). Every 20 epochs, 100 epochs log 5 of them: 47 MB of event files.
LOG_MEDIA_EVERY_N_EPOCHS = 20
MEDIA_SECONDS = 10.0  # the longest stretch of the validation clip logged as media
MEDIA_PIXELS = 1024  # the largest side of the logged picture grid
MEDIA_COLUMNS = 320  # time columns of every spectrogram of the grid (about a panel's width)


def check_test_metric(metric, package: bool = False) -> str:
    """``metric`` if it names a metric of :mod:`xslicq.evaluation` (``package``: and the
    package it needs is installed), else a clear error naming the ``test_metric`` key."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ConfigError(f"test_metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if package:
        try:
            check_metric(metric)
        except EvaluationError as err:
            raise ConfigError(f"test_metric={metric}: {err}") from None
    return metric


def model_input_form(factory) -> str:
    """How a model reads the mixture: ``matrix`` (B, C, F, S, T), ``frames`` (B, C, F, S*T)
    or ``ragged`` (list of blocks), the ``input_form`` of the model protocol
    (:mod:`xslicq.models.protocol`); a class that does not follow it is a config error."""
    return check_model_class(factory).input_form


def model_columns_per_second(factory) -> float | None:
    """The time grid a network asks for (its class's ``columns_per_second``)."""
    return check_model_class(factory).columns_per_second


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
    what = "a positive number (matrix columns per second of audio)"
    columns_per_second = check_positive_number(columns_per_second, "columns_per_second", what=what)
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


def write_test_results(summary: dict, folder, checkpoint=None) -> Path:
    """The test stage's files in ``folder``: ``results.json`` (the summary of
    :func:`xslicq.evaluation.summarize` and the checkpoint's path; NaN as ``null``),
    ``summary.md``, ``summary.csv`` and ``tracks.csv`` (:func:`xslicq.evaluation.write_summary`)
    and ``scores.png`` (:func:`xslicq.plotting.scores_figure`). Returns results.json's path."""
    from .plotting import scores_figure  # matplotlib: on first use

    folder = Path(folder)
    write_summary(summary, folder, title="Test scores")
    results = {"checkpoint": None if checkpoint is None else str(checkpoint)}
    path = write_atomic(
        folder / "results.json",
        json.dumps(json_safe({**results, **summary}), indent=2, allow_nan=False),
    )
    scores_figure(summary, "SDR").savefig(folder / "scores.png")
    return path


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
        log_media: log a labelled spectrogram grid and the audio (mixture, and reference
            and estimate per target) of the first validation clip to TensorBoard.
        log_media_every_n_epochs: log media on epochs 0, N, 2N, ... (an integer >= 1).
        test_metric: the score of the test stage (:meth:`test_step`), a metric of
            :mod:`xslicq.evaluation` (``sdr``, ``museval`` or ``fast_bss_eval``).
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
        log_media_every_n_epochs: int = LOG_MEDIA_EVERY_N_EPOCHS,
        test_metric: str = "sdr",
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
        n = log_media_every_n_epochs
        if not is_int(n) or n < 1:
            raise ConfigError(
                f"log_media_every_n_epochs must be an integer >= 1 (media on epochs 0, N, "
                f"2N, ...), got {n!r}"
            )
        check_test_metric(test_metric)
        self.transform = transform
        self.form = model_input_form(model)
        if columns_per_second is None:
            columns_per_second = model_columns_per_second(model)
        T = network_columns(transform, columns_per_second) if self.form != "ragged" else None
        self.r2m = RaggedToMatrix(transform, T=T)
        self.model = build_model(model, transform, self.r2m, channels, len(self.targets))
        check_model(self.model)  # a ModelProtocolError (a ConfigError) naming the attribute
        self.loss = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.wiener_iterations, self.mask_sum_to_one = wiener_iterations, mask_sum_to_one
        self.config, self.log_media, self.monitor = config, log_media, monitor
        self.log_media_every_n_epochs, self.test_metric = n, test_metric
        self.init_stats_batches = int(init_stats_batches)
        self.sdr_best = -math.inf
        self._val_sdr: list[torch.Tensor] = []
        self._media = None
        self._test_scores: dict[str, dict] = {}

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
        test_metric = cfg.get("test_metric", "sdr")
        if training and cfg.get("test"):
            check_test_metric(test_metric, package=True)  # before hours of training
        return system(
            transform=instantiate(cfg.transform),
            model=instantiate(cfg.model),
            loss=instantiate(cfg.loss),
            optimizer=optimizer,
            scheduler=scheduler,
            targets=list(cfg.data.targets),
            config=_plain_config(cfg),
            log_media=cfg.get("log_media", True),
            log_media_every_n_epochs=cfg.get("log_media_every_n_epochs", LOG_MEDIA_EVERY_N_EPOCHS),
            test_metric=test_metric,
        )

    @property
    def columns_per_second(self) -> float:
        """The network's actual time grid: matrix columns per second of audio."""
        return self.r2m.T * self.transform.sample_rate / self.transform.slice_hop

    # ------------------------------------------------------------ separation
    def masks(self, mags: list[torch.Tensor], network=None) -> list[torch.Tensor]:
        """Mixture magnitudes (ragged) -> per-target masks (B, J, C, rows, S, M) per block.

        ``network``: another runner of the model (an ONNX or TensorRT engine,
        :func:`xslicq.separator.engine_network`) that maps the matrix (B, C, F, S, T) to
        masks (B, J, C, F, S, T) whatever the model's input form; ``None``: the model."""
        j = len(self.targets)
        if self.form == "ragged" and network is None:
            masks = self.model(mags)
        else:
            matrix = self.r2m(mags)  # (B, C, F, S, T)
            b, c, f, s, t = matrix.shape
            if network is not None:
                out = network(matrix)
            elif self.form == "frames":
                out = self.model(self.r2m.flatten(matrix)).reshape(b, j, c, f, s, t)
            else:
                out = self.model(matrix)  # (B, J, C, F, S, T)
            ragged = self.r2m.inverse(out.reshape(b * j, c, f, s, t))
            masks = [m.reshape((b, j) + tuple(m.shape[1:])) for m in ragged]
        if self.mask_sum_to_one:
            masks = [m / m.sum(1, keepdim=True).clamp_min(1e-8) for m in masks]
        return masks

    def separate(self, mixture: torch.Tensor, network=None):
        """(B, C, L) mixture -> (estimates (B, J, C, L), estimate coefficients, masks);
        ``network``: see :meth:`masks`."""
        return self._separate(mixture, network)[:3]

    def _separate(self, mixture: torch.Tensor, network=None):
        """:meth:`separate`'s three results and the mixture magnitudes (ragged)."""
        coefs = self.transform(mixture)
        mags = [magnitude(c) for c in coefs]
        masks = self.masks(mags, network)
        est = apply_masks(coefs, masks)
        if self.wiener_iterations:
            est = wiener(est, coefs, self.wiener_iterations)
        b, j = mixture.shape[0], len(self.targets)
        flat = [e.reshape((b * j,) + tuple(e.shape[2:])) for e in est]
        waves = self.transform.inverse(flat, length=mixture.shape[-1])
        return waves.reshape(b, j, *mixture.shape[1:]), est, masks, mags

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """(B, C, L) mixture -> (B, J, C, L) estimates."""
        return self.separate(mixture)[0]

    # -------------------------------------------------------------- training
    def compute_loss(self, batch):
        """``(mixture (B, C, L), references (B, J, C, L))`` -> (loss, parts, estimates)."""
        mixture, references = batch
        estimates, est_coefs, masks, mags = self._separate(mixture)
        b, j = references.shape[:2]
        ref_coefs = self.transform(references.reshape(b * j, *references.shape[2:]))
        ref_coefs = [r.reshape((b, j) + tuple(r.shape[1:])) for r in ref_coefs]
        loss, parts = self.score(estimates, references, est_coefs, ref_coefs, masks, mags)
        return loss, parts, estimates

    def score(self, estimates, references, est_coefs, ref_coefs, masks, mags):
        """The loss of a separation: ``(loss, parts)``.

        Args: the results of :meth:`_separate` (estimates (B, J, C, L), their ragged
        coefficients and masks (B, J, C, rows, S, M), the mixture magnitudes
        (B, C, rows, S, M)), the references (B, J, C, L) and their coefficients.

        Only what the loss needs is computed: a loss of magnitudes gets the estimates'
        magnitudes as ``|mask| |mixture|`` (what ``|mask * mixture|`` is, without a complex
        modulus and its gradient per target) unless Wiener-EM changed the estimates; the
        mask-sum penalty is skipped while training with weight 0 (it is logged in
        validation).
        """
        if self.loss.magnitudes_only and not self.wiener_iterations:
            est_coefs = [m * a[:, None] for m, a in zip(masks, mags)]  # the loss takes |.|
        penalised = self.loss.mask_sum > 0 or not torch.is_grad_enabled()
        loss, parts = self.loss(
            estimates, references, est_coefs, ref_coefs, masks if penalised else None
        )
        if not penalised:
            parts.pop("mask_sum")
        return loss, parts

    def common_step(self, batch, stage: str):
        loss, parts, estimates = self.compute_loss(batch)
        b = batch[0].shape[0]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {float(loss.detach())} at step {self.global_step}"
            )
        # validation's values are epoch means: over all ranks when there are several
        sync = stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=b, sync_dist=sync)
        for name, value in parts.items():
            self.log(f"{stage}/{name}", value, batch_size=b, sync_dist=sync)
        return loss, estimates

    def training_step(self, batch, batch_idx):
        loss = self.common_step(batch, "train")[0]
        # the epoch's mean as well: an epoch shorter than log_every_n_steps logs no step value
        self.log(
            "train/loss_epoch",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch[0]),
            sync_dist=True,
        )
        return loss

    # ------------------------------------------------------------ validation
    def media_due(self) -> bool:
        """Whether this validation logs media: ``log_media``, a logger that takes images,
        not the sanity check, and an epoch 0, N, 2N, ... (``log_media_every_n_epochs``)."""
        experiment = getattr(self.logger, "experiment", None)
        return (
            self.log_media
            and hasattr(experiment, "add_image")
            and not self.trainer.sanity_checking
            and self.current_epoch % self.log_media_every_n_epochs == 0
        )

    def validation_step(self, batch, batch_idx):
        _, estimates = self.common_step(batch, "val")
        self._val_sdr.append(sdr_db(estimates.float(), batch[1].float()).detach().cpu())
        if batch_idx == 0 and self.media_due():
            n = min(batch[0].shape[-1], int(MEDIA_SECONDS * self.transform.sample_rate))
            self._media = tuple(x[0, ..., :n].detach().float() for x in (*batch, estimates))

    def on_validation_epoch_end(self):
        if not self._val_sdr:
            return
        sdr = torch.cat(self._val_sdr).float()  # (items, J)
        self._val_sdr = []
        # every rank scores the whole validation set: the means over ranks agree with each
        # rank's, and every rank keeps the same running best
        for k, name in enumerate(self.targets):
            self.log(f"val/sdr_{name}", sdr[:, k].mean(), sync_dist=True)
        mean = float(self.trainer.strategy.reduce(sdr.mean().to(self.device), reduce_op="mean"))
        self.log("val/sdr", mean, prog_bar=True, sync_dist=True)
        if not self.trainer.sanity_checking:
            # the scalars at the trainer's global_step, the step of the weights validated,
            # where the media go too (Lightning's default would be one step earlier)
            self.log("step", float(self.global_step))
            # the running best is undefined before the first real validation: never logged
            # then (and never a non-finite point, which TensorBoard draws as a gap)
            if math.isfinite(mean):
                self.sdr_best = max(self.sdr_best, mean)
            if math.isfinite(self.sdr_best):
                self.log("val/sdr_best", self.sdr_best, sync_dist=True)
        if self._media is not None:
            self._log_media(*self._media)
        self._media = None

    @torch.no_grad()
    def _log_media(self, mixture, references, estimates):
        """TensorBoard media of one validation clip, at the trainer's ``global_step``: a
        labelled spectrogram grid (rows: targets; columns: mixture | reference |
        estimate; at most ``MEDIA_PIXELS`` per side) and mono audio of the mixture and of
        every target's reference and estimate.

        Args:
            mixture: (C, L); references, estimates: (J, C, L).
        """
        from .plotting import render_figure, separation_figure, slicq_image

        experiment = self.logger.experiment
        step, sr, length = self.global_step, self.transform.sample_rate, mixture.shape[-1]

        def picture(x):  # (C, L) -> (nb_bins, MEDIA_COLUMNS) dB
            coefs = self.transform(x[None].to(self.device))
            return slicq_image(self.transform, coefs, length, width=MEDIA_COLUMNS)[0]

        def audio(tag, x):  # (C, L) -> mono in [-1, 1]
            mono = x.mean(0).clamp(-1.0, 1.0).cpu()
            experiment.add_audio(tag, mono, step, sample_rate=sr)

        mix = picture(mixture)
        rows = [[mix, picture(ref), picture(est)] for ref, est in zip(references, estimates)]
        figure = separation_figure(
            rows,
            self.targets,
            freqs=self.transform.freqs,
            seconds=length / sr,
            max_pixels=MEDIA_PIXELS,
            top_db=float(mix.max()),
        )
        experiment.add_image("val/spectrograms", render_figure(figure), step)
        audio("val_audio/mixture", mixture)
        for k, name in enumerate(self.targets):
            audio(f"val_audio/{name}/reference", references[k])
            audio(f"val_audio/{name}/estimate", estimates[k])

    # ------------------------------------------------------------------ test
    def on_test_epoch_start(self):
        self._test_scores = {}

    def _test_track_name(self, batch_idx: int) -> str:
        dataset = getattr(getattr(self.trainer, "datamodule", None), "test_set", None)
        tracks = getattr(dataset, "tracks", None)
        if tracks is not None and len(tracks) == len(dataset):  # whole tracks, in order
            return tracks[batch_idx].name
        return f"item_{batch_idx:03d}"

    def test_step(self, batch, batch_idx):
        """Score one whole test track (a batch of one) with ``test_metric``.

        The track is separated as :meth:`xslicq.Separator.separate` does it
        (:class:`~xslicq.torch_separation.TorchSeparator`: cross-faded
        chunks, full precision) and scored as :func:`xslicq.evaluation.evaluate` scores it
        (:func:`~xslicq.evaluation.score_arrays`, median over 1 s frames), so the numbers
        equal ``python -m xslicq.evaluate`` of the same checkpoint with the same metric.
        Runs on one device: with several, each would score only its share of the tracks.

        Args:
            batch: ``(mixture (1, C, N), references (1, J, C, N))``.
        """
        mixture, references = batch
        if mixture.shape[0] != 1:
            raise ValueError(
                f"test batches must hold one whole track (batch size 1), got {mixture.shape[0]}"
            )
        name = self._test_track_name(batch_idx)
        with torch.autocast(self.device.type, enabled=False):
            stems = TorchSeparator(self).separate(mixture[0].float(), self.transform.sample_rate)
        estimates = np.stack([stems[t] for t in self.targets])
        frames = score_arrays(
            references[0].float().cpu().numpy(),
            estimates,
            self.transform.sample_rate,
            self.test_metric,
            self.targets,
            name,
        )
        self._test_scores[name] = {
            t: {score: median(v) for score, v in frames[t].items()} for t in self.targets
        }

    def on_test_epoch_end(self):
        """Log ``test/<score>`` (the mean of the targets) and ``test/<score>_<target>``
        (medians over tracks) for every score the metric gives, and write the results next
        to the run: ``<default_root_dir>/test/`` (:func:`write_test_results`)."""
        if not self._test_scores:
            return
        summary = summarize(self._test_scores, self.test_metric, self.targets)
        for score in summary["scores"]:
            key = score.lower()
            for t in self.targets:
                value = summary["per_target"][t][score]
                if math.isfinite(value):  # NaN: no frame of the target was scored
                    self.log(f"test/{key}_{t}", value, sync_dist=True)
            if math.isfinite(summary["mean"][score]):
                self.log(f"test/{key}", summary["mean"][score], sync_dist=True)
        if self.trainer.is_global_zero:
            folder = Path(self.trainer.default_root_dir) / "test"
            write_test_results(summary, folder, checkpoint=self.trainer.ckpt_path)
        self._test_scores = {}

    # ------------------------------------------------------------ optimizers
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            # strict=False: epochs without validation (check_val_every_n_epoch > 1) skip it
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.monitor,
                "interval": "epoch",
                "strict": False,
            },
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
        if not normalises_from_stats(self.model) or self.form == "ragged":
            return False
        values = []
        for mixture, _ in batches:
            matrix = self.r2m([magnitude(c) for c in self.transform(mixture)])  # (B, C, F, S, T)
            values.append(matrix.transpose(0, 2).reshape(matrix.shape[2], -1))
        values = torch.cat(values, dim=1)
        self.model.init_from_stats(values.mean(1), values.std(1).clamp_min(1e-8))
        return True
