"""TensorRT engines of the exported network (``format=tensorrt``, ``engine="tensorrt"``).

    python -m xslicq.export checkpoint=model.ckpt format=tensorrt [precision=fp16]
    Separator.from_checkpoint("model.ckpt", device="cuda", engine="tensorrt")

The engine is built from the ONNX network of :func:`xslicq.export.onnx_bytes` with the
tensorrt Python API (ONNX parser, one optimisation profile over ``batch`` and ``slices``)
and runs on torch CUDA tensors: matrix magnitudes (B, C, F, S, T) -> masks
(B, J, C, F, S, T). Both need the ``tensorrt`` package (the ``gpu`` extra: tensorrt-cu13)
and a CUDA GPU; without either, :func:`check_tensorrt` raises one error naming what is
missing.

Not run on the machine this was written on (no GPU there): the API calls follow
TensorRT 10's documented Python API.
"""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "fp16")
WORKSPACE_BYTES = 1 << 30  # the builder's scratch memory
MAX_BATCH = 4  # the largest batch the engine's profile admits


class TensorRTUnavailable(RuntimeError):
    """TensorRT cannot run here; the message names what is missing."""


def check_tensorrt():
    """The ``tensorrt`` module, or :class:`TensorRTUnavailable` naming what is missing (the
    package, a CUDA GPU)."""
    try:
        import tensorrt
    except ImportError:
        raise TensorRTUnavailable(
            "engine/format tensorrt needs the tensorrt package (pip install 'xslicq[gpu]': "
            "tensorrt-cu13) and a CUDA GPU; tensorrt is not installed here: use the onnx "
            "engine instead"
        ) from None
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(
            f"engine/format tensorrt needs a CUDA GPU, but torch finds none on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}): use the onnx engine"
        )
    return tensorrt


def build_engine(
    onnx_model: bytes,
    precision: str = "fp32",
    max_slices: int = 256,
    opt_slices: int | None = None,
    max_batch: int = MAX_BATCH,
) -> bytes:
    """A serialised TensorRT engine of the ONNX network ``onnx_model``.

    Args:
        precision: ``fp32``, or ``fp16`` (half-precision kernels where TensorRT picks them).
        max_slices: the most slices one call takes (a chunk's: the separator's
            ``transform.nb_slices(chunk samples)``); ``opt_slices`` the size tuned for
            (``max_slices`` by default).
        max_batch: the largest batch.
    """
    trt = check_tensorrt()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode of TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_model):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser refuses the network: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    tensor = network.get_input(0)
    _, c, f, _, t = tuple(tensor.shape)
    profile = builder.create_optimization_profile()
    opt = max_slices if opt_slices is None else opt_slices
    low, best, high = (1, c, f, 1, t), (1, c, f, opt, t), (max_batch, c, f, max_slices, t)
    profile.set_shape(tensor.name, low, best, high)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError("TensorRT could not build an engine of the network (see its log)")
    return bytes(engine)


class TensorRTNetwork:
    """A TensorRT engine of the network, called on CUDA tensors:
    matrix (B, C, F, S, T) float32 -> masks (B, J, C, F, S, T) float32."""

    def __init__(self, engine: bytes, device="cuda"):
        trt = check_tensorrt()
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise TensorRTUnavailable(
                f"engine tensorrt runs on a CUDA device, got device {device}: load the "
                "separator with device='cuda'"
            )
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine)
        if self.engine is None:
            raise RuntimeError("TensorRT cannot load the engine (built by another TensorRT?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) != mode)

    @classmethod
    def from_onnx(cls, onnx_model: bytes, device="cuda", **kwargs) -> TensorRTNetwork:
        """Build the engine of ``onnx_model`` (:func:`build_engine` ``kwargs``) and load it."""
        return cls(build_engine(onnx_model, **kwargs), device=device)

    def __call__(self, matrix: torch.Tensor) -> torch.Tensor:
        x = matrix.detach().to(self.device, torch.float32).contiguous()
        accepted = self.context.set_input_shape(self.input, tuple(x.shape))
        shape = tuple(self.context.get_tensor_shape(self.output))
        if accepted is False or any(n < 0 for n in shape):
            raise ValueError(
                f"the TensorRT engine does not take input of shape {tuple(x.shape)} (its "
                "profile's batch or slices are exceeded: build it for longer chunks)"
            )
        out = torch.empty(shape, dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT failed to run the engine")
        stream.synchronize()
        return out
