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
from .models.protocol import streams as model_streams
from .streamer import StreamError

__all__ = [
    "ENGINES",
    "SAMPLE_RATE_RANGE",
    "SeparationInputError",
    "Separator",
    "TorchEngine",
    "check_sample_rate",
]

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

    if engine == "tensorrt":
        from .tensorrt import TensorRTNetwork

        return TensorRTNetwork.from_onnx(
            onnx_bytes(system, stream=False),  # the whole-song network, even of a causal one
            device=next(system.parameters()).device,
            max_slices=system.transform.nb_slices(max_samples),
        )
    from .inference import OnnxNetwork

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


def streams(system) -> bool:
    """Whether ``system``'s network is causal (``model.causal``, with a ``step``): its song
    is then separated as a stream (:class:`TorchEngine`)."""
    return model_streams(getattr(system, "model", None))


class TorchEngine:
    """The :class:`~xslicq.streamer.StreamEngine` of a trained
    :class:`~xslicq.system.SeparationSystem` with a causal network: the engine of
    ``python -m xslicq.stream --model model.ckpt`` and of :class:`Separator` for a causal
    model. Its step is :meth:`SeparationSystem.separate <xslicq.system.SeparationSystem.separate>`
    on the next slices, the network's state carried::

        frames (C, S, N) * slice window -> SliCQT.analyse_slices  (1, C, rows, S, M) per block
          -> SeparationSystem.masks, the network's step            (1, J, C, rows, S, M)
             (state carried)
          -> mask * mixture, SliCQT.synthesise_slices              (J, C, S, N)

    Args:
        system: the system; its network must be causal (``model.causal``) with a
            ``step(x, state) -> (masks, state)`` method; Wiener-EM is not used.
        network: another runner of the network's step (:class:`TorchOnnxNetwork` of the
            exported stream step); ``None``: the model's own ``step``.
    """

    def __init__(self, system, network=None):
        model = system.model
        if not streams(system) or system.form == "ragged":
            name = type(model).__name__
            raise StreamError(
                f"the model's network ({name}) is not causal: its masks depend on the whole "
                "song, so it cannot stream; train a causal one with python -m xslicq.train "
                "experiment=stream"
            )
        self.system = system.eval()
        transform = system.transform
        self.transform, self.model, self.network = transform, model, network
        self.sample_rate = int(transform.sample_rate)
        self.channels = int(model.nb_channels)
        self.targets = tuple(system.targets)
        self.sllen, self.trlen = int(transform.sllen), int(transform.trlen)
        self.lookahead = 0
        self.skipped_wiener = int(system.wiener_iterations)
        self.device = next(system.parameters()).device
        self._window = transform.slice_window.float().to(self.device)

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu") -> TorchEngine:
        """The engine of a training checkpoint (:meth:`Separator.from_checkpoint`)."""
        return cls(Separator.from_checkpoint(path, device=device).system)

    def initial_state(self):
        if self.network is not None:
            return self.network.initial_state()
        return self.model.initial_state(1, device=self.device)

    def step_tensors(self, frames, state):
        """The step on tensors: ``frames`` (C, S, sllen) float32 and the network's state ->
        ``((J, C, S, sllen) separated slices, state)``; one exportable function."""
        from .system import apply_masks

        coefs = self.transform.analyse_slices((frames * self._window)[None])
        mags = [c.abs() for c in coefs]  # (1, C, rows, S, M) per block
        masks, state = self._masks(mags, state)
        est = apply_masks(coefs, masks)  # (1, J, C, rows, S, M)
        return self.transform.synthesise_slices([e[0] for e in est]), state

    def _masks(self, mags, state):
        """:meth:`SeparationSystem.masks <xslicq.system.SeparationSystem.masks>` with the
        network's state carried from ``state`` to the state returned."""
        system, j, after = self.system, len(self.targets), []

        def network(matrix):  # (B, C, F, S, T) -> masks (B, J, C, F, S, T)
            if self.network is not None:
                out, new = self.network.step(matrix, state)
            else:
                b, c, f, s, t = matrix.shape
                x = system.r2m.flatten(matrix) if system.form == "frames" else matrix
                out, new = self.model.step(x, state)
                out = out.reshape(b, j, c, f, s, t)
            after.append(new)
            return out

        return system.masks(mags, network), after[0]

    def step(self, frames: np.ndarray, state) -> tuple[np.ndarray, object]:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
            slices, state = self.step_tensors(x, state)
        return slices.cpu().numpy(), state


class Separator(ChunkedSeparator, torch.nn.Module):
    """A trained :class:`~xslicq.system.SeparationSystem` wrapped for inference.

    :meth:`~xslicq.inference.ChunkedSeparator.separate` and
    :meth:`~xslicq.inference.ChunkedSeparator.separate_spans` (the stems a chunk at a time)
    are shared with the torch-free :class:`xslicq.inference.OnnxSeparator`; this class runs
    each chunk on the system's device. A causal model (``model.causal``, without Wiener-EM)
    is streamed instead: :class:`TorchEngine` on ``chunk_seconds`` of input at a time, the
    network's state carried through the song, the stems of ``python -m xslicq.stream``.

    Args:
        system: the trained system (transform, matrix form, network).
        chunk_seconds: length of the chunks long input is cut into (a causal model's: of the
            input given to the stream at a time).
        overlap_seconds: cross-fade between neighbouring chunks (not used for a causal
            model: its stream has no seams).
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

    def _stream_engine(self) -> TorchEngine | None:
        """A causal model's :class:`TorchEngine` (on the engine's network; not TensorRT's,
        which has no step), unless Wiener-EM is on (it is not causal): the song is then
        streamed, as ``python -m xslicq.stream`` streams it."""
        if not streams(self.system) or self.wiener_iterations:
            return None
        if self.network is None:
            return TorchEngine(self.system)
        if getattr(self.network, "streaming", False):
            return TorchEngine(self.system, self.network)
        return None

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
