"""Stream a separation block by block, with a causal model.

    python -m xslicq.stream --model model.ckpt song.wav out/
    python -m xslicq.stream --model model.onnx song.wav out/    # exported: no torch needed
    ... | python -m xslicq.stream --model model.ckpt --raw --rate 44100 --channels 2 \\
              --format f32le - out/ --stdout vocals | ...

Reads audio a block at a time (a file through soundfile, or headerless PCM from a file or
from stdin with ``-``), separates it hop by hop and writes ``out/<target>.wav`` as the
output comes (and, with ``--stdout TARGET``, that target as raw PCM to stdout).

How a stream is cut (``N = sllen``, ``hop = N / 2``, shapes ``C`` channels, ``J`` targets)::

    input samples, any block size
      -> slice s: samples [(s - 1) hop, (s + 1) hop)    as soon as the last one whose slice
                                                        window is not zero has arrived
      -> engine.step  (C, N) -> (J, C, N)               one slice: window, sliCQT, causal
                                                        network (state carried), masks,
                                                        inverse sliCQT
      -> overlap-add: hop s - 1 = tail of slice s - 1 + head of slice s, now final
    output, one hop at a time

Every stage is slice-local except the network, which must be causal (its mask for a slice
depends on that slice and earlier ones: ``model.causal``, e.g. Open-Unmix with
``unidirectional=True``, trained with ``python -m xslicq.train experiment=stream``), so the
streamed stems equal the offline separation of the whole signal by the same system. The
first sample of a hop waits for the whole next slice but its zero-window margin:
the algorithmic latency is ``N - (N / 4 - trlen / 2)`` samples (:func:`algorithmic_latency`).
Wiener-EM is not causal (it estimates over the whole song) and is left out.

The engine (one slice in, stem slices out) is the only part that needs a framework: the
stream, the readers and the writers are numpy and soundfile. :class:`TorchEngine` runs a
training checkpoint; :class:`OnnxStreamEngine` runs the network of one exported by
``python -m xslicq.export checkpoint=... format=onnx`` (a stream step: magnitudes and
recurrent state in, masks and state out) with the sliCQT's NumPy backend and onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from .cli import error_line

# headerless PCM: --format name -> (numpy dtype, full scale of an integer format)
FORMATS = {
    "f32le": ("<f4", None),
    "f64le": ("<f8", None),
    "s16le": ("<i2", 2**15),
    "s32le": ("<i4", 2**31),
}
DEFAULT_BLOCK = 1024  # input frames read at a time


class StreamError(ValueError):
    """The model, the input or the output of a stream is unusable; the message says why."""


def algorithmic_latency(sllen: int, trlen: int, lookahead: int = 0) -> int:
    """Samples from a sample's arrival until its separated output is final.

    A hop of output ``[k hop, (k + 1) hop)`` is final once slice ``k + 1``, which ends at
    ``(k + 2) hop``, is analysed. Its last ``sllen / 4 - trlen / 2`` samples fall where the
    slice window is zero, so the slice is complete without them: the first sample of the hop
    waits ``sllen - (sllen / 4 - trlen / 2)`` samples, plus the network's ``lookahead`` (0
    for a causal network). Reading the input in blocks adds up to one block more.
    """
    return int(sllen) - (int(sllen) // 4 - int(trlen) // 2) + int(lookahead)


# ---------------------------------------------------------------------- engines
class StreamEngine(Protocol):
    """One slice of a stream: raw mixture samples in, separated slices out.

    Attributes:
        sample_rate: Hz the model was trained at.
        channels: C, audio channels the model takes.
        targets: names of the J separated sources.
        sllen, trlen: the sliCQT's slice and transition lengths (samples).
        lookahead: samples of look-ahead of the network beyond the slice (0: causal).
    """

    sample_rate: int
    channels: int
    targets: tuple[str, ...]
    sllen: int
    trlen: int
    lookahead: int

    def initial_state(self):
        """The state before the first slice (opaque to the stream)."""

    def step(self, frame: np.ndarray, state) -> tuple[np.ndarray, object]:
        """``frame`` (C, sllen) float32: the raw (not windowed) mixture samples of one slice,
        ``[(s - 1) hop, (s + 1) hop)``, zeros before the start and after the end ->
        ``((J, C, sllen) float32 windowed separated slices, to be overlap-added; the state
        after this slice)``."""


class TorchEngine:
    """The :class:`StreamEngine` of a trained :class:`~xslicq.system.SeparationSystem`.

    Args:
        system: the system; its network must be causal (``model.causal``) with a
            ``step(x, state) -> (masks, state)`` method; Wiener-EM is not used.
    """

    def __init__(self, system):
        model = system.model
        if not getattr(model, "causal", False) or not hasattr(model, "step"):
            name = type(model).__name__
            raise StreamError(
                f"the model's network ({name}) is not causal: its masks depend on the whole "
                "song, so it cannot stream; train a causal one with python -m xslicq.train "
                "experiment=stream"
            )
        self.system = system.eval()
        transform = system.transform
        self.transform, self.model = transform, model
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
        """The engine of a training checkpoint (:meth:`xslicq.Separator.from_checkpoint`)."""
        from .separator import Separator

        return cls(Separator.from_checkpoint(path, device=device).system)

    def initial_state(self):
        return self.model.initial_state(1, device=self.device)

    def step_tensors(self, frame, state):
        """The step on tensors: ``frame`` (C, sllen) float32 and the network's state ->
        ``((J, C, sllen) separated slices, state)``; one exportable function."""
        from .system import apply_masks

        coefs = self.transform.analyse_slices((frame * self._window)[None, :, None])
        mags = [c.abs() for c in coefs]  # (1, C, rows, 1, M) per block
        masks, state = self._masks(mags, state)
        est = apply_masks(coefs, masks)  # (1, J, C, rows, 1, M)
        slices = self.transform.synthesise_slices([e[0] for e in est])  # (J, C, 1, N)
        return slices[:, :, 0], state

    def _masks(self, mags, state):
        """:meth:`SeparationSystem.masks` with the network's state carried
        (``model.step`` for ``model``)."""
        system, j = self.system, len(self.targets)
        if system.form == "ragged":
            masks, state = self.model.step(mags, state)
        else:
            matrix = system.r2m(mags)  # (1, C, F, 1, T)
            b, c, f, s, t = matrix.shape
            if system.form == "frames":
                out, state = self.model.step(system.r2m.flatten(matrix), state)
                out = out.reshape(b, j, c, f, s, t)
            else:
                out, state = self.model.step(matrix, state)
            ragged = system.r2m.inverse(out.reshape(b * j, c, f, s, t))
            masks = [m.reshape((b, j) + tuple(m.shape[1:])) for m in ragged]
        if system.mask_sum_to_one:
            masks = [m / m.sum(1, keepdim=True).clamp_min(1e-8) for m in masks]
        return masks, state

    def step(self, frame: np.ndarray, state) -> tuple[np.ndarray, object]:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).to(self.device)
            slices, state = self.step_tensors(x, state)
        return slices.cpu().numpy(), state


class OnnxStreamEngine:
    """The :class:`StreamEngine` of a causal network exported by ``python -m xslicq.export
    checkpoint=... format=onnx``, without torch: the sliCQT's NumPy backend and
    onnxruntime, the same stages as :meth:`TorchEngine.step_tensors`::

        frame (C, N) * slice window -> SliCQT.analyse_slices   (1, C, rows, 1, M) per block
          -> |.|, RaggedToMatrix                                (1, C, F, 1, T)
          -> network step (onnxruntime), state (h, c) carried   masks (1, J, C, F, 1, T)
          -> RaggedToMatrix.inverse, * mixture coefficients     (1, J, C, rows, 1, M)
          -> SliCQT.synthesise_slices                           (J, C, N)

    Args:
        network: an :class:`xslicq.inference.OnnxNetwork` exported as a stream step (its
            metadata has a ``stream`` entry); a whole-song network is a :class:`StreamError`.
        source: how that error names the model.
    """

    def __init__(self, network, source: str = "the ONNX model"):
        from .inference import OnnxSeparator
        from .transform.slicing import slice_window

        meta = network.metadata
        if not network.streaming:
            name = meta.get("network", {}).get("class", "?")
            raise StreamError(
                f"{source} was exported from a non-causal model ({name}): its masks "
                "depend on the whole song, so it cannot stream; separate whole files with "
                "python -m xslicq.separate --model model.onnx, or train a causal model "
                "(python -m xslicq.train experiment=stream) and export its checkpoint "
                "(python -m xslicq.export checkpoint=last.ckpt format=onnx)"
            )
        self.network = network
        self.separator = OnnxSeparator(network, meta)  # the transform, matrix form, masks
        self.transform = self.separator.transform
        self.sample_rate = self.separator.sample_rate
        self.channels = self.separator.channels
        self.targets = self.separator.targets
        self.sllen, self.trlen = int(self.transform.sllen), int(self.transform.trlen)
        self.lookahead = int(meta["stream"].get("lookahead", 0))
        self.skipped_wiener = int(meta.get("wiener_iterations", 0))
        self._window = slice_window(self.sllen, self.trlen).astype(np.float32)

    @classmethod
    def from_file(cls, path, device: str = "cpu", threads: int | None = None):
        """The engine of an ``.onnx`` file; onnxruntime's idle threads do not spin between
        slices (a slice is a few milliseconds of work on a shared machine)."""
        from .inference import OnnxNetwork

        try:
            network = OnnxNetwork.from_file(path, device=device, threads=threads, spinning=False)
        except ModuleNotFoundError as err:  # onnxruntime is not installed
            raise StreamError(str(err)) from None
        return cls(network, source=str(path))

    def initial_state(self):
        return self.network.initial_state(1)

    def step(self, frame: np.ndarray, state) -> tuple[np.ndarray, object]:
        sep = self.separator
        x = np.asarray(frame, np.float32) * self._window
        coefs = self.transform.analyse_slices(x[None, :, None])  # (1, C, rows, 1, M) per block
        matrix = sep.r2m([np.abs(c) for c in coefs])  # (1, C, F, 1, T)
        out, state = self.network.step(matrix, state)
        masks = sep.ragged_masks(out, matrix.shape)  # (1, J, C, rows, 1, M) per block
        est = [c[0, None] * m[0] for c, m in zip(coefs, masks)]  # (J, C, rows, 1, M)
        slices = self.transform.synthesise_slices(est)  # (J, C, 1, N)
        return np.asarray(slices[:, :, 0], np.float32), state


def open_engine(model, device: str = "cpu", threads: int | None = None) -> StreamEngine:
    """The engine for ``--model``: a training checkpoint (``.ckpt``) runs with torch
    (``threads``: torch's CPU threads, process-wide), an exported causal network
    (``.onnx``) with NumPy and onnxruntime (``threads``: its threads within an operator)."""
    path = Path(str(model))
    suffix = path.suffix.lower()
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise StreamError(f"--threads must be >= 1, got {threads!r}")
    if suffix == ".onnx":
        return OnnxStreamEngine.from_file(path, device=device, threads=threads)
    if suffix != ".ckpt":
        raise StreamError(
            f"--model must be a training checkpoint (.ckpt) or an ONNX model (.onnx), got {model}"
        )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return TorchEngine.from_checkpoint(path, device=device)


# ---------------------------------------------------------------------- the stream
class Streamer:
    """Cut an input stream into slices, run the engine on each, overlap-add the output.

    ``push`` takes the next input block and returns the output that is final so far;
    ``finish`` returns the rest, so that the output has exactly the input's length and
    equals the offline separation of the whole input by the same system.

    Args:
        engine: a :class:`StreamEngine`.
    """

    def __init__(self, engine: StreamEngine):
        self.engine = engine
        self.sllen, self.hop = engine.sllen, engine.sllen // 2
        self.margin = engine.sllen // 4 - engine.trlen // 2  # zero-window samples at each end
        self.latency = algorithmic_latency(engine.sllen, engine.trlen, engine.lookahead)
        c, j = engine.channels, len(engine.targets)
        self.received = self.emitted = 0
        self._slice = 0  # the next slice to analyse: samples [(s - 1) hop, (s + 1) hop)
        self._buffer = np.zeros((c, self.hop), np.float32)  # input from (s - 1) hop on
        self._tail = np.zeros((j, c, self.hop), np.float32)  # 2nd half of slice s - 1
        self._state = engine.initial_state()
        self._finished = False

    def _ready(self) -> bool:
        """Whether slice ``s`` is complete: every sample under its non-zero window is in."""
        return self.received >= (self._slice + 1) * self.hop - self.margin

    def _step(self) -> np.ndarray | None:
        """Analyse slice ``s``; return hop ``s - 1`` of the output (J, C, hop), now final
        (``None`` for slice 0: hop -1 lies before the signal)."""
        frame = self._buffer[:, : self.sllen]
        if frame.shape[1] < self.sllen:  # the rest is under the zero window, or past the end
            frame = np.pad(frame, ((0, 0), (0, self.sllen - frame.shape[1])))
        out, self._state = self.engine.step(frame, self._state)
        done = self._tail + out[..., : self.hop]
        self._tail = np.array(out[..., self.hop :], np.float32)
        self._buffer = self._buffer[:, self.hop :]
        self._slice += 1
        return done if self._slice > 1 else None

    def _output(self, hops: list) -> np.ndarray:
        hops = [h for h in hops if h is not None]
        if not hops:
            return np.zeros((len(self.engine.targets), self.engine.channels, 0), np.float32)
        out = np.concatenate(hops, axis=-1)
        out = out[..., : max(0, self.received - self.emitted)] if self._finished else out
        self.emitted += out.shape[-1]
        return out

    def push(self, block: np.ndarray) -> np.ndarray:
        """Take ``block`` (C, n) float32, the next ``n`` input samples; return the output
        samples (J, C, m) that became final (``m`` may be 0)."""
        if self._finished:
            raise StreamError("the stream is finished: push after finish")
        block = np.asarray(block, np.float32)
        if block.ndim != 2 or block.shape[0] != self.engine.channels:
            raise StreamError(
                f"expected a block of shape (channels={self.engine.channels}, samples), got "
                f"{block.shape}"
            )
        self._buffer = np.concatenate([self._buffer, block], axis=1)
        self.received += block.shape[1]
        hops = []
        while self._ready():
            hops.append(self._step())
        return self._output(hops)

    def finish(self) -> np.ndarray:
        """End of input: the remaining output (J, C, m), up to the input's length (the
        input continues with zeros, as the offline transform pads it)."""
        self._finished = True
        hops = []
        while (self._slice - 1) * self.hop < self.received:  # hop s - 1 holds input samples
            hops.append(self._step())
        return self._output(hops)


# ---------------------------------------------------------------------- reading
def check_format(name: str) -> tuple[np.dtype, int | None]:
    """The numpy dtype and integer full scale of a ``--format`` name."""
    if name not in FORMATS:
        raise StreamError(f"--format must be one of {', '.join(FORMATS)}, got {name!r}")
    dtype, scale = FORMATS[name]
    return np.dtype(dtype), scale


def raw_blocks(stream, channels: int, fmt: str, block: int):
    """Blocks (channels, <= block) float32 of headerless interleaved PCM read from the
    binary file object ``stream`` until it ends; an end inside a frame is an error."""
    dtype, scale = check_format(fmt)
    frame_bytes = dtype.itemsize * channels
    pending = b""
    while True:
        data = stream.read(block * frame_bytes - len(pending))
        if not data:
            break
        data = pending + data
        whole = len(data) - len(data) % frame_bytes
        pending = data[whole:]
        if whole:
            x = np.frombuffer(data[:whole], dtype).reshape(-1, channels).T
            x = x.astype(np.float32) / scale if scale else x.astype(np.float32)
            yield x
    if pending:
        raise StreamError(
            f"the raw input ends inside a frame: {len(pending)} trailing bytes, not a whole "
            f"frame of {channels} channels of {fmt} ({frame_bytes} bytes)"
        )


def file_blocks(path, block: int):
    """Blocks (channels, <= block) float32 of an audio file (soundfile), and its rate and
    channel count: ``(rate, channels, generator)``."""
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise StreamError(f"{path} is a folder, not an audio file")
    if not path.is_file():
        raise StreamError(f"audio file {path} does not exist")
    try:
        handle = sf.SoundFile(str(path))
    except (RuntimeError, OSError) as err:  # LibsndfileError: not a format it reads
        raise StreamError(
            f"cannot read {path} as audio ({' '.join(str(err).split())}); for headerless "
            "PCM give --raw with --rate, --channels and --format"
        ) from None

    def blocks():
        with handle:
            while True:
                x = handle.read(block, dtype="float32", always_2d=True)
                if not len(x):
                    return
                yield x.T

    return handle.samplerate, handle.channels, blocks()


def check_input_layout(rate: int, channels: int, engine: StreamEngine, what: str) -> None:
    """A :class:`StreamError` unless audio of ``rate`` and ``channels`` fits the model (the
    stream does not resample; mono is upmixed)."""
    if rate != engine.sample_rate:
        raise StreamError(
            f"{what} is at {rate} Hz but the model separates {engine.sample_rate} Hz; the "
            f"stream does not resample: resample to {engine.sample_rate} Hz first (e.g. "
            f"ffmpeg -ar {engine.sample_rate}) or use python -m xslicq.separate"
        )
    if channels not in (1, engine.channels):
        raise StreamError(
            f"{what} has {channels} channels; the model takes mono or {engine.channels} "
            f"channels (interleaved, for raw PCM)"
        )


# ---------------------------------------------------------------------- writing
def plan_output(out: Path, targets, force: bool) -> None:
    """An :class:`StreamError` unless ``out`` is, or can be made as, a folder in which
    ``<target>.wav`` may be written (existing ones only with ``force``)."""
    if out.exists() and not out.is_dir():
        raise StreamError(f"output folder {out} is a file, not a folder")
    present = [f"{t}.wav" for t in targets if (out / f"{t}.wav").exists()]
    if present and not force:
        raise StreamError(
            f"output folder {out} already holds {', '.join(present)}; use --force to replace "
            "them or choose another folder"
        )


def to_pcm(x: np.ndarray, fmt: str) -> bytes:
    """(channels, samples) float -> interleaved headerless PCM bytes (integers clipped)."""
    dtype, scale = check_format(fmt)
    y = x.T
    if scale:
        y = np.clip(np.rint(y * scale), -scale, scale - 1)
    return np.ascontiguousarray(y, dtype).tobytes()


class StemWriters:
    """``<out>/<target>.wav`` (float) per target, opened on the first output and written as
    the output comes, and one target's raw PCM to a binary stream (``--stdout``)."""

    def __init__(self, out, targets, rate, channels, stdout=None, stdout_target=None, fmt=None):
        self.out, self.targets, self.rate, self.channels = out, tuple(targets), rate, channels
        self.stdout, self.fmt = stdout, fmt
        self.stdout_index = None if stdout_target is None else self.targets.index(stdout_target)
        self.files = []

    def write(self, stems: np.ndarray) -> None:
        """``stems`` (J, C, m) of the model's channels; mono output is their mean."""
        if stems.shape[-1] == 0:
            return
        if self.channels == 1:
            stems = stems.mean(1, keepdims=True)
        if self.out is not None and not self.files:
            import soundfile as sf

            self.out.mkdir(parents=True, exist_ok=True)
            self.files = [
                sf.SoundFile(
                    str(self.out / f"{t}.wav"),
                    "w",
                    samplerate=self.rate,
                    channels=self.channels,
                    subtype="FLOAT",
                    format="WAV",
                )
                for t in self.targets
            ]
        for f, stem in zip(self.files, stems):
            f.write(stem.T)
            f.flush()
        if self.stdout is not None:
            self.stdout.write(to_pcm(stems[self.stdout_index], self.fmt))
            self.stdout.flush()

    def close(self) -> None:
        for f in self.files:
            f.close()


