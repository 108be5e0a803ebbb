"""The unit of inference: a trained separator, waveform in, stems out.

    from xslicq import Separator
    sep = Separator.from_checkpoint("model.ckpt", device="cpu")
    stems = sep.separate(audio, sample_rate)   # audio (channels, samples) or (samples,)
                                                # -> {"vocals": (channels, samples), ...}
    sep = Separator.from_checkpoint("model.ckpt", engine="onnx")   # network in onnxruntime

Any sample rate from 8 kHz to 384 kHz (resampled to the model's and back; others with
``any_rate=True``), mono (upmixed, and the stems mixed back down) and any length: long
input is cut into overlapping chunks that are cross-faded, so memory stays bounded.
The input checks, the chunks, their cross-fade and the resampling are shared with the
torch-free separator of an exported network, :class:`xslicq.inference.OnnxSeparator`
(:class:`xslicq.inference.ChunkedSeparator`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .inference import (
    SAMPLE_RATE_RANGE,
    ChunkedSeparator,
    SeparationInputError,
    check_chunking,
    check_sample_rate,
)

__all__ = ["ENGINES", "SAMPLE_RATE_RANGE", "SeparationInputError", "Separator", "check_sample_rate"]

ENGINES = ("torch", "onnx", "tensorrt")  # what runs the network (the rest is torch)


def _torch_device(device) -> str:
    """A torch device string for a device :func:`~xslicq.config.check_device` accepted
    (``auto``: CUDA when there is a GPU, else the CPU; Lightning's ``gpu``: CUDA)."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device == "gpu" else str(device)


def engine_network(system, engine: str, max_samples: int = 441_000):
    """What runs ``system``'s network for ``engine``: ``None`` for torch (the system's own
    model), else a callable matrix (B, C, F, S, T) -> masks (B, J, C, F, S, T) on torch
    tensors that runs the network exported to ONNX (:func:`xslicq.export.onnx_bytes`) with
    onnxruntime (on the CPU) or as a TensorRT engine (on the system's CUDA device, built for
    chunks of up to ``max_samples``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "torch":
        return None
    if engine == "tensorrt":
        from .tensorrt import check_tensorrt

        check_tensorrt()  # before the export: one clear error where it cannot run
    from .export import onnx_bytes

    model = onnx_bytes(system, stream=False)  # the whole-song network, even of a causal one
    if engine == "tensorrt":
        from .tensorrt import TensorRTNetwork

        return TensorRTNetwork.from_onnx(
            model,
            device=next(system.parameters()).device,
            max_slices=system.transform.nb_slices(max_samples),
        )
    from .inference import OnnxNetwork

    network = OnnxNetwork(model, device="cpu")

    def run(matrix: torch.Tensor) -> torch.Tensor:
        masks = network(matrix.detach().float().cpu().numpy())
        return torch.from_numpy(masks).to(matrix.device)

    return run


class Separator(ChunkedSeparator, torch.nn.Module):
    """A trained :class:`~xslicq.system.SeparationSystem` wrapped for inference.

    :meth:`~xslicq.inference.ChunkedSeparator.separate` and
    :meth:`~xslicq.inference.ChunkedSeparator.separate_spans` (the stems a chunk at a time)
    are shared with the torch-free :class:`xslicq.inference.OnnxSeparator`; this class runs
    each chunk on the system's device.

    Args:
        system: the trained system (transform, matrix form, network).
        chunk_seconds: length of the chunks long input is cut into.
        overlap_seconds: cross-fade between neighbouring chunks.
        engine: what runs the network: ``torch`` (the system's model), ``onnx`` (the
            network exported to ONNX, run by onnxruntime on the CPU) or ``tensorrt`` (a
            TensorRT engine built from that ONNX network; needs the tensorrt package and
            the system on a CUDA GPU). The transform, masks, Wiener-EM and inverse stay in
            torch. For separation without torch see :class:`xslicq.inference.OnnxSeparator`.
    """

    def __init__(
        self,
        system,
        chunk_seconds: float = 10.0,
        overlap_seconds: float = 1.0,
        engine: str = "torch",
    ):
        super().__init__()
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)
        self.system = system.eval()
        self.targets = tuple(system.targets)
        self.sample_rate = int(system.transform.sample_rate)
        self.chunk_seconds, self.overlap_seconds = chunk_seconds, overlap_seconds
        self.engine = engine
        chunk = int(chunk_seconds * self.sample_rate)
        self.network = engine_network(self.system, engine, chunk)

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", **kwargs) -> Separator:
        """Rebuild the separator of a training checkpoint (its config is stored inside).

        An unusable ``device`` is a :class:`~xslicq.config.DeviceError`; a missing, damaged
        or foreign checkpoint a :class:`~xslicq.train.CheckpointError` (both ValueErrors).
        ``device="auto"`` picks CUDA when there is a GPU; ``kwargs`` go to the constructor
        (``chunk_seconds``, ``overlap_seconds``, ``engine``)."""
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

    def _check(self, audio, sample_rate, any_rate: bool) -> tuple[np.ndarray, int, bool]:
        """:meth:`~xslicq.inference.ChunkedSeparator._check`, for torch tensors too."""
        if torch.is_tensor(audio):  # NumPy has no bfloat16
            audio = audio.detach().cpu()
            audio = (audio.float() if audio.dtype == torch.bfloat16 else audio).numpy()
        return super()._check(audio, sample_rate, any_rate)

    @property
    def wiener_iterations(self) -> int:
        """Wiener-EM iterations after the masks (settable): the system's setting, as
        :attr:`xslicq.inference.OnnxSeparator.wiener_iterations` is the exported one's."""
        return self.system.wiener_iterations

    @wiener_iterations.setter
    def wiener_iterations(self, value: int) -> None:
        self.system.wiener_iterations = value

    def _run(self, mixture: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, J, C, L) with the engine's network (torch: the system's own)."""
        if self.network is None:
            return self.system(mixture)
        return self.system.separate(mixture, network=self.network)[0]

    @torch.no_grad()
    def _separate_chunk(self, mixture: np.ndarray) -> np.ndarray:
        """(1, 2, n) -> (J, 2, n) on the system's device."""
        x = torch.from_numpy(np.ascontiguousarray(mixture)).to(self.device)
        return self._run(x)[0].cpu().numpy()
