"""The unit of inference: a trained separator, waveform in, stems out.

    from xslicq import Separator
    sep = Separator.from_checkpoint("model.ckpt", device="cpu")
    stems = sep.separate(audio, sample_rate)   # audio (channels, samples) or (samples,)
                                                # -> {"vocals": (channels, samples), ...}
    sep = Separator.from_checkpoint("model.ckpt", engine="onnx")   # network in onnxruntime

Any sample rate from 8 kHz to 384 kHz (resampled to the model's and back; others with
``any_rate=True``), mono (upmixed, and the stems mixed back down) and any length, in
bounded memory: a causal model (``experiment=stream``) is streamed slice by slice with its
network's state carried through the song (:class:`TorchEngine`, the engine of
``python -m xslicq.stream``, so both give the same stems), any other model separates
overlapping chunks that are cross-faded. The input checks, the chunks, their cross-fade and
the resampling are shared with the torch-free separator of an exported network,
:class:`xslicq.inference.OnnxSeparator` (:class:`xslicq.inference.ChunkedSeparator`).
"""

from __future__ import annotations

import torch

from .checkpoint import load_system
from .checks import SAMPLE_RATE_RANGE, check_sample_rate
from .errors import SeparationInputError
from .export import onnx_bytes
from .inference import OnnxNetwork, check_chunking
from .torch_separation import TorchEngine, TorchSeparator, streams

__all__ = [
    "ENGINES",
    "SAMPLE_RATE_RANGE",
    "SeparationInputError",
    "Separator",
    "TorchEngine",
    "TorchSeparator",
    "check_sample_rate",
    "engine_network",
    "streams",
]

ENGINES = ("torch", "onnx", "tensorrt")  # what runs the network (the rest is torch)


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
    if engine == "tensorrt":
        from .tensorrt import TensorRTNetwork

        return TensorRTNetwork.from_onnx(
            onnx_bytes(system, stream=False),  # the whole-song network, even of a causal one
            device=next(system.parameters()).device,
            max_slices=system.transform.nb_slices(max_samples),
        )
    # a causal network exports as its stream step, which from zero state is also the
    # whole-song network
    return TorchOnnxNetwork(OnnxNetwork(onnx_bytes(system), device="cpu"))


class TorchOnnxNetwork:
    """An :class:`xslicq.inference.OnnxNetwork` on torch tensors: matrix (B, C, F, S, T) ->
    masks (B, J, C, F, S, T) on the matrix's device, and a causal network's ``step`` and
    ``initial_state`` (the state stays NumPy) for :class:`TorchEngine`."""

    def __init__(self, network):
        self.network = network
        self.streaming = network.streaming

    def __call__(self, matrix: torch.Tensor) -> torch.Tensor:
        masks = self.network(matrix.detach().float().cpu().numpy())
        return torch.from_numpy(masks).to(matrix.device)

    def initial_state(self):
        return self.network.initial_state(1)

    def step(self, matrix: torch.Tensor, state):
        masks, state = self.network.step(matrix.detach().float().cpu().numpy(), state)
        return torch.from_numpy(masks).to(matrix.device), state


class Separator(TorchSeparator):
    """A trained :class:`~xslicq.system.SeparationSystem` wrapped for inference
    (:class:`~xslicq.torch_separation.TorchSeparator`: chunks cross-faded on the system's
    device, a causal model's song streamed), its network run by ``engine``.

    Args:
        system, chunk_seconds, overlap_seconds: as for
            :class:`~xslicq.torch_separation.TorchSeparator`.
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
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)
        chunk = int(chunk_seconds * int(system.transform.sample_rate))
        network = engine_network(system.eval(), engine, chunk)
        super().__init__(system, chunk_seconds, overlap_seconds, network=network)
        self.engine = engine

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", **kwargs) -> Separator:
        """Rebuild the separator of a training checkpoint (its config is stored inside;
        :func:`xslicq.checkpoint.load_system`). An unusable ``device`` is a
        :class:`~xslicq.errors.DeviceError`; a missing, damaged or foreign checkpoint a
        :class:`~xslicq.errors.CheckpointError` (both configuration errors).
        ``device="auto"`` picks CUDA when there is a GPU; ``kwargs`` go to the constructor
        (``chunk_seconds``, ``overlap_seconds``, ``engine``)."""
        return cls(load_system(path, device), **kwargs)
