"""Export a trained separator's network: ``python -m xslicq.export checkpoint=PATH [overrides]``.

    python -m xslicq.export checkpoint=model.ckpt format=onnx          # -> model.onnx beside it
    python -m xslicq.export checkpoint=model.ckpt format=onnx out=sep.onnx exporter=dynamo
    python -m xslicq.export checkpoint=model.ckpt format=tensorrt precision=fp16   # CUDA GPU

Only the network is exported: matrix magnitudes ``(batch, channels, nb_bins, slices, T)``
-> masks ``(batch, targets, channels, nb_bins, slices, T)``, with ``batch`` and ``slices``
dynamic (any length of audio). A causal network (``model.causal``: ``experiment=stream``) is
exported as the step of a stream: it also takes its recurrent state before the first slice
(:data:`xslicq.inference.STATE_INPUTS`, ``(h, c)``, each ``(targets, layers, batch,
hidden)``) and returns the state after the last one (:data:`~xslicq.inference.STATE_OUTPUTS`),
and the metadata has a ``stream`` entry; ``python -m xslicq.stream --model model.onnx`` runs
it one slice at a time (:class:`xslicq.stream.OnnxStreamEngine`), and from zero state it is
the whole-song network too. The transform, the matrix form, the masks' application,
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

from .checkpoint import load_system
from .checks import is_number
from .cli import run_command
from .errors import ExportConfigError, ExportError
from .inference import (
    FORMAT_VERSION,
    MASK_OUTPUT,
    MATRIX_INPUT,
    MAX_CHUNK_SECONDS,
    METADATA_KEY,
    STATE_INPUTS,
    STATE_OUTPUTS,
    OnnxNetwork,
)
from .models.protocol import streams as model_streams
from .outputs import OutputFolder, check_writable, claim
from .transform import SliCQT
from .version import __version__

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tensorrt")
EXPORTERS = ("torchscript", "dynamo")
OPSET = 17  # ONNX opset of the torchscript exporter (onnxruntime >= 1.14 runs it)
EXAMPLE_SLICES = 5  # slices of the traced example; the check runs others
VERIFY_SHAPES = ((1, 1), (2, 3), (1, 8))  # (batch, slices) onnxruntime must agree on
VERIFY_TOLERANCE = 1e-4  # largest |mask difference| between onnxruntime and torch


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


class StepNetwork(torch.nn.Module):
    """A causal system's network as the exported stream step sees it: the next slices'
    matrix magnitudes (B, C, F, S, T) and the recurrent state ``(h, c)`` after the slices
    before them -> masks (B, J, C, F, S, T) and the state after the last slice (the
    network's ``step``; a ``frames`` network reads the slices side by side)."""

    def __init__(self, model: torch.nn.Module, form: str, targets: int):
        super().__init__()
        self.model, self.form, self.targets = model, form, targets

    def forward(self, matrix: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        b, ch, f, s, t = matrix.shape
        x = matrix.reshape(b, ch, f, s * t) if self.form == "frames" else matrix
        out, (h, c) = self.model.step(x, (h, c))
        return out.reshape(b, self.targets, ch, f, s, t), h, c


def is_causal(system) -> bool:
    """Whether ``system``'s network streams: causal (``model.causal``) with a
    ``step(x, state)`` and an ``initial_state(nb_samples)``."""
    return model_streams(system.model)


def state_shape(model) -> list:
    """The shape of each part of a causal network's state, ``"batch"`` on the batch axis
    (the axis that differs between ``initial_state(1)`` and ``initial_state(2)``)."""
    one, two = model.initial_state(1), model.initial_state(2)
    if len(one) != len(STATE_INPUTS):
        raise ExportError(
            f"the causal network {type(model).__name__} has a state of {len(one)} tensors; "
            f"the stream step exports {len(STATE_INPUTS)} (h, c)"
        )
    a, b = tuple(one[0].shape), tuple(two[0].shape)
    return ["batch" if x != y else int(x) for x, y in zip(a, b)]


def check_exportable(system) -> None:
    """An :class:`ExportError` unless the torch-free pipeline can rebuild ``system``: a sliCQT
    front end (the NumPy backend has no STFT) and a network on the matrix form."""
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


def export_metadata(system, exporter: str, stream: bool | None = None) -> dict:
    """The JSON stored with the network: all :class:`xslicq.inference.OnnxSeparator`
    needs to rebuild the rest of ``system``, and for a causal network the ``stream`` entry
    :class:`xslicq.stream.OnnxStreamEngine` reads (slice lengths, matrix columns per slice,
    look-ahead, the state's names and shape; ``stream``: whether the network is exported
    as a stream step, by default when it is causal)."""
    t = system.transform
    stream = is_causal(system) if stream is None else stream
    meta = {
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
    if stream:
        meta["network"]["input"] = [MATRIX_INPUT, *STATE_INPUTS]
        meta["network"]["output"] = [MASK_OUTPUT, *STATE_OUTPUTS]
        meta["stream"] = {
            "causal": True,
            "sllen": t.sllen,
            "trlen": t.trlen,
            "columns_per_slice": system.r2m.T,
            "lookahead": 0,
            "state": {
                "inputs": list(STATE_INPUTS),
                "outputs": list(STATE_OUTPUTS),
                "shape": state_shape(system.model),
            },
        }
    return meta


def _example(system, batch: int, slices: int) -> torch.Tensor:
    """Non-negative magnitudes (batch, C, F, slices, T) to trace and check with."""
    shape = (batch, system.model.nb_channels, system.r2m.nb_bins, slices, system.r2m.T)
    generator = torch.Generator().manual_seed(batch * 1000 + slices)
    return torch.rand(shape, generator=generator)


def _example_state(system, batch: int) -> tuple[torch.Tensor, ...]:
    """A recurrent state (h, c) of ``batch`` streams to trace and check a causal network
    with: not zeros, so that a graph that ignores its state input disagrees."""
    generator = torch.Generator().manual_seed(7 + batch)
    return tuple(
        0.5 * torch.randn(s.shape, generator=generator) for s in system.model.initial_state(batch)
    )


def _trace(net: torch.nn.Module, examples: tuple, exporter: str, batch_axis: int | None):
    """The ONNX ModelProto of ``net`` traced at ``examples`` (the magnitudes, then for a
    stream step the state, whose batch axis is ``batch_axis``), batch and slices dynamic."""
    import onnx

    stream = len(examples) > 1
    inputs = [MATRIX_INPUT, *STATE_INPUTS] if stream else [MATRIX_INPUT]
    outputs = [MASK_OUTPUT, *STATE_OUTPUTS] if stream else [MASK_OUTPUT]
    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=4096)
        slices = torch.export.Dim("slices", min=1, max=1 << 20)
        shapes = ({0: batch, 3: slices},) + ({batch_axis: batch},) * (len(examples) - 1)
        program = torch.onnx.export(
            net,
            examples,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=inputs,
            output_names=outputs,
            verbose=False,
        )
        return program.model_proto
    axes = {MATRIX_INPUT: {0: "batch", 3: "slices"}, MASK_OUTPUT: {0: "batch", 4: "slices"}}
    if stream:
        axes.update({name: {batch_axis: "batch"} for name in STATE_INPUTS + STATE_OUTPUTS})
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the models' shape checks are Python, run at trace time
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*LSTM.*batch_size.*")
        warnings.filterwarnings("ignore", message=".*batch_size.*LSTM.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        torch.onnx.export(
            net,
            examples,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
        )
    return onnx.load_from_string(buffer.getvalue())


def _name_output_axes(proto, system, stream: bool) -> None:
    """Declare the masks' shape (batch, J, C, F, slices, T) on the graph's output (and a
    stream step's state shapes on its state outputs), which the exporters leave partly
    unnamed; the checks below confirm them on several shapes."""
    fixed = (len(system.targets), system.model.nb_channels, system.r2m.nb_bins)
    shapes = [("batch", *fixed, "slices", system.r2m.T)]
    if stream:
        shapes += [state_shape(system.model)] * len(STATE_OUTPUTS)
    for output, shape in zip(proto.graph.output, shapes):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for value in shape:
            dim = dims.add()
            if isinstance(value, str):
                dim.dim_param = value
            else:
                dim.dim_value = int(value)


def onnx_bytes(system, exporter: str = "torchscript", stream: bool | None = None) -> bytes:
    """``system``'s network as a serialised ONNX model with the pipeline's metadata,
    checked by onnx's checker and against torch on other shapes (an :class:`ExportError`
    when it disagrees or cannot be exported).

    ``stream``: export the stream step (:class:`StepNetwork`, the recurrent state in and
    out) rather than the whole-song network (:class:`MaskNetwork`); ``None``: when the
    network is causal. TensorRT takes the whole-song network only."""
    import onnx

    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    check_exportable(system)
    # contiguous weights: ONNX has no memory format, and torch.export's shape guards fail on
    # the channels-last weights of XUMXMatrix with a dynamic batch and slice count
    model = copy.deepcopy(system.model).float().cpu().eval()
    model.to(memory_format=torch.contiguous_format)
    if stream and not is_causal(system):
        raise ExportError(
            f"the network {type(system.model).__name__} is not causal, so it has no stream "
            "step to export; train a causal one with python -m xslicq.train experiment=stream"
        )
    stream = is_causal(system) if stream is None else bool(stream)
    kind = StepNetwork if stream else MaskNetwork
    net = kind(model, system.form, len(system.targets)).eval()
    batch_axis = state_shape(model).index("batch") if stream else None

    def examples(batch, slices):
        x = _example(system, batch, slices)
        return (x, *_example_state(system, batch)) if stream else (x,)

    with torch.no_grad():
        try:
            proto = _trace(net, examples(1, EXAMPLE_SLICES), exporter, batch_axis)
        except Exception as err:  # the exporters raise many kinds
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ExportError(
                f"the {exporter} exporter failed on {type(model).__name__} "
                f"({type(err).__name__}: {first[:300]})"
            ) from None
    _name_output_axes(proto, system, stream)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(export_metadata(system, exporter, stream))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"onnx's checker refuses the exported network: {err}") from None
    data = proto.SerializeToString()
    runner = OnnxNetwork(data)
    with torch.no_grad():
        for batch, slices in VERIFY_SHAPES:
            x, *state = examples(batch, slices)
            try:
                if stream:
                    masks, state_out = runner.step(x.numpy(), [s.numpy() for s in state])
                    got = [masks, *state_out]
                else:
                    got = [runner(x.numpy())]
            except Exception as err:  # onnxruntime's: a shape baked into the graph
                first = str(err).strip().splitlines()[0][:300]
                raise ExportError(
                    f"the {exporter} export of {type(model).__name__} does not run on "
                    f"batch={batch}, slices={slices} ({first})"
                ) from None
            want = net(x, *state)
            want = [w.numpy() for w in (want if stream else [want])]
            names = ["mask", *[f"{n} state" for n in STATE_OUTPUTS]]
            for name, g, w in zip(names, got, want):
                gap = float(np.abs(g - w).max()) if g.shape == w.shape else np.inf
                if not gap <= VERIFY_TOLERANCE:
                    raise ExportError(
                        f"the {exporter} export of {type(model).__name__} disagrees with "
                        f"torch on batch={batch}, slices={slices} (shape {g.shape}, largest "
                        f"{name} difference {gap:.3g} > {VERIFY_TOLERANCE:g})"
                    )
    return data


def default_out(checkpoint: Path, fmt: str) -> Path:
    """Next to the checkpoint: ``<stem>.onnx`` (``<stem>.engine`` for TensorRT)."""
    return checkpoint.with_suffix(".engine" if fmt == "tensorrt" else ".onnx")


def run(cfg) -> list[Path]:
    """Export ``cfg.checkpoint``'s network as ``cfg.format``; returns the files written
    (the ONNX model; for ``tensorrt`` also the engine)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.get("checkpoint") in (None, ""):
        raise ExportConfigError("no checkpoint given: pass checkpoint=/path/to/model.ckpt")
    fmt = cfg.get("format", "onnx")
    if fmt not in FORMATS:
        raise ExportConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    exporter = cfg.get("exporter", "torchscript")
    if exporter not in EXPORTERS:
        raise ExportConfigError(
            f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}"
        )
    precision = cfg.get("precision", "fp32")
    if fmt == "tensorrt":
        from .tensorrt import PRECISIONS, check_tensorrt

        if precision not in PRECISIONS:
            raise ExportConfigError(
                f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        chunk = cfg.get("chunk_seconds", 10.0)
        if not (is_number(chunk) and 0 < chunk <= MAX_CHUNK_SECONDS):  # the engine's largest input
            raise ExportConfigError(
                f"chunk_seconds must be positive and at most {MAX_CHUNK_SECONDS:g} (the "
                f"separator's longest chunk; memory grows with it), got {chunk!r}"
            )
        check_tensorrt()  # before the work: one clear error where it cannot run
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    out = Path(str(cfg.out)).expanduser() if cfg.get("out") else default_out(checkpoint, fmt)
    if out.is_dir() and not out.is_symlink():
        raise ExportConfigError(
            f"out={out} is a folder; give a file name such as {out / 'model.onnx'}"
        )
    onnx_path = out if fmt == "onnx" else out.with_suffix(".onnx")
    names = [onnx_path.name] + ([out.name] if fmt == "tensorrt" else [])
    # the output policy (xslicq.outputs): never the checkpoint, a link or a file export did
    # not write; its own earlier export only with force=true; checked before the work
    folder = OutputFolder(out.parent, "export", [checkpoint], force_hint="force=true")
    check_writable(out.parent, "out= folder")
    folder.plan_files(names, bool(cfg.get("force", False)))
    system = load_system(checkpoint, device="cpu")
    # a causal network exports as a stream step, but TensorRT builds the whole-song network
    data = onnx_bytes(system, exporter, stream=False if fmt == "tensorrt" else None)
    with claim(out.parent, "out= folder"):
        folder.plan_files(names, bool(cfg.get("force", False)))  # again, under the claim
        folder.begin([], source={"checkpoint": str(checkpoint.resolve())})
        try:
            folder.write(onnx_path.name, data)
            written = [onnx_path]
            if fmt == "tensorrt":
                from .tensorrt import build_engine

                chunk = int(cfg.get("chunk_seconds", 10.0) * system.transform.sample_rate)
                engine = build_engine(
                    data,
                    precision=precision,
                    max_slices=system.transform.nb_slices(chunk),
                )
                folder.write(out.name, engine)
                written.append(out)
        finally:
            folder.save()
    return written


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """Export; a failure is one ``error:`` line (:func:`xslicq.cli.run_command`): status 2 for
    a setting (:class:`~xslicq.errors.ExportConfigError`, a checkpoint, the output folder), 1
    for an export that fails; for TensorRT also a missing package or GPU."""
    handled = (ValueError, OSError)
    if cfg.get("format") == "tensorrt":
        handled += (ImportError, RuntimeError)  # tensorrt or a GPU missing
    status, written = run_command(lambda: run(cfg), handled)
    if status:
        raise SystemExit(status)
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
