"""Export a trained separator's network: ``python -m xslicq.export checkpoint=PATH [overrides]``.

    python -m xslicq.export checkpoint=model.ckpt format=onnx          # -> model.onnx beside it
    python -m xslicq.export checkpoint=model.ckpt format=onnx out=sep.onnx exporter=dynamo
    python -m xslicq.export checkpoint=model.ckpt format=tensorrt precision=fp16   # CUDA GPU

Only the network is exported: matrix magnitudes ``(batch, channels, nb_bins, slices, T)``
-> masks ``(batch, targets, channels, nb_bins, slices, T)``, with ``batch`` and ``slices``
dynamic (any length of audio). The transform, the matrix form, the masks' application,
Wiener-EM and the inverse are rebuilt from the JSON stored in the model's ``metadata_props``
(:data:`xslicq.inference.METADATA_KEY`) by :class:`xslicq.inference.OnnxSeparator`, which needs
only NumPy, soundfile and onnxruntime (``pip install "xslicq[infer]"``).

Every export is checked: :func:`onnx.checker.check_model`, then onnxruntime runs the exported
network on other batch sizes and slice counts than the one it was traced with and must agree
with torch (:data:`VERIFY_TOLERANCE`), so a graph that baked in a shape is refused.

Exporters: ``torchscript`` (the default, ``torch.onnx.export(dynamo=False)``: exports every
network of :mod:`xslicq.models` but the ragged one, in about 3 s) and ``dynamo``
(``torch.onnx.export(dynamo=True)``: exports ``xumx_matrix`` in about 15-25 s; its graph of
``umx``'s LSTM fails the check above with torch 2.14.1, so it is refused there).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from . import __version__
from .inference import FORMAT_VERSION, MASK_OUTPUT, MATRIX_INPUT, METADATA_KEY

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tensorrt")
EXPORTERS = ("torchscript", "dynamo")
OPSET = 17  # ONNX opset of the torchscript exporter (onnxruntime >= 1.14 runs it)
EXAMPLE_SLICES = 5  # slices of the traced example; the check runs others
VERIFY_SHAPES = ((1, 1), (2, 3), (1, 8))  # (batch, slices) onnxruntime must agree on
VERIFY_TOLERANCE = 1e-4  # largest |mask difference| between onnxruntime and torch


class ExportError(ValueError):
    """The checkpoint's network cannot be exported as asked; the message says why."""


class MaskNetwork(torch.nn.Module):
    """A system's network as the exported graph sees it: matrix magnitudes
    (B, C, F, S, T) -> masks (B, J, C, F, S, T), whatever the network's input form
    (a ``frames`` network such as ``umx`` reads the slices side by side, (B, C, F, S * T))."""

    def __init__(self, model: torch.nn.Module, form: str, targets: int):
        super().__init__()
        self.model, self.form, self.targets = model, form, targets

    def forward(self, matrix: torch.Tensor) -> torch.Tensor:
        if self.form == "frames":
            b, c, f, s, t = matrix.shape
            out = self.model(matrix.reshape(b, c, f, s * t))
            return out.reshape(b, self.targets, c, f, s, t)
        return self.model(matrix)


def check_exportable(system) -> None:
    """An :class:`ExportError` unless the torch-free pipeline can rebuild ``system``: a sliCQT
    front end (the NumPy backend has no STFT) and a network on the matrix form."""
    from .transform import SliCQT

    if system.form == "ragged":
        raise ExportError(
            f"the network {type(system.model).__name__} reads the ragged blocks (model="
            "cdae_blocks); only networks on the matrix form export (xumx_matrix, umx)"
        )
    if not isinstance(system.transform, SliCQT):
        raise ExportError(
            f"the transform {type(system.transform).__name__} has no NumPy backend, so the "
            "torch-free separator cannot rebuild it; only sliCQT models export "
            "(transform=cqlog, oct, mel, bark, vqlog or tuned)"
        )


def export_metadata(system, exporter: str) -> dict:
    """The JSON stored with the network: all :class:`xslicq.inference.OnnxSeparator`
    needs to rebuild the rest of ``system``."""
    t = system.transform
    return {
        "format_version": FORMAT_VERSION,
        "xslicq_version": __version__,
        "transform": {
            "scale": t.scale_name,
            "bins": t.bins,
            "fmin": t.fmin,
            "fmax": t.fmax,
            "sample_rate": t.sample_rate,
            "sllen": t.sllen,
            "trlen": t.trlen,
            "gamma": t.gamma,
        },
        "matrix": {"mode": system.r2m.mode, "T": system.r2m.T},
        "targets": list(system.targets),
        "channels": int(system.model.nb_channels),
        "mask_sum_to_one": bool(system.mask_sum_to_one),
        "wiener_iterations": int(system.wiener_iterations),
        "network": {
            "class": type(system.model).__name__,
            "input_form": system.form,
            "input": MATRIX_INPUT,
            "output": MASK_OUTPUT,
            "exporter": exporter,
        },
    }


def _example(system, batch: int, slices: int) -> torch.Tensor:
    """Non-negative magnitudes (batch, C, F, slices, T) to trace and check with."""
    shape = (batch, system.model.nb_channels, system.r2m.nb_bins, slices, system.r2m.T)
    generator = torch.Generator().manual_seed(batch * 1000 + slices)
    return torch.rand(shape, generator=generator)


