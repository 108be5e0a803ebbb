"""Whole songs separated by a torch :class:`~xslicq.system.SeparationSystem`: the masks'
application (:func:`apply_masks`), a causal network streamed slice by slice with its state
carried (:class:`TorchEngine`) and any other network on cross-faded chunks
(:class:`TorchSeparator`).

This module sits below the system: it reads a system's attributes (``transform``, ``model``,
``masks``, ``separate``) and never imports :mod:`xslicq.system`, so the system's test stage
separates whole tracks with it exactly as :class:`xslicq.Separator` (a
:class:`TorchSeparator` that also reads checkpoints and picks an engine) does.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import StreamConfigError
from .inference import ChunkedSeparator, check_chunking
from .models.protocol import streams as model_streams
from .transform.backend import multiply

__all__ = ["TorchEngine", "TorchSeparator", "apply_masks", "streams"]


def apply_masks(coefs: list, masks: list) -> list:
    """The one place masks meet the mixture: ragged mixture blocks ``(B, C, rows, S, M)``
    times per-target ragged masks ``(B, J, C, rows, S, M)`` -> estimates of the same shape
    as the masks. A mask of ones returns the mixture for every target exactly."""
    return [multiply(c[:, None], m) for c, m in zip(coefs, masks)]


def streams(system) -> bool:
    """Whether ``system``'s network streams (:func:`xslicq.models.protocol.streams`: causal,
    with ``step`` and ``initial_state``): its song is then separated as a stream
    (:class:`TorchEngine`)."""
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
            raise StreamConfigError(
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

    def initial_state(self):
        if self.network is not None:
            return self.network.initial_state()
        return self.model.initial_state(1, device=self.device)

    def step_tensors(self, frames, state):
        """The step on tensors: ``frames`` (C, S, sllen) float32 and the network's state ->
        ``((J, C, S, sllen) separated slices, state)``; one exportable function."""
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


class TorchSeparator(ChunkedSeparator, torch.nn.Module):
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
        network: what runs the network instead of the system's model (a callable matrix ->
            masks on torch tensors, :func:`xslicq.separator.engine_network`); ``None``: the
            model. The transform, masks, Wiener-EM and inverse stay in torch. For
            separation without torch see :class:`xslicq.inference.OnnxSeparator`.
    """

    def __init__(
        self,
        system,
        chunk_seconds: float = 10.0,
        overlap_seconds: float = 1.0,
        network=None,
    ):
        super().__init__()
        chunk_seconds, overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)
        self.system = system.eval()
        self.targets = tuple(system.targets)
        self.sample_rate = int(system.transform.sample_rate)
        self.chunk_seconds, self.overlap_seconds = chunk_seconds, overlap_seconds
        self.network = network

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
