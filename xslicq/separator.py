"""The unit of inference: a trained separator, waveform in, stems out.

    from xslicq import Separator
    sep = Separator.from_checkpoint("model.ckpt", device="cpu")
    stems = sep.separate(audio, sample_rate)   # audio (channels, samples) or (samples,)
                                                # -> {"vocals": (channels, samples), ...}
    sep = Separator.from_checkpoint("model.ckpt", engine="onnx")   # network in onnxruntime

Any sample rate from 8 kHz to 384 kHz (resampled to the model's and back; others with
``any_rate=True``), mono (upmixed, and the stems mixed back down) and any length: long
input is cut into overlapping chunks that are cross-faded, so memory stays bounded.
The input checks and the chunk plan are shared with the torch-free separator of an
exported network, :class:`xslicq.inference.OnnxSeparator`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .inference import (
    SAMPLE_RATE_RANGE,
    SeparationInputError,
    check_audio,
    check_chunking,
    check_sample_rate,
    chunk_plan,
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


class Separator(torch.nn.Module):
    """A trained :class:`~xslicq.system.SeparationSystem` wrapped for inference.

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

    def _check(self, audio, sample_rate, any_rate: bool) -> tuple[torch.Tensor, int, bool]:
        """Checked ``(stereo float32 audio (2, samples), rate, mono)``: the checks and
        messages of :func:`~xslicq.inference.check_audio`, shared with the ONNX engine."""
        sample_rate = check_sample_rate(sample_rate, any_rate)
        if torch.is_tensor(audio):  # NumPy has no bfloat16
            audio = audio.detach().cpu()
            audio = (audio.float() if audio.dtype == torch.bfloat16 else audio).numpy()
        x, mono = check_audio(audio)
        return torch.from_numpy(x), sample_rate, mono

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

    def _run(self, mixture: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, J, C, L) with the engine's network (torch: the system's own)."""
        if self.network is None:
            return self.system(mixture)
        return self.system.separate(mixture, network=self.network)[0]

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
        """(2, N) -> (J, 2, n) finished stretches in order, from the cross-faded chunks of
        :func:`~xslicq.inference.chunk_plan`: each chunk's stretch up to the next chunk's
        start is final once the previous chunk's faded tail is added."""
        from tqdm import tqdm

        chunk = int(self.chunk_seconds * self.sample_rate)
        overlap = int(self.overlap_seconds * self.sample_rate)
        plan = chunk_plan(x.shape[-1], chunk, overlap)
        held, held_start = None, 0  # the last chunk's weighted estimate, not yet final
        for start, w in tqdm(plan, disable=not progress, desc="separating", unit="chunk"):
            est = self._run(x[None, :, start : start + len(w)])[0]
            est = est * torch.from_numpy(w).to(x.device)
            if held is not None:
                shared = held_start + held.shape[-1] - start  # samples both chunks cover
                est[..., :shared] += held[..., start - held_start :]
                yield held[..., : start - held_start]
            held, held_start = est, start
        yield held
