"""The unit of inference: a trained separator, waveform in, stems out.

    from xslicq import Separator
    sep = Separator.from_checkpoint("model.ckpt", device="cpu")
    stems = sep.separate(audio, sample_rate)   # audio (channels, samples) or (samples,)
                                                # -> {"vocals": (channels, samples), ...}

Any sample rate from 8 kHz to 384 kHz (resampled to the model's and back; others with
``any_rate=True``), mono (upmixed, and the stems mixed back down) and any length: long
input is cut into overlapping chunks that are cross-faded, so memory stays bounded.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
import torch

# the sample rates separate() takes without ``any_rate=True``: below is a rate given in kHz
# or a boolean (True is 1 Hz, upsampled 44,100x), above is no audio rate in use
SAMPLE_RATE_RANGE = (8_000, 384_000)


class SeparationInputError(ValueError):
    """The audio given to the separator is not usable; the message says why."""


def _seconds(value, name: str) -> float:
    """``value`` if it is a finite number of seconds, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def check_sample_rate(sample_rate, any_rate: bool = False) -> int:
    """``sample_rate`` as an int if it is a whole number of Hz (``44100`` or ``44100.0``) in
    :data:`SAMPLE_RATE_RANGE` (``any_rate``: any positive one), else a
    :class:`SeparationInputError` naming the value and what is allowed."""
    low, high = SAMPLE_RATE_RANGE
    whole = (
        isinstance(sample_rate, numbers.Real)
        and not isinstance(sample_rate, (bool, np.bool_))
        and math.isfinite(sample_rate)
        and float(sample_rate).is_integer()
    )
    if not whole:
        raise SeparationInputError(
            f"sample_rate must be a whole number of Hz such as 44100, got {sample_rate!r} "
            f"({type(sample_rate).__name__})"
        )
    rate = int(sample_rate)
    if rate <= 0:
        raise SeparationInputError(f"sample_rate must be positive, got {sample_rate!r}")
    if not any_rate and not low <= rate <= high:
        hint = f" (a rate in kHz? {rate} kHz is {rate * 1000} Hz)"
        raise SeparationInputError(
            f"sample_rate={rate} Hz is outside {low}..{high} Hz{hint if rate < low else ''}; "
            "pass any_rate=True (separate: --any-rate) to resample from it anyway"
        )
    return rate