def _trace(net: MaskNetwork, example: torch.Tensor, exporter: str):
    """The ONNX ModelProto of ``net`` traced at ``example``, batch and slices dynamic."""
    import onnx

    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=4096)
        slices = torch.export.Dim("slices", min=1, max=1 << 20)
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            dynamic_shapes=({0: batch, 3: slices},),
            input_names=[MATRIX_INPUT],
            output_names=[MASK_OUTPUT],
            verbose=False,
        )
        return program.model_proto
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the models' shape checks are Python, run at trace time
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*LSTM.*batch_size.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        torch.onnx.export(
            net,
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[MATRIX_INPUT],
            output_names=[MASK_OUTPUT],
            dynamic_axes={
                MATRIX_INPUT: {0: "batch", 3: "slices"},
                MASK_OUTPUT: {0: "batch", 4: "slices"},
            },
        )
    return onnx.load_from_string(buffer.getvalue())


def _name_output_axes(proto, system) -> None:
    """Declare the masks' shape (batch, J, C, F, slices, T) on the graph's output, which the
    exporters leave partly unnamed; the checks below confirm it on several shapes."""
    fixed = (len(system.targets), system.model.nb_channels, system.r2m.nb_bins)
    shape = ("batch", *fixed, "slices", system.r2m.T)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    del dims[:]
    for value in shape:
        dim = dims.add()
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = int(value)


def onnx_bytes(system, exporter: str = "torchscript") -> bytes:
    """``system``'s network as a serialised ONNX model with the pipeline's metadata,
    checked by onnx's checker and against torch on other shapes (an :class:`ExportError`
    when it disagrees or cannot be exported)."""
    import onnx

    from .inference import OnnxNetwork

    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    check_exportable(system)
    model = copy.deepcopy(system.model).float().cpu().eval()
    net = MaskNetwork(model, system.form, len(system.targets)).eval()
    with torch.no_grad():
        try:
            proto = _trace(net, _example(system, 1, EXAMPLE_SLICES), exporter)
        except Exception as err:  # the exporters raise many kinds
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ExportError(
                f"the {exporter} exporter failed on {type(model).__name__} "
                f"({type(err).__name__}: {first[:300]})"
            ) from None
    _name_output_axes(proto, system)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(export_metadata(system, exporter))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"onnx's checker refuses the exported network: {err}") from None
    data = proto.SerializeToString()
    runner = OnnxNetwork(data)
    with torch.no_grad():
        for batch, slices in VERIFY_SHAPES:
            x = _example(system, batch, slices)
            try:
                got = runner(x.numpy())
            except Exception as err:  # onnxruntime's: a shape baked into the graph
                first = str(err).strip().splitlines()[0][:300]
                raise ExportError(
                    f"the {exporter} export of {type(model).__name__} does not run on "
                    f"batch={batch}, slices={slices} ({first})"
                ) from None
            want = net(x).numpy()
            gap = float(np.abs(got - want).max()) if got.shape == want.shape else np.inf
            if not gap <= VERIFY_TOLERANCE:
                raise ExportError(
                    f"the {exporter} export of {type(model).__name__} disagrees with torch "
                    f"on batch={batch}, slices={slices} (shape {got.shape}, largest mask "
                    f"difference {gap:.3g} > {VERIFY_TOLERANCE:g})"
                )
    return data


def default_out(checkpoint: Path, fmt: str) -> Path:
    """Next to the checkpoint: ``<stem>.onnx`` (``<stem>.engine`` for TensorRT)."""
    return checkpoint.with_suffix(".engine" if fmt == "tensorrt" else ".onnx")


def run(cfg) -> list[Path]:
    """Export ``cfg.checkpoint``'s network as ``cfg.format``; returns the files written
    (the ONNX model; for ``tensorrt`` also the engine)."""
    from .separator import Separator

    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.get("checkpoint") in (None, ""):
        raise ExportError("no checkpoint given: pass checkpoint=/path/to/model.ckpt")
    fmt = cfg.get("format", "onnx")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    exporter = cfg.get("exporter", "torchscript")
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    precision = cfg.get("precision", "fp32")
    if fmt == "tensorrt":
        from .tensorrt import PRECISIONS, check_tensorrt

        if precision not in PRECISIONS:
            raise ExportError(
                f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        check_tensorrt()  # before the work: one clear error where it cannot run
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    out = Path(str(cfg.out)).expanduser() if cfg.get("out") else default_out(checkpoint, fmt)
    if out.is_dir():
        raise ExportError(f"out={out} is a folder; give a file name such as {out / 'model.onnx'}")
    separator = Separator.from_checkpoint(checkpoint, device="cpu")
    data = onnx_bytes(separator.system, exporter)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_path = out if fmt == "onnx" else out.with_suffix(".onnx")
    onnx_path.write_bytes(data)
    written = [onnx_path]
    if fmt == "tensorrt":
        from .tensorrt import build_engine

        chunk = int(cfg.get("chunk_seconds", 10.0) * separator.sample_rate)
        engine = build_engine(
            data, precision=precision, max_slices=separator.system.transform.nb_slices(chunk)
        )
        out.write_bytes(engine)
        written.append(out)
    return written


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    from .train import CheckpointError

    try:
        written = run(cfg)
    except (ExportError, CheckpointError) as err:
        raise SystemExit(f"xslicq.export: error: {err}") from None
    except (ImportError, RuntimeError) as err:  # tensorrt or a GPU missing
        if cfg.get("format") != "tensorrt":
            raise
        raise SystemExit(f"xslicq.export: error: {err}") from None
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