# ---------------------------------------------------------------------- the command
def stream_file(
    model,
    source,
    out=None,
    *,
    raw: bool = False,
    rate: int | None = None,
    channels: int = 2,
    fmt: str = "f32le",
    block: int = DEFAULT_BLOCK,
    stdout_target: str | None = None,
    force: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    stdin=None,
    stdout=None,
    log=None,
) -> dict:
    """Stream ``source`` (an audio file; ``raw``: headerless PCM, ``"-"``: from ``stdin``)
    through ``model`` (:func:`open_engine`) into ``out`` (a folder for ``<target>.wav``)
    and/or ``stdout_target``'s raw PCM to ``stdout``. Every value, the model, the output and
    the input's layout are checked before the first block; each problem is one
    :class:`StreamError` (or OSError).
    Returns the numbers of the run: samples, seconds, processing time, latency."""
    out = None if out is None else Path(out)
    if out is None and stdout_target is None:
        raise StreamError("nothing to write: give an output folder, --stdout TARGET, or both")
    check_format(fmt)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise StreamError(f"--block must be a whole number of frames >= 1, got {block!r}")
    raw = raw or str(source) == "-"
    if raw and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
        raise StreamError(f"--channels must be a whole number >= 1, got {channels!r}")
    engine = open_engine(model, device=device, threads=threads)
    if stdout_target is not None and stdout_target not in engine.targets:
        raise StreamError(
            f"--stdout must name one of the model's targets ({', '.join(engine.targets)}), "
            f"got {stdout_target!r}"
        )
    if out is not None:
        plan_output(out, engine.targets, force)
    if raw:
        rate = engine.sample_rate if rate is None else rate
        what = "stdin" if str(source) == "-" else str(source)
        check_input_layout(rate, channels, engine, f"the raw input ({what})")
        handle = (stdin or sys.stdin.buffer) if str(source) == "-" else open(source, "rb")  # noqa: SIM115
        blocks = raw_blocks(handle, channels, fmt, block)
    else:
        rate, channels, blocks = file_blocks(source, block)
        check_input_layout(rate, channels, engine, str(source))
    streamer = Streamer(engine)
    latency = streamer.latency
    if log is not None:
        print(
            f"streaming at {engine.sample_rate} Hz, hop {streamer.hop} samples "
            f"({1000 * streamer.hop / engine.sample_rate:.1f} ms); algorithmic latency "
            f"{latency} samples ({1000 * latency / engine.sample_rate:.1f} ms)"
            + (
                f"; Wiener-EM ({engine.skipped_wiener} iterations) left out: it is not causal"
                if getattr(engine, "skipped_wiener", 0)
                else ""
            ),
            file=log,
        )
    sink = None if stdout_target is None else (stdout or sys.stdout.buffer)
    writers = StemWriters(out, engine.targets, rate, channels, sink, stdout_target, fmt)
    busy = 0.0
    try:
        for x in blocks:
            if not np.isfinite(x).all():
                at = (streamer.received + int(np.argmin(np.isfinite(x).all(0)))) / rate
                raise StreamError(f"the input holds NaN or inf samples (at {at:.3f} s)")
            if x.shape[0] == 1:
                x = np.repeat(x, engine.channels, axis=0)
            t0 = time.perf_counter()
            y = streamer.push(x)
            busy += time.perf_counter() - t0
            writers.write(y)
        if streamer.received == 0:
            raise StreamError("the input holds no samples")
        t0 = time.perf_counter()
        y = streamer.finish()
        busy += time.perf_counter() - t0
        writers.write(y)
    finally:
        writers.close()
        if raw and str(source) != "-":
            handle.close()
    seconds = streamer.received / rate
    return {
        "samples": streamer.received,
        "seconds": seconds,
        "processing_seconds": busy,
        "real_time_factor": busy / seconds,
        "latency_samples": latency,
        "latency_ms": 1000.0 * latency / rate,
        "files": [out / f"{t}.wav" for t in engine.targets] if out is not None else [],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xslicq.stream", description=__doc__.splitlines()[0]
    )
    parser.add_argument("input", help="an audio file, or - for raw PCM on stdin")
    parser.add_argument("out", nargs="?", default=None, help="folder for <target>.wav")
    parser.add_argument(
        "--model",
        required=True,
        help="a causal model: a training checkpoint (.ckpt) or its ONNX export (.onnx, no torch)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="the input is headerless PCM (always for -)"
    )
    parser.add_argument(
        "--rate", type=int, default=None, help="raw input: sample rate (default: the model's)"
    )
    parser.add_argument("--channels", type=int, default=2, help="raw input: channels (2)")
    parser.add_argument(
        "--format",
        default="f32le",
        help=f"raw input and --stdout: sample format, one of {', '.join(FORMATS)} (f32le)",
    )
    parser.add_argument(
        "--block", type=int, default=DEFAULT_BLOCK, help=f"frames read at a time ({DEFAULT_BLOCK})"
    )
    parser.add_argument(
        "--stdout", default=None, metavar="TARGET", help="also write TARGET as raw PCM to stdout"
    )
    parser.add_argument("--force", action="store_true", help="replace <target>.wav in out")
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N (.onnx: cpu, cuda or auto) (cpu)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (torch's, or onnxruntime's)"
    )
    args = parser.parse_args(argv)
    # torch's OpenMP threads wait for work passively, unless told otherwise: a slice is a
    # few milliseconds of work, and threads spinning between slices on a shared machine
    # take the cores other processes (and the next slice) need (experiments/results/stream.md)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        run = stream_file(
            args.model,
            args.input,
            args.out,
            raw=args.raw,
            rate=args.rate,
            channels=args.channels,
            fmt=args.format,
            block=args.block,
            stdout_target=args.stdout,
            force=args.force,
            device=args.device,
            threads=args.threads,
            log=sys.stderr,
        )
    except (ValueError, OSError) as err:  # StreamError, CheckpointError, ... are ValueErrors
        print(error_line(err), file=sys.stderr)
        return 1
    print(
        f"streamed {run['seconds']:.2f} s in {run['processing_seconds']:.2f} s (real-time "
        f"factor {run['real_time_factor']:.3f}); algorithmic latency {run['latency_ms']:.1f} ms",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
