"""The unit of inference: a trained separator, waveform in, stems out.

    from xslicq import Separator
    sep = Separator.from_checkpoint("model.ckpt", device="cpu")
    stems = sep.separate(audio, sample_rate)   # audio (channels, samples) or (samples,)
                                                # -> {"vocals": (channels, samples), ...}

Any sample rate (resampled to the model's and back), mono (upmixed, and the stems
mixed back down) and any length: long input is cut into overlapping chunks that are
cross-faded, so memory stays bounded.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class SeparationInputError(ValueError):
    """The audio given to the separator is not usable; the message says why."""


class Separator(torch.nn.Module):
    """A trained :class:`~xslicq.system.SeparationSystem` wrapped for inference.

    Args:
        system: the trained system (transform, matrix form, network).
        chunk_seconds: length of the chunks long input is cut into.
        overlap_seconds: cross-fade between neighbouring chunks.
    """

    def __init__(self, system, chunk_seconds: float = 10.0, overlap_seconds: float = 1.0):
        super().__init__()
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
        An unusable ``device`` is a :class:`~xslicq.config.DeviceError` (a ValueError)."""
        from .config import check_device
        from .system import SeparationSystem

        check_device(device, "device")
        try:
            state = torch.load(str(path), map_location=device, weights_only=False)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"checkpoint {path} does not exist") from err
        config = state.get("xslicq", {}).get("config")
        if config is None:
            raise ValueError(f"{path} is not an xslicq training checkpoint (no stored config)")
        system = SeparationSystem.from_config(config, training=False)
        system.load_state_dict(state["state_dict"])
        return cls(system.to(device), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.system.parameters()).device

    def _check(self, audio, sample_rate) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(np.asarray(audio) if not torch.is_tensor(audio) else audio)
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
            raise SeparationInputError(
                f"sample_rate must be a positive integer, got {sample_rate!r}"
            )
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
        return (x.repeat(2, 1) if mono else x).float(), mono

    @torch.no_grad()
    def separate(self, audio, sample_rate: int, progress: bool = False) -> dict[str, np.ndarray]:
        """Separate ``audio`` (channels, samples) at ``sample_rate`` into the model's targets.

        Returns ``{target: (channels, samples) float32 numpy}`` with the input's length and
        channel count.
        """
        import torchaudio

        x, mono = self._check(audio, sample_rate)
        n_in = x.shape[-1]
        if sample_rate != self.sample_rate:
            x = torchaudio.functional.resample(x, sample_rate, self.sample_rate)
        est = self._chunked(x.to(self.device), progress)  # (J, 2, N)
        if sample_rate != self.sample_rate:
            est = torchaudio.functional.resample(est, self.sample_rate, sample_rate)
        if est.shape[-1] != n_in:  # resampling may round the length
            est = torch.nn.functional.pad(est, (0, max(0, n_in - est.shape[-1])))[..., :n_in]
        if mono:
            est = est.mean(1, keepdim=True)
        return {t: est[j].cpu().numpy() for j, t in enumerate(self.targets)}

    def _chunked(self, x: torch.Tensor, progress: bool) -> torch.Tensor:
        """(2, N) -> (J, 2, N), in cross-faded chunks of ``chunk_seconds``."""
        n = x.shape[-1]
        chunk = int(self.chunk_seconds * self.sample_rate)
        if n <= chunk:
            return self.system(x[None])[0]
        overlap = int(self.overlap_seconds * self.sample_rate)
        step = chunk - overlap
        starts = list(range(0, max(n - overlap, 1), step))
        out = torch.zeros(len(self.targets), *x.shape, device=x.device)
        fade = 0.5 - 0.5 * torch.cos(
            math.pi * (torch.arange(overlap, device=x.device) + 0.5) / overlap
        )
        from tqdm import tqdm

        for i, start in enumerate(
            tqdm(starts, disable=not progress, desc="separating", unit="chunk")
        ):
            piece = x[:, start : start + chunk]
            est = self.system(piece[None])[0]
            w = torch.ones(piece.shape[-1], device=x.device)
            if i > 0:
                w[:overlap] = fade
            if i < len(starts) - 1 and piece.shape[-1] > overlap:
                w[-overlap:] = 1.0 - fade  # neighbours' fades sum to one
            out[..., start : start + piece.shape[-1]] += est * w
        return out