def _torch_device(device) -> str:
    """A torch device string for a device :func:`~xslicq.config.check_device` accepted
    (``auto``: CUDA when there is a GPU, else the CPU; Lightning's ``gpu``: CUDA)."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device == "gpu" else str(device)


class Separator(torch.nn.Module):
    """A trained :class:`~xslicq.system.SeparationSystem` wrapped for inference.

    Args:
        system: the trained system (transform, matrix form, network).
        chunk_seconds: length of the chunks long input is cut into.
        overlap_seconds: cross-fade between neighbouring chunks.
    """

    def __init__(self, system, chunk_seconds: float = 10.0, overlap_seconds: float = 1.0):
        super().__init__()
        chunk_seconds = _seconds(chunk_seconds, "chunk_seconds")
        overlap_seconds = _seconds(overlap_seconds, "overlap_seconds")
        if not chunk_seconds > 2 * overlap_seconds > 0:
            raise ValueError(
                f"need chunk_seconds > 2 * overlap_seconds > 0, got "
                f"{chunk_seconds} and {overlap_seconds}"
            )
        self.system = system.eval()
        self.targets = tuple(system.targets)
        self.sample_rate = int(system.transform.sample_rate)
        self.chunk_seconds, self.overlap_seconds = chunk_seconds, overlap_seconds

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", **kwargs) -> Separator:
        """Rebuild the separator of a training checkpoint (its config is stored inside).

        An unusable ``device`` is a :class:`~xslicq.config.DeviceError`; a missing, damaged
        or foreign checkpoint a :class:`~xslicq.train.CheckpointError` (both ValueErrors).
        ``device="auto"`` picks CUDA when there is a GPU."""
        from .config import check_device
        from .system import SeparationSystem
        from .train import CheckpointError, read_checkpoint

        check_device(device, "device")
        if Path(str(path)).is_dir():
            raise CheckpointError(
                f"checkpoint {path} is a folder, not a checkpoint file (a training run keeps "
                "its checkpoints in <run>/checkpoints/)"
            )
        state = read_checkpoint(path)  # on the CPU, weights only
        stored = state["xslicq"]
        config = stored.get("config") if isinstance(stored, dict) else None
        if config is None:
            raise CheckpointError(f"{path} is not an xslicq training checkpoint (no stored config)")
        try:
            system = SeparationSystem.from_config(config, training=False)
        except Exception as err:  # the stored config: Hydra, OmegaConf or a constructor
            raise CheckpointError(
                f"the config stored in checkpoint {path} does not build a model "
                f"({type(err).__name__}: {err}); it is damaged or from another xslicq version"
            ) from None
        try:
            system.load_state_dict(state["state_dict"])
        except (RuntimeError, TypeError, AttributeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"the weights in checkpoint {path} do not fit the model its config describes "
                f"({first}); it is damaged or from another xslicq version"
            ) from None
        return cls(system.to(_torch_device(device)), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.system.parameters()).device

    def _check(self, audio, sample_rate, any_rate: bool) -> tuple[torch.Tensor, int, bool]:
        sample_rate = check_sample_rate(sample_rate, any_rate)
        x = torch.as_tensor(np.asarray(audio) if not torch.is_tensor(audio) else audio)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise SeparationInputError(
                f"expected audio of shape (channels, samples) or "
                f"(samples,), got shape {tuple(x.shape)}"
            )
        if x.shape[0] > 2:
            raise SeparationInputError(
                f"expected mono or stereo audio, got {x.shape[0]} "
                "channels (is the array (samples, channels)?)"
            )
        if x.shape[1] == 0:
            raise SeparationInputError("the audio is empty")
        if not x.is_floating_point():
            raise SeparationInputError(f"audio must be floating point, got {x.dtype}")
        if not torch.isfinite(x).all():
            raise SeparationInputError("the audio contains NaN or inf samples")
        if float(x.abs().max()) == 0.0:
            raise SeparationInputError("the audio is silent (all samples are zero)")
        mono = x.shape[0] == 1
        return (x.repeat(2, 1) if mono else x).float(), sample_rate, mono

    @torch.no_grad()
    def separate(
        self, audio, sample_rate: int, progress: bool = False, *, any_rate: bool = False
    ) -> dict[str, np.ndarray]:
        """Separate ``audio`` (channels, samples) at ``sample_rate`` into the model's targets.

        ``sample_rate`` is a whole number of Hz in :data:`SAMPLE_RATE_RANGE` (``any_rate``:
        any positive one); anything else, like unusable audio, is a
        :class:`SeparationInputError`. Returns ``{target: (channels, samples) float32 numpy}``
        with the input's length and channel count.
        """
        x, sample_rate, mono = self._check(audio, sample_rate, any_rate)
        size = (1 if mono else 2, x.shape[-1])
        stems = {t: np.empty(size, np.float32) for t in self.targets}
        done = 0
        for span in self._spans(x, sample_rate, mono, progress):
            n = span[self.targets[0]].shape[-1]
            for t in self.targets:
                stems[t][:, done : done + n] = span[t]
            done += n
        return stems

    def separate_spans(
        self, audio, sample_rate: int, progress: bool = False, *, any_rate: bool = False
    ):
        """:meth:`separate`, one finished stretch of the stems at a time, in order: the
        input is checked now, then each ``{target: (channels, samples) float32 numpy}``
        is yielded as soon as its chunk is separated and cross-faded, so a caller that
        writes the stems as they come (``python -m xslicq.separate``) never holds a whole
        stem. Concatenated, the stretches are :meth:`separate`'s stems. Input at another
        sample rate than the model's is resampled whole (its stems are one stretch)."""
        x, sample_rate, mono = self._check(audio, sample_rate, any_rate)
        return self._spans(x, sample_rate, mono, progress)

    @torch.no_grad()
    def _spans(self, x: torch.Tensor, sample_rate: int, mono: bool, progress: bool):
        """Checked (2, N) input at ``sample_rate`` -> {target: (channels, n)} stretches."""
        n_in = x.shape[-1]
        if sample_rate == self.sample_rate:
            spans = self._chunks(x.to(self.device), progress)
        else:
            import torchaudio

            x = torchaudio.functional.resample(x, sample_rate, self.sample_rate)
            est = torch.cat(list(self._chunks(x.to(self.device), progress)), -1)  # (J, 2, N)
            est = torchaudio.functional.resample(est, self.sample_rate, sample_rate)
            if est.shape[-1] != n_in:  # resampling may round the length
                est = torch.nn.functional.pad(est, (0, max(0, n_in - est.shape[-1])))[..., :n_in]
            spans = [est]
        for est in spans:
            if mono:
                est = est.mean(1, keepdim=True)
            est = est.cpu()
            yield {t: est[j].numpy() for j, t in enumerate(self.targets)}

    def _chunks(self, x: torch.Tensor, progress: bool):
        """(2, N) -> (J, 2, n) finished stretches in order, from cross-faded chunks of
        ``chunk_seconds``: each chunk's stretch up to the next chunk's start is final once
        the previous chunk's faded tail is added."""
        n = x.shape[-1]
        chunk = int(self.chunk_seconds * self.sample_rate)
        if n <= chunk:
            yield self.system(x[None])[0]
            return
        overlap = int(self.overlap_seconds * self.sample_rate)
        step = chunk - overlap
        starts = list(range(0, max(n - overlap, 1), step))
        fade = 0.5 - 0.5 * torch.cos(
            math.pi * (torch.arange(overlap, device=x.device) + 0.5) / overlap
        )
        from tqdm import tqdm

        tail = None  # the previous chunk's faded last ``overlap`` samples
        for i, start in enumerate(
            tqdm(starts, disable=not progress, desc="separating", unit="chunk")
        ):
            piece = x[:, start : start + chunk]  # longer than overlap; chunk unless last
            est = self.system(piece[None])[0]
            w = torch.ones(piece.shape[-1], device=x.device)
            if i > 0:
                w[:overlap] = fade
            if i < len(starts) - 1:
                w[-overlap:] = 1.0 - fade  # neighbours' fades sum to one
            est = est * w
            if tail is not None:
                est[..., :overlap] += tail
            if i == len(starts) - 1:
                yield est
            else:
                tail = est[..., step:]
                yield est[..., :step]
