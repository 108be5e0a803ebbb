"""The stream of a causal separation: input blocks in, slices through an engine, overlap-added
output out. NumPy only: the engine (:class:`StreamEngine`) is the only part that needs a
framework.

How a stream is cut (``N = sllen``, ``hop = N / 2``, shapes ``C`` channels, ``J`` targets,
``S`` slices)::

    input samples, any block size
      -> slice s: samples [(s - 1) hop, (s + 1) hop)    as soon as the last one whose slice
                                                        window is not zero has arrived
      -> engine.step  (C, S, N) -> (J, C, S, N)         the slices complete so far, in one
                                                        call: window, sliCQT, causal network
                                                        (state carried), masks, inverse
                                                        sliCQT
      -> overlap-add: hop s - 1 = tail of slice s - 1 + head of slice s, now final
    output, a hop at a time

Every stage is slice-local except the network, which must be causal (its mask for a slice
depends on that slice and earlier ones), so the streamed stems equal the separation of the
whole signal at once by the same system, whatever the block size: ``python -m xslicq.stream``
pushes blocks of 1024 samples (one slice a step), :class:`xslicq.Separator` and
:class:`xslicq.inference.OnnxSeparator` push a causal model's song ``chunk_seconds`` at a time
(:meth:`xslicq.inference.ChunkedSeparator.separate`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .errors import StreamError


def algorithmic_latency(sllen: int, trlen: int, lookahead: int = 0) -> int:
    """Samples from a sample's arrival until its separated output is final.

    A hop of output ``[k hop, (k + 1) hop)`` is final once slice ``k + 1``, which ends at
    ``(k + 2) hop``, is analysed. Its last ``sllen / 4 - trlen / 2`` samples fall where the
    slice window is zero, so the slice is complete without them: the first sample of the hop
    waits ``sllen - (sllen / 4 - trlen / 2)`` samples, plus the network's ``lookahead`` (0
    for a causal network). Reading the input in blocks adds up to one block more.
    """
    return int(sllen) - (int(sllen) // 4 - int(trlen) // 2) + int(lookahead)


class StreamEngine(Protocol):
    """The slices of a stream: raw mixture samples in, separated slices out.

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

    def step(self, frames: np.ndarray, state) -> tuple[np.ndarray, object]:
        """``frames`` (C, S, sllen) float32: the raw (not windowed) mixture samples of the
        next ``S`` consecutive slices, slice ``s`` being ``[(s - 1) hop, (s + 1) hop)``, zeros
        before the start and after the end -> ``((J, C, S, sllen) float32 windowed separated
        slices, to be overlap-added; the state after the last of them)``."""


class Streamer:
    """Cut an input stream into slices, run the engine on them, overlap-add the output.

    ``push`` takes the next input block and returns the output that is final so far (the
    slices the block completes go to the engine in one step); ``finish`` returns the rest,
    so that the output has exactly the input's length and equals the separation of the
    whole input at once by the same system.

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

    def _ready(self) -> int:
        """How many slices from ``s`` on are complete: every sample under the non-zero
        window of slice ``r`` is in once ``received >= (r + 1) hop - margin``."""
        return max(0, (self.received + self.margin) // self.hop - self._slice)

    def _step(self, n: int) -> np.ndarray:
        """Analyse slices ``s .. s + n - 1`` in one engine step; return hops ``s - 1 ..
        s + n - 2`` of the output (J, C, n hop), now final (hop -1, before the signal, left
        out)."""
        if n == 0:
            return self._tail[..., :0]
        hop = self.hop
        frames = self._buffer[:, : (n + 1) * hop]
        if frames.shape[1] < (n + 1) * hop:  # the rest is under the zero window, or past the end
            frames = np.pad(frames, ((0, 0), (0, (n + 1) * hop - frames.shape[1])))
        frames = np.lib.stride_tricks.sliding_window_view(frames, self.sllen, axis=1)[:, ::hop]
        out, self._state = self.engine.step(np.array(frames), self._state)  # a writable copy
        heads, tails = out[..., :hop], out[..., hop:]  # (J, C, n, hop) each
        done = np.concatenate([self._tail[:, :, None], tails[:, :, :-1]], axis=2) + heads
        self._tail = np.array(tails[:, :, -1], np.float32)
        self._buffer = self._buffer[:, n * hop :]
        first = self._slice == 0
        self._slice += n
        done = done.reshape(done.shape[0], done.shape[1], n * hop)
        return done[..., hop:] if first else done

    def _output(self, out: np.ndarray) -> np.ndarray:
        if self._finished:
            out = out[..., : max(0, self.received - self.emitted)]
        out = np.asarray(out, np.float32)
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
        return self._output(self._step(self._ready()))

    def finish(self) -> np.ndarray:
        """End of input: the remaining output (J, C, m), up to the input's length (the
        input continues with zeros, as the offline transform pads it)."""
        self._finished = True
        # the slices up to the last whose first hop holds input: (s - 1) hop < received
        last = -(-self.received // self.hop)
        return self._output(self._step(max(0, last + 1 - self._slice)))
