"""Separation without the training stack: an exported network (ONNX) around the sliCQT's
NumPy backend. Imports no torch, Lightning or Hydra.

    from xslicq.inference import OnnxSeparator
    sep = OnnxSeparator.from_file("model.onnx")     # written by python -m xslicq.export
    stems = sep.separate(audio, sample_rate)         # (channels, samples) -> {target: ...}
    for span in sep.separate_spans(audio, sample_rate):  # the same, a chunk at a time
        ...

Data flow of :meth:`OnnxSeparator.separate_mixture`, the same stages as
:meth:`xslicq.system.SeparationSystem.separate` (``B`` batch, ``J`` targets, ``C``
channels, ``L`` samples)::

    mixture (B, C, L) float32
      -> SliCQT(backend="numpy")    ragged complex blocks (B, C, rows, S, M)
      -> |.|, RaggedToMatrix         (B, C, F, S, T) magnitudes
      -> network (onnxruntime)       masks (B, J, C, F, S, T) in [0, 1]
      -> RaggedToMatrix.inverse      masks on every block's grid (B, J, C, rows, S, M)
      -> mask * mixture              (optionally sum-to-one masks, Wiener-EM refinement)
      -> SliCQT.inverse              estimates (B, J, C, L)

The ONNX file holds the network only; everything else is rebuilt from the JSON the
exporter stores in the model's ``metadata_props`` under :data:`METADATA_KEY` (transform
parameters, matrix form, targets, mask and Wiener settings, :data:`FORMAT_VERSION`).
:meth:`OnnxSeparator.separate` takes the same input as :meth:`xslicq.Separator.separate`
(any rate from 8 kHz to 384 kHz, mono or stereo, any length in cross-faded chunks) and
gives the same stems to float tolerance. This module also holds what both separators
share: the input checks, the chunk plan and :class:`ChunkedSeparator` (cross-faded chunks,
yielded as finished stretches of the stems; a causal model's song streamed instead, slice
by slice with the network's state carried, as ``python -m xslicq.stream`` streams it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .checks import SAMPLE_RATE_RANGE, check_sample_rate, is_number
from .errors import ModelFileError, SeparationInputError
from .filtering_numpy import wiener
from .resample import resample
from .streamer import Streamer
from .version import __version__

# the sample rates separate() takes without ``any_rate=True``: SAMPLE_RATE_RANGE (checks.py)
ANY_RATE_HINT = "pass any_rate=True (separate: --any-rate) to resample from it anyway"
# the longest chunk separated at once: memory grows with the chunk, about 27 MiB a second
# for the default model (torch: 1155 MiB peak at 10 s, 2507 MiB at 60 s); a song shorter
# than its chunk is one chunk, so a larger bound would only let a long song exhaust memory
MAX_CHUNK_SECONDS = 60.0
METADATA_KEY = "xslicq"  # the metadata_props entry that holds the pipeline's JSON
FORMAT_VERSION = 1  # of that JSON; a reader refuses other versions
MATRIX_INPUT, MASK_OUTPUT = "magnitudes", "masks"  # the network's input and output names
# a causal (streaming) network's recurrent state: the state before the input's first slice
# in, the state after its last slice out (the ``stream`` entry of the metadata)
STATE_INPUTS = ("state_h", "state_c")
STATE_OUTPUTS = ("next_state_h", "next_state_c")
DEVICES = ("cpu", "cuda", "auto")  # where the ONNX network runs (onnxruntime provider)


# ---------------------------------------------------------------------- input checks
def check_seconds(value, name: str) -> float:
    """``value`` if it is a finite number of seconds, else a ValueError naming ``name``."""
    if not is_number(value, finite=True):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def check_chunking(chunk_seconds, overlap_seconds) -> tuple[float, float]:
    """``(chunk_seconds, overlap_seconds)`` as floats if ``chunk > 2 * overlap > 0`` and
    the chunk is at most :data:`MAX_CHUNK_SECONDS`."""
    chunk_seconds = check_seconds(chunk_seconds, "chunk_seconds")
    overlap_seconds = check_seconds(overlap_seconds, "overlap_seconds")
    if chunk_seconds > MAX_CHUNK_SECONDS:
        raise ValueError(
            f"chunk_seconds must be at most {MAX_CHUNK_SECONDS:g} (memory grows with it), "
            f"got {chunk_seconds:g}"
        )
    if not chunk_seconds > 2 * overlap_seconds > 0:
        raise ValueError(
            f"need chunk_seconds > 2 * overlap_seconds > 0, got "
            f"{chunk_seconds} and {overlap_seconds}"
        )
    return chunk_seconds, overlap_seconds


def check_rate(sample_rate, any_rate: bool = False) -> int:
    """``sample_rate`` as an int if it is a whole number of Hz (``44100`` or ``44100.0``) in
    :data:`SAMPLE_RATE_RANGE` (``any_rate``: any positive one), else a
    :class:`SeparationInputError` naming the value and what is allowed
    (:func:`xslicq.checks.check_sample_rate`)."""
    allowed = None if any_rate else SAMPLE_RATE_RANGE
    return check_sample_rate(
        sample_rate, allowed, form="whole", error=SeparationInputError, hint=ANY_RATE_HINT
    )


def check_audio(audio) -> tuple[np.ndarray, bool]:
    """``audio`` (channels, samples) or (samples,) as float32 stereo ``(2, samples)`` and
    whether it was mono; unusable audio is a :class:`SeparationInputError` saying why
    (the messages of :meth:`xslicq.Separator.separate`)."""
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise SeparationInputError(
            f"expected audio of shape (channels, samples) or (samples,), got shape {x.shape}"
        )
    if x.shape[0] > 2:
        raise SeparationInputError(
            f"expected mono or stereo audio, got {x.shape[0]} "
            "channels (is the array (samples, channels)?)"
        )
    if x.shape[1] == 0:
        raise SeparationInputError("the audio is empty")
    if not np.issubdtype(x.dtype, np.floating):
        raise SeparationInputError(f"audio must be floating point, got {x.dtype}")
    if not np.isfinite(x).all():
        raise SeparationInputError("the audio contains NaN or inf samples")
    if not x.any():  # no copy of a long song (NaN and inf are refused above)
        raise SeparationInputError("the audio is silent (all samples are zero)")
    mono = x.shape[0] == 1
    return np.ascontiguousarray(np.repeat(x, 2, 0) if mono else x, np.float32), mono


# ------------------------------------------------------------------------ chunk plan
def chunk_plan(n: int, chunk: int, overlap: int) -> list[tuple[int, np.ndarray]]:
    """How ``n`` samples are cut into chunks of ``chunk`` samples that overlap by
    ``overlap``: ``[(start, weights), ...]``, ``weights`` (piece length,) float32 that
    fade in over the first ``overlap`` samples (but the first chunk's) and out over the last
    (but the last chunk's), so neighbours' weights sum to one. One chunk of ones when
    ``n <= chunk``."""
    if n <= chunk:
        return [(0, np.ones(n, np.float32))]
    step = chunk - overlap
    starts = list(range(0, max(n - overlap, 1), step))
    fade = (0.5 - 0.5 * np.cos(math.pi * (np.arange(overlap) + 0.5) / overlap)).astype(np.float32)
    plan = []
    for i, start in enumerate(starts):
        length = min(chunk, n - start)
        w = np.ones(length, np.float32)
        if i > 0:
            w[:overlap] = fade
        if i < len(starts) - 1 and length > overlap:
            w[-overlap:] = 1.0 - fade
        plan.append((start, w))
    return plan


class ChunkedSeparator:
    """Separation of a whole song in cross-faded chunks, one finished stretch of the stems
    at a time: what :class:`OnnxSeparator` and the torch :class:`xslicq.Separator` share
    (the checks, :func:`chunk_plan`, the cross-fade, resampling and mono), so both stream
    their stems to ``python -m xslicq.separate`` the same way.

    A causal model is not cut into chunks: its song goes through a
    :class:`~xslicq.streamer.Streamer` on the separator's stream engine
    (:meth:`_stream_engine`), ``chunk_seconds`` at a time, so the network's state and the
    slices run on across the whole song and the stems are those of ``python -m
    xslicq.stream`` (and of the system on the whole song at once) in bounded memory.

    A subclass sets ``targets``, ``sample_rate`` (the model's), ``chunk_seconds`` and
    ``overlap_seconds``, separates one chunk in :meth:`_separate_chunk` and, for a causal
    model, returns its engine from :meth:`_stream_engine`.
    """

    targets: tuple[str, ...]
    sample_rate: int
    chunk_seconds: float
    overlap_seconds: float

    def _separate_chunk(self, mixture: np.ndarray) -> np.ndarray:
        """(1, 2, n) float32 mixture at the model's rate -> (J, 2, n) float32 estimates."""
        raise NotImplementedError

    def _stream_engine(self):
        """The :class:`~xslicq.streamer.StreamEngine` that streams a causal model's song, or
        ``None``: the song is cut into cross-faded chunks (:meth:`_separate_chunk`)."""
        return None

    def _check(self, audio, sample_rate, any_rate: bool) -> tuple[np.ndarray, int, bool]:
        """Checked ``(stereo float32 audio (2, samples), rate, mono)``
        (:func:`check_rate`, :func:`check_audio`)."""
        sample_rate = check_rate(sample_rate, any_rate)
        x, mono = check_audio(audio)
        return x, sample_rate, mono

    def separate(
        self, audio, sample_rate: int, progress: bool = False, *, any_rate: bool = False
    ) -> dict[str, np.ndarray]:
        """Separate ``audio`` (channels, samples) at ``sample_rate`` into the model's targets.

        ``sample_rate`` is a whole number of Hz in :data:`SAMPLE_RATE_RANGE` (``any_rate``:
        any positive one); anything else, like unusable audio, is a
        :class:`SeparationInputError`. Returns ``{target: (channels, samples) float32 numpy}``
        with the input's length and channel count: the stretches of :meth:`separate_spans`
        put together."""
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

    def _spans(self, x: np.ndarray, sample_rate: int, mono: bool, progress: bool):
        """Checked (2, N) input at ``sample_rate`` -> {target: (channels, n)} stretches."""
        n_in = x.shape[-1]
        if sample_rate == self.sample_rate:
            spans = self._chunks(x, progress)
        else:
            x = resample(x, sample_rate, self.sample_rate)
            est = np.concatenate(list(self._chunks(x, progress)), -1)  # (J, 2, N)
            est = resample(est, self.sample_rate, sample_rate)
            if est.shape[-1] != n_in:  # resampling may round the length
                est = np.pad(est, ((0, 0), (0, 0), (0, max(0, n_in - est.shape[-1]))))[..., :n_in]
            spans = [est]
        for est in spans:
            if mono:
                est = est.mean(1, keepdims=True)
            yield {t: np.ascontiguousarray(est[j]) for j, t in enumerate(self.targets)}

    def _chunks(self, x: np.ndarray, progress: bool):
        """(2, N) -> (J, 2, n) finished stretches in order, from the cross-faded chunks of
        :func:`chunk_plan`: each chunk's stretch up to the next chunk's start is final once
        the previous chunk's faded tail is added. A causal model's from its stream
        (:meth:`_streamed`)."""
        from tqdm import tqdm

        engine = self._stream_engine()
        if engine is not None:
            yield from self._streamed(engine, x, progress)
            return
        chunk = int(self.chunk_seconds * self.sample_rate)
        overlap = int(self.overlap_seconds * self.sample_rate)
        plan = chunk_plan(x.shape[-1], chunk, overlap)
        held, held_start = None, 0  # the last chunk's weighted estimate, not yet final
        for start, w in tqdm(plan, disable=not progress, desc="separating", unit="chunk"):
            est = self._separate_chunk(x[None, :, start : start + len(w)]) * w
            if held is not None:
                shared = held_start + held.shape[-1] - start  # samples both chunks cover
                est[..., :shared] += held[..., start - held_start :]
                yield held[..., : start - held_start]
            held, held_start = est, start
        yield held

    def _streamed(self, engine, x: np.ndarray, progress: bool):
        """(2, N) -> (J, 2, n) finished stretches in order: ``x`` pushed through a
        :class:`~xslicq.streamer.Streamer` on ``engine`` ``chunk_seconds`` at a time (the
        slices each push completes in one engine step), then the stream's end."""
        from tqdm import tqdm

        chunk = int(self.chunk_seconds * self.sample_rate)
        streamer = Streamer(engine)
        starts = range(0, x.shape[-1], chunk)
        for start in tqdm(starts, disable=not progress, desc="separating", unit="chunk"):
            out = streamer.push(x[:, start : start + chunk])
            if out.shape[-1]:
                yield out
        yield streamer.finish()


# ------------------------------------------------------------------------ the network
def check_metadata(meta, source) -> dict:
    """``meta`` (the exporter's JSON, parsed) if it describes a pipeline this version
    rebuilds, else a :class:`ModelFileError` naming ``source`` and what is wrong."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: its {METADATA_KEY!r} metadata is not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{source} has xslicq model format {version!r}; this xslicq ({__version__}) reads "
            f"format {FORMAT_VERSION}: export it again with this version"
        )
    missing = [k for k in ("transform", "matrix", "targets", "channels") if k not in meta]
    if missing:
        raise ModelFileError(f"{source}: its metadata lacks {', '.join(missing)}")
    stream = meta.get("stream")
    if stream is not None and not (
        isinstance(stream, dict)
        and isinstance(stream.get("state"), dict)
        and "shape" in stream["state"]
    ):
        raise ModelFileError(f"{source}: its metadata's stream entry lacks the state's shape")
    return meta


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda:
        raise ValueError(
            f"device=cuda needs onnxruntime's CUDAExecutionProvider (the onnxruntime-gpu "
            f"package and a GPU); this onnxruntime has {', '.join(available)}: use device=cpu"
        )
    if device == "cuda" or (device == "auto" and cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxNetwork:
    """An exported network run by onnxruntime: matrix magnitudes (B, C, F, S, T) float32
    -> masks (B, J, C, F, S, T) float32, any B and S.

    The network of a causal model (exported as a stream step, ``streaming``) also takes
    and returns its recurrent state: :meth:`step` carries it from call to call, and a call
    on the whole song starts from :meth:`initial_state` (zeros), as the torch network does.

    Args:
        model: the ONNX model, a path or its serialised bytes.
        device: ``cpu``, ``cuda`` (onnxruntime-gpu) or ``auto`` (CUDA when available).
        threads: onnxruntime's threads within an operator (``None``: its default, all
            cores).
        spinning: whether idle onnxruntime threads spin for the next operator (its
            default); off for small repeated calls on a shared machine (the stream).
    """

    def __init__(
        self, model, device: str = "cpu", threads: int | None = None, spinning: bool = True
    ):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModuleNotFoundError(
                "the ONNX engine needs onnxruntime: pip install 'xslicq[infer]'"
            ) from None
        source = model if isinstance(model, bytes) else str(model)
        what = "the exported model" if isinstance(model, bytes) else str(model)
        try:
            options = ort.SessionOptions()
            if threads is not None:
                options.intra_op_num_threads = int(threads)
            if not spinning:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(source, options, providers=_providers(device))
        except ValueError:
            raise
        except Exception as err:  # onnxruntime's own errors for an unreadable model
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelFileError(f"cannot load {what} with onnxruntime ({first})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ModelFileError(
                f"{what} is not an xslicq model (no {METADATA_KEY!r} metadata): export one "
                "with python -m xslicq.export checkpoint=model.ckpt format=onnx"
            )
        try:
            meta = json.loads(props[METADATA_KEY])
        except ValueError as err:
            raise ModelFileError(
                f"{what}: its {METADATA_KEY!r} metadata is damaged ({err})"
            ) from None
        self.metadata = check_metadata(meta, what)
        self.source = what
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        self.streaming = "stream" in self.metadata

    @classmethod
    def from_file(cls, path, device: str = "cpu", **kwargs) -> OnnxNetwork:
        """The network of an ONNX file (``kwargs``: ``threads``, ``spinning``); a missing
        path or a folder is a :class:`ModelFileError` naming it."""
        path = Path(str(path))
        if path.is_dir():
            raise ModelFileError(f"model {path} is a folder, not an .onnx file")
        if not path.is_file():
            raise ModelFileError(f"model {path} does not exist")
        return cls(path, device=device, **kwargs)

    def check_pipeline(self, channels: int, bins: int, columns: int, targets: int) -> None:
        """A :class:`ModelFileError` naming every disagreement between the graph's fixed
        dimensions and the pipeline its metadata describes (``channels``, frequency ``bins``
        and matrix ``columns`` per slice of the transform, number of ``targets``, a causal
        network's state shape), found when the model is loaded rather than as an
        onnxruntime error on the first chunk: the input is (batch, C, F, slices, T), the
        masks (batch, J, C, F, slices, T)."""
        graph_in, graph_out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        c, f, t = ("channels", channels), ("frequency bins", bins), ("columns per slice", columns)
        wanted = [  # (graph argument, rank, {axis: (what, value)})
            (graph_in, 5, {1: c, 2: f, 4: t}),
            (graph_out, 6, {1: ("targets", targets), 2: c, 3: f, 5: t}),
        ]
        problems = []
        for arg, rank, dims in wanted:
            shape = list(arg.shape)
            if len(shape) != rank:
                problems.append(f"its {arg.name!r} has {len(shape)} dimensions, not {rank}")
                continue
            for axis, (what, value) in dims.items():
                if isinstance(shape[axis], int) and shape[axis] != value:
                    problems.append(
                        f"the metadata gives {value} {what}, the network's {arg.name!r} "
                        f"{shape[axis]} (axis {axis})"
                    )
        if self.streaming:
            state = self.metadata["stream"]["state"]["shape"]
            for arg in self.session.get_inputs()[1:]:
                shape = list(arg.shape)
                differ = len(shape) != len(state) or any(
                    isinstance(a, int) and isinstance(b, int) and a != b
                    for a, b in zip(shape, state)
                )
                if differ:
                    problems.append(
                        f"the metadata gives the state shape {state}, the network's "
                        f"{arg.name!r} {shape}"
                    )
        if problems:
            raise ModelFileError(
                f"{self.source}: its metadata disagrees with its network: "
                + "; ".join(problems)
                + " (a file edited after export? export it again with python -m xslicq.export)"
            )

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, ...]:
        """A causal network's state before the first slice: zeros of the exported state
        shapes (``"batch"`` -> ``batch``), one per :data:`STATE_INPUTS`."""
        if not self.streaming:
            raise ValueError("the network is not causal: it has no recurrent state")
        shape = [
            batch if d == "batch" else int(d) for d in self.metadata["stream"]["state"]["shape"]
        ]
        return tuple(np.zeros(shape, np.float32) for _ in STATE_INPUTS)

    def step(self, matrix: np.ndarray, state) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """A causal network on the next slices: ``matrix`` (B, C, F, S, T) and the state
        after the slices before them -> (masks (B, J, C, F, S, T), the state after the last
        slice of ``matrix``)."""
        feed = {self.input_name: np.ascontiguousarray(matrix, np.float32)}
        feed.update(
            {name: np.ascontiguousarray(x, np.float32) for name, x in zip(STATE_INPUTS, state)}
        )
        masks, *state = self.session.run([MASK_OUTPUT, *STATE_OUTPUTS], feed)
        return masks, tuple(state)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        if self.streaming:  # the whole input from the start: the state before it is zeros
            return self.step(matrix, self.initial_state(matrix.shape[0]))[0]
        feed = {self.input_name: np.ascontiguousarray(matrix, np.float32)}
        return self.session.run(None, feed)[0]


# ------------------------------------------------------------------------ the separator
class OnnxSeparator(ChunkedSeparator):
    """The separator of an exported network, in NumPy and onnxruntime only: its
    :meth:`~ChunkedSeparator.separate` and :meth:`~ChunkedSeparator.separate_spans` take the
    input of :meth:`xslicq.Separator.separate` and give the same stems to float tolerance.

    A causal network (exported as a stream step, ``streaming``) makes the separator a
    :class:`~xslicq.streamer.StreamEngine` as well (:meth:`step`, the engine of ``python -m
    xslicq.stream --model model.onnx``), and its songs are streamed through it, the
    network's state carried (:class:`ChunkedSeparator`), unless Wiener-EM is on.

    Args:
        network: a callable matrix (B, C, F, S, T) -> masks (B, J, C, F, S, T) on NumPy
            arrays (an :class:`OnnxNetwork`; a causal one also has ``step`` and
            ``initial_state``).
        metadata: the pipeline the network belongs to (:func:`check_metadata`).
        chunk_seconds, overlap_seconds: long input is cut into chunks of ``chunk_seconds``
            cross-faded over ``overlap_seconds`` (as :class:`xslicq.Separator`; a causal
            network's stream takes ``chunk_seconds`` of input at a time).

    Attributes:
        targets, sample_rate, channels, transform (the NumPy
        :class:`~xslicq.transform.SliCQT`), r2m, wiener_iterations (settable),
        mask_sum_to_one, streaming, sllen, trlen, lookahead.
    """

    def __init__(
        self, network, metadata: dict, chunk_seconds: float = 10.0, overlap_seconds: float = 1.0
    ):
        from .transform import RaggedToMatrix, SliCQT
        from .transform.slicing import slice_window

        self.chunk_seconds, self.overlap_seconds = check_chunking(chunk_seconds, overlap_seconds)
        meta = check_metadata(metadata, "the model")
        self.network, self.metadata = network, meta
        self.transform = SliCQT(**meta["transform"], backend="numpy")
        matrix = meta["matrix"]
        self.r2m = RaggedToMatrix(self.transform, mode=matrix["mode"], T=matrix["T"])
        self.targets = tuple(meta["targets"])
        self.channels = int(meta["channels"])
        self.sample_rate = int(self.transform.sample_rate)
        self.wiener_iterations = int(meta.get("wiener_iterations", 0))
        self.mask_sum_to_one = bool(meta.get("mask_sum_to_one", False))
        stream = meta.get("stream")
        self.streaming = stream is not None and hasattr(network, "step")
        self.sllen, self.trlen = int(self.transform.sllen), int(self.transform.trlen)
        self.lookahead = int(stream.get("lookahead", 0)) if stream else 0
        self._window = slice_window(self.sllen, self.trlen).astype(np.float32)
        if hasattr(network, "check_pipeline"):  # an OnnxNetwork: its graph against the metadata
            network.check_pipeline(self.channels, self.r2m.nb_bins, self.r2m.T, len(self.targets))

    @classmethod
    def from_file(cls, path, device: str = "cpu", **kwargs) -> OnnxSeparator:
        """The separator of an ONNX file written by ``python -m xslicq.export``; a missing
        or foreign file is a :class:`ModelFileError` naming it."""
        network = OnnxNetwork.from_file(path, device=device)
        return cls(network, network.metadata, **kwargs)

    # ------------------------------------------------------------------ stages
    def masks(self, mags: list) -> list:
        """Mixture magnitudes (ragged) -> per-target masks (B, J, C, rows, S, M) per block."""
        matrix = self.r2m(mags)  # (B, C, F, S, T)
        return self.ragged_masks(self.network(matrix), matrix.shape)

    def ragged_masks(self, out: np.ndarray, shape: tuple) -> list:
        """The network's masks ``out`` (B, J, C, F, S, T) for a matrix of ``shape``
        (B, C, F, S, T) -> masks on every block's grid (B, J, C, rows, S, M), summing to one
        over the targets with ``mask_sum_to_one``."""
        b, c, f, s, t = shape
        j = len(self.targets)
        if out.shape != (b, j, c, f, s, t):
            raise ModelFileError(
                f"the network returned masks of shape {out.shape}, expected {(b, j, c, f, s, t)}"
            )
        ragged = self.r2m.inverse(out.reshape(b * j, c, f, s, t))
        masks = [m.reshape((b, j) + m.shape[1:]) for m in ragged]
        if self.mask_sum_to_one:
            masks = [m / np.maximum(m.sum(1, keepdims=True), 1e-8) for m in masks]
        return masks

    def separate_mixture(self, mixture: np.ndarray) -> np.ndarray:
        """(B, C, L) float32 mixture -> (B, J, C, L) float32 estimates, in one piece."""
        coefs = self.transform(mixture)
        masks = self.masks([np.abs(c) for c in coefs])
        est = [c[:, None] * m for c, m in zip(coefs, masks)]
        if self.wiener_iterations:
            est = wiener(est, coefs, self.wiener_iterations)
        b, j = mixture.shape[0], len(self.targets)
        flat = [e.reshape((b * j,) + e.shape[2:]) for e in est]
        waves = self.transform.inverse(flat, length=mixture.shape[-1])
        return waves.reshape((b, j) + mixture.shape[1:]).astype(np.float32, copy=False)

    def _separate_chunk(self, mixture: np.ndarray) -> np.ndarray:
        """(1, 2, n) -> (J, 2, n): :meth:`separate_mixture` of one chunk."""
        return self.separate_mixture(mixture)[0]

    # ------------------------------------------------------------------ the stream step
    def _stream_engine(self) -> OnnxSeparator | None:
        """This separator, when its network streams and Wiener-EM (not causal) is off."""
        return self if self.streaming and not self.wiener_iterations else None

    def initial_state(self) -> tuple[np.ndarray, ...]:
        """The causal network's state before the first slice (zeros)."""
        return self.network.initial_state(1)

    def step(self, frames: np.ndarray, state) -> tuple[np.ndarray, tuple]:
        """The :class:`~xslicq.streamer.StreamEngine` step of a causal network, the stages
        of :meth:`separate_mixture` on the next slices::

            frames (C, S, N) * slice window -> SliCQT.analyse_slices  (1, C, rows, S, M)
              -> |.|, RaggedToMatrix                                   (1, C, F, S, T)
              -> network step (onnxruntime), state (h, c) carried      (1, J, C, F, S, T)
              -> ragged masks, * mixture coefficients                  (1, J, C, rows, S, M)
              -> SliCQT.synthesise_slices                              (J, C, S, N)
        """
        x = np.asarray(frames, np.float32) * self._window
        coefs = self.transform.analyse_slices(x[None])  # (1, C, rows, S, M) per block
        matrix = self.r2m([np.abs(c) for c in coefs])  # (1, C, F, S, T)
        out, state = self.network.step(matrix, state)
        masks = self.ragged_masks(out, matrix.shape)  # (1, J, C, rows, S, M) per block
        est = [c[0, None] * m[0] for c, m in zip(coefs, masks)]  # (J, C, rows, S, M)
        return np.asarray(self.transform.synthesise_slices(est), np.float32), state
