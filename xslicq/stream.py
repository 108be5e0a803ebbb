"""Stream a separation block by block, with a causal model.

    python -m xslicq.stream --model model.ckpt song.wav out/
    python -m xslicq.stream --model model.onnx song.wav out/    # exported: no torch needed
    ... | python -m xslicq.stream --model model.ckpt --raw --rate 44100 --channels 2 \\
              --format f32le - out/ --stdout vocals | ...

Reads audio a block at a time (a file through soundfile, or headerless PCM from a file or
from stdin with ``-``), separates it hop by hop and writes ``out/<target>.wav`` as the
output comes (and, with ``--stdout TARGET``, that target as raw PCM to stdout).

The stream itself (input blocks cut into slices, an engine step on the slices each block
completes, the output overlap-added) is :class:`xslicq.streamer.Streamer`: every stage is
slice-local except the network, which must be causal (its mask for a slice depends on that
slice and earlier ones: ``model.causal``, e.g. Open-Unmix with ``unidirectional=True``,
trained with ``python -m xslicq.train experiment=stream``), so the streamed stems equal the
offline separation of the whole signal by the same system, and those of ``python -m
xslicq.separate`` (which streams a causal model the same way, ``--chunk-seconds`` of input
at a time). The first sample of a hop waits for the whole next slice but its zero-window
margin: the algorithmic latency is ``N - (N / 4 - trlen / 2)`` samples
(:func:`algorithmic_latency`). Wiener-EM is not causal (it estimates over the whole song)
and is left out.

The engine (slices in, stem slices out) is the only part that needs a framework: the
stream, the readers and the writers are numpy and soundfile. :class:`TorchEngine`
(:mod:`xslicq.separator`, imported with torch only when asked for) runs a training
checkpoint; :class:`OnnxStreamEngine` runs the network of one exported by
``python -m xslicq.export checkpoint=... format=onnx`` (a stream step: magnitudes and
recurrent state in, masks and state out) with the sliCQT's NumPy backend and onnxruntime.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from .audio import check_complete, special_file
from .checks import is_int
from .cli import ArgumentParser, run_command, temporary_file
from .errors import StreamConfigError
from .inference import OnnxNetwork, OnnxSeparator
from .outputs import OutputFolder, check_writable, claim, write_failure
from .streamer import StreamEngine, Streamer, StreamError, algorithmic_latency

__all__ = [
    "FORMATS",
    "OnnxStreamEngine",
    "StreamEngine",
    "StreamError",
    "Streamer",
    "algorithmic_latency",
    "main",
    "open_engine",
    "stream_file",
]

# headerless PCM: --format name -> (numpy dtype, full scale of an integer format)
FORMATS = {
    "f32le": ("<f4", None),
    "f64le": ("<f8", None),
    "s16le": ("<i2", 2**15),
    "s32le": ("<i4", 2**31),
}
DEFAULT_BLOCK = 1024  # input frames read at a time
# the most frames read at a time: a block is held, and its slices go through the engine in
# one step, so memory grows with it as with separate's chunks (about 27 MiB a second for the
# default model); 1 << 20 frames is 23.8 s at 44.1 kHz
MAX_BLOCK = 1 << 20


def __getattr__(name: str):
    """:class:`xslicq.torch_separation.TorchEngine` as ``xslicq.stream.TorchEngine``,
    imported (with torch) only when asked for: the stream itself needs no torch."""
    if name == "TorchEngine":
        from .torch_separation import TorchEngine

        return TorchEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- engines
class OnnxStreamEngine(OnnxSeparator):
    """The :class:`~xslicq.streamer.StreamEngine` of a causal network exported by
    ``python -m xslicq.export checkpoint=... format=onnx``, without torch: an
    :class:`~xslicq.inference.OnnxSeparator` (its :meth:`~xslicq.inference.OnnxSeparator.step`:
    the sliCQT's NumPy backend and onnxruntime, the stages of the torch engine's step) that
    refuses a whole-song network.

    Args:
        network: an :class:`xslicq.inference.OnnxNetwork` exported as a stream step (its
            metadata has a ``stream`` entry); a whole-song network is a :class:`StreamError`.
        source: how that error names the model.
    """

    def __init__(self, network, source: str = "the ONNX model"):
        meta = network.metadata
        if not network.streaming:
            name = meta.get("network", {}).get("class", "?")
            raise StreamConfigError(
                f"{source} was exported from a non-causal model ({name}): its masks "
                "depend on the whole song, so it cannot stream; separate whole files with "
                "python -m xslicq.separate --model model.onnx, or train a causal model "
                "(python -m xslicq.train experiment=stream) and export its checkpoint "
                "(python -m xslicq.export checkpoint=last.ckpt format=onnx)"
            )
        super().__init__(network, meta)
        self.skipped_wiener = self.wiener_iterations

    @classmethod
    def from_file(cls, path, device: str = "cpu", threads: int | None = None):
        """The engine of an ``.onnx`` file; onnxruntime's idle threads do not spin between
        slices (a slice is a few milliseconds of work on a shared machine)."""
        try:
            network = OnnxNetwork.from_file(path, device=device, threads=threads, spinning=False)
        except ModuleNotFoundError as err:  # onnxruntime is not installed
            raise StreamError(str(err)) from None
        return cls(network, source=str(path))


def open_engine(model, device: str = "cpu", threads: int | None = None) -> StreamEngine:
    """The engine for ``--model``: a training checkpoint (``.ckpt``) runs with torch
    (``threads``: torch's CPU threads, process-wide), an exported causal network
    (``.onnx``) with NumPy and onnxruntime (``threads``: its threads within an operator)."""
    path = Path(str(model))
    suffix = path.suffix.lower()
    if threads is not None and (not is_int(threads) or threads < 1):
        raise StreamConfigError(f"--threads must be >= 1, got {threads!r}")
    if suffix == ".onnx":
        return OnnxStreamEngine.from_file(path, device=device, threads=threads)
    if suffix != ".ckpt":
        raise StreamConfigError(
            f"--model must be a training checkpoint (.ckpt) or an ONNX model (.onnx), got {model}"
        )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from .checkpoint import load_system  # torch and Lightning: a checkpoint's only
    from .torch_separation import TorchEngine

    return TorchEngine(load_system(path, device=device))


# ---------------------------------------------------------------------- reading
def check_format(name: str) -> tuple[np.dtype, int | None]:
    """The numpy dtype and integer full scale of a ``--format`` name."""
    if name not in FORMATS:
        raise StreamConfigError(f"--format must be one of {', '.join(FORMATS)}, got {name!r}")
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
    kind = special_file(path)
    pipe = kind == "a named pipe"  # read as it comes, once (bash's <(...) gives one)
    if kind is not None and not pipe:
        raise StreamError(f"audio file {path} is {kind}, not a regular file")
    if not pipe and not path.is_file():
        raise StreamError(f"audio file {path} does not exist")
    try:
        handle = sf.SoundFile(str(path))
    except (RuntimeError, OSError) as err:  # LibsndfileError: not a format it reads
        raise StreamError(
            f"cannot read {path} as audio ({' '.join(str(err).split())}); for headerless "
            "PCM give --raw with --rate, --channels and --format"
        ) from None
    rate, declared = handle.samplerate, handle.frames
    if not pipe:  # a header that promises more than the file holds, as separate refuses it
        try:
            check_complete(path, handle, declared, rate)
        except ValueError:
            handle.close()
            raise
    # a WAV written to a pipe (ffmpeg ... -f wav -) leaves its length open: a data size of
    # 0xFFFFFFFF bytes, which libsndfile counts as frames; only a length under 2 GiB (at 4
    # bytes a sample or fewer) is one the header states
    stated = declared * max(1, handle.channels) * 4 < 0x7FFF0000 if pipe else True

    def blocks():
        read = 0
        with handle:
            while True:
                try:
                    x = handle.read(block, dtype="float32", always_2d=True)
                except RuntimeError as err:  # LibsndfileError: a FLAC's frames stop, ...
                    raise StreamError(
                        f"audio file {path} is damaged or cut short: soundfile cannot read "
                        f"on after {read / rate:.2f} s ({' '.join(str(err).split())})"
                    ) from None
                if not len(x):
                    break
                read += len(x)
                yield x.T
        if stated and read < declared:  # a FLAC or a pipe cut short, found at its end
            raise StreamError(
                f"audio file {path} is cut short: its header says {declared / rate:.2f} s but "
                f"it holds {read / rate:.2f} s of audio (an interrupted download or copy?)"
            )

    return rate, handle.channels, blocks()


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
def plan_output(out: Path, targets, force: bool, inputs=()) -> list[str]:
    """A :class:`~xslicq.outputs.OutputError` unless ``out`` is, or can be made as, a folder
    in which ``<target>.wav`` may be written: existing ones only with ``force`` and only
    those an earlier stream wrote there (its manifest ``.xslicq-stream.json``), never a
    symbolic link or one of ``inputs`` (:mod:`xslicq.outputs`). Returns the stream's own
    earlier files that this run does not write again (removed at the end)."""
    check_writable(out)
    return OutputFolder(out, "stream", inputs).plan([f"{t}.wav" for t in targets], force, "stems")


def to_pcm(x: np.ndarray, fmt: str) -> bytes:
    """(channels, samples) float -> interleaved headerless PCM bytes (integers clipped)."""
    dtype, scale = check_format(fmt)
    y = x.T
    if scale:
        y = np.clip(np.rint(y * scale), -scale, scale - 1)
    return np.ascontiguousarray(y, dtype).tobytes()


class StemWriters:
    """``<out>/<target>.wav`` (float) per target, and one target's raw PCM to a binary
    stream (``--stdout``). Each WAV is written as the output comes to a temporary
    ``.<target>-*.wav.partial`` in ``out``, opened on the first output, and renamed into
    place when the stream ends (:meth:`close`), so a stem file is whole or absent; the
    stream's manifest lists them (:class:`xslicq.outputs.OutputFolder`)."""

    def __init__(
        self, out, targets, rate, channels, stdout=None, stdout_target=None, fmt=None, stale=()
    ):
        self.out, self.targets, self.rate, self.channels = out, tuple(targets), rate, channels
        self.stdout, self.fmt, self.stale = stdout, fmt, list(stale)
        self.stdout_index = None if stdout_target is None else self.targets.index(stdout_target)
        self.folder = None if out is None else OutputFolder(out, "stream")
        self.files, self.tmps = [], []

    def _open(self) -> None:
        import soundfile as sf

        self.folder.begin([f"{t}.wav" for t in self.targets], self.stale)
        for t in self.targets:
            try:
                handle, tmp = temporary_file(self.out, f".{t}-", ".wav.partial")
                os.close(handle)
                self.tmps.append(tmp)
                self.files.append(
                    sf.SoundFile(
                        tmp,
                        "w",
                        samplerate=self.rate,
                        channels=self.channels,
                        subtype="FLOAT",
                        format="WAV",
                    )
                )
            except (OSError, RuntimeError) as err:
                raise write_failure(err, self.out / f"{t}.wav") from None

    def write(self, stems: np.ndarray) -> None:
        """``stems`` (J, C, m) of the model's channels; mono output is their mean."""
        if stems.shape[-1] == 0:
            return
        if self.channels == 1:
            stems = stems.mean(1, keepdims=True)
        if self.out is not None and not self.files:
            self._open()
        for t, f, stem in zip(self.targets, self.files, stems):
            try:
                f.write(stem.T)
                f.flush()
            except RuntimeError as err:  # libsndfile's: a full disk, a file size limit
                raise write_failure(err, self.out / f"{t}.wav") from None
        if self.stdout is not None:
            self.stdout.write(to_pcm(stems[self.stdout_index], self.fmt))
            self.stdout.flush()

    def close(self, complete: bool = True) -> None:
        """Close the files; ``complete``: rename them into place and record them, else
        remove them (the manifest then lists only what is there)."""
        try:
            for f in self.files:
                f.close()
            if complete and self.files:
                for t, tmp in zip(self.targets, self.tmps):
                    try:
                        os.replace(tmp, self.out / f"{t}.wav")
                    except OSError as err:
                        raise write_failure(err, self.out / f"{t}.wav") from None
                    self.folder.record(f"{t}.wav")
                self.folder.finish(self.stale)
        finally:
            for tmp in self.tmps:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            if self.files and not (complete and self.folder.files):
                self.folder.settle()
            self.files, self.tmps = [], []


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
        raise StreamConfigError("nothing to write: give an output folder, --stdout TARGET, or both")
    check_format(fmt)
    if not is_int(block) or not 1 <= block <= MAX_BLOCK:
        raise StreamConfigError(
            f"--block must be a whole number of frames from 1 to {MAX_BLOCK} (memory grows "
            f"with it), got {block!r}"
        )
    raw = raw or str(source) == "-"
    if raw and (not is_int(channels) or channels < 1):
        raise StreamConfigError(f"--channels must be a whole number >= 1, got {channels!r}")
    engine = open_engine(model, device=device, threads=threads)
    if stdout_target is not None and stdout_target not in engine.targets:
        raise StreamConfigError(
            f"--stdout must name one of the model's targets ({', '.join(engine.targets)}), "
            f"got {stdout_target!r}"
        )
    claimed = contextlib.ExitStack()
    stale = []
    if out is not None:  # one run at a time in `out`, from here to the last file
        check_writable(out)
        claimed.enter_context(claim(out))
        try:
            stale = plan_output(out, engine.targets, force, [source, model])
        except BaseException:
            claimed.close()
            raise
    with claimed:
        return _stream(
            engine,
            source,
            out,
            raw,
            rate,
            channels,
            fmt,
            block,
            stdout_target,
            stale,
            stdin,
            stdout,
            log,
        )


def _stream(
    engine, source, out, raw, rate, channels, fmt, block, stdout_target, stale, stdin, stdout, log
) -> dict:
    """:func:`stream_file` once the engine and the output are checked (and claimed)."""
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
    writers = StemWriters(out, engine.targets, rate, channels, sink, stdout_target, fmt, stale)
    busy = 0.0
    complete = False
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
        complete = True
    finally:
        try:
            writers.close(complete)
        finally:
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
    parser = ArgumentParser(prog="python -m xslicq.stream", description=__doc__.splitlines()[0])
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
    status, run = run_command(
        lambda: stream_file(
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
    )
    if status:
        return status
    print(
        f"streamed {run['seconds']:.2f} s in {run['processing_seconds']:.2f} s (real-time "
        f"factor {run['real_time_factor']:.3f}); algorithmic latency {run['latency_ms']:.1f} ms",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
