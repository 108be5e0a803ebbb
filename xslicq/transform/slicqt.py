"""The sliced constant-Q transform (sliCQT) with an exact inverse.

Data flow of :meth:`SliCQT.forward`, one line per step (shapes with
``B`` batch, ``C`` channels, ``S`` slices, ``N = sllen``, ``nf = N // 2 + 1``)::

    x (B, C, samples) real
      -> slices (B, C, S, N)        Tukey-windowed, hop N / 2      (slicing.py)
      -> X (B, C, S, nf)            one-sided spectrum, rfft / N
      -> per block: gather + window (B, C, S, rows, M)             (frames.py tables)
      -> inverse DFT along M        (B, C, rows, S, M) complex coefficients

:meth:`SliCQT.inverse` runs the same steps backwards with the canonical dual
windows and a scatter-add, which makes it an exact left inverse.

Both have their adjoints here too (:meth:`SliCQT.forward_adjoint`: synthesis with the
analysis windows; :meth:`SliCQT.inverse_adjoint`: analysis with the dual windows), which
is what :mod:`xslicq.transform.bridge` runs as the backward pass when torch tensors go
through a ``numpy`` or ``cupy`` transform inside autograd.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..checks import is_int
from . import backend as bk
from .budget import plan_tables
from .checks import SAMPLE_RATE_RANGE, check_sample_rate, check_signal
from .frames import SliceFrame, build_slice_frame
from .module import Module, torch
from .scales import FrequencyScale
from .slicing import (
    check_slicing,
    max_length,
    nb_slices,
    overlap_add,
    slice_signal,
    slice_window,
    suggested_trlen,
)


class SliCQT(Module):
    """Sliced constant-Q transform: ragged complex coefficients with an exact inverse.

    Args:
        scale: frequency scale, one of ``cqlog``, ``oct``, ``mel``, ``bark``, ``vqlog``.
        bins: number of scale bins (bins per octave for ``oct``). The transform has
            ``bins + 1`` rows (a DC row below the first bin), plus a Nyquist row when
            ``fmax`` is below the Nyquist frequency.
        fmin, fmax: lowest and highest centre frequency in Hz.
        sample_rate: sampling rate of the signals in Hz.
        sllen: slice length in samples (a multiple of 4). ``None`` picks the suggested
            length: the shortest at which the narrowest window spans three spectrum samples,
            rounded up to a length with no prime factor above 7 (fast FFTs). Any longer
            slice is fine, up to a whole training segment.
        trlen: length of the slice window's transitions (even, ``sllen > 2 * trlen``).
            ``None`` picks a quarter slice.
        gamma: extra bandwidth in Hz of every ``vqlog`` bin.
        backend: ``torch`` (CPU and CUDA), ``numpy`` (CPU) or ``cupy`` (GPU). Every backend
            takes its own arrays; the ``numpy`` and ``cupy`` transforms also take torch
            tensors (CPU and CUDA respectively) and return torch tensors, through the DLPack
            bridge of :mod:`xslicq.transform.bridge`, which makes them differentiable: the
            backward pass is the frame's adjoint computed on the same backend.
        max_table_bytes: the most host memory the tables may take; ``None`` for
            ``budget.MAX_TABLE_BYTES`` (4 GiB). The tables are estimated before they are
            built (:mod:`xslicq.transform.budget`) and a larger configuration, or one
            larger than the memory available, is refused with the estimate and the
            parameter to change.
        sample_rate_range: ``(lowest, highest)`` sample rate accepted, in Hz.

    Attributes:
        sllen, trlen, slice_hop: slice length, transition length and the hop between
            slices (``sllen / 2``), in samples.
        freqs: (nb_bins,) centre frequency of every row in Hz, ascending.
        bandwidths, q: (nb_bins,) bandwidth in Hz and quality factor of every row.
        block_shapes: ``[(rows_in_block, time_in_block), ...]``, ascending frequency.
        coefs_per_second: complex coefficients per second of audio and channel.
        table_estimate: the :class:`~xslicq.transform.budget.TableEstimate` made before
            the tables were built.
    """

    def __init__(
        self,
        scale: str = "cqlog",
        bins: int = 262,
        fmin: float = 32.9,
        fmax: float = 22050.0,
        sample_rate: int = 44100,
        sllen: int | None = None,
        trlen: int | None = None,
        gamma: float = 25.0,
        backend: str = "torch",
        max_table_bytes: int | None = None,
        sample_rate_range: tuple[float, float] = SAMPLE_RATE_RANGE,
    ):
        super().__init__()
        bk.check_backend(backend)
        sample_rate = check_sample_rate(sample_rate, sample_rate_range)
        # validates the scale and the slice length, and refuses tables beyond the bound
        # before building anything (budget.py)
        scale_obj, sllen, self.table_estimate = plan_tables(
            scale, bins, fmin, fmax, sample_rate, sllen, gamma, max_table_bytes
        )
        self.scale: FrequencyScale = scale_obj
        if trlen is None:
            trlen = suggested_trlen(sllen)
        check_slicing(sllen, trlen)

        self.scale_name, self.bins, self.fmin, self.fmax = (
            scale,
            int(bins),
            float(fmin),
            float(fmax),
        )
        self.sample_rate, self.gamma, self.backend = sample_rate, float(gamma), backend
        self.sllen, self.trlen, self.slice_hop = int(sllen), int(trlen), int(sllen) // 2
        self.frame: SliceFrame = build_slice_frame(
            self.scale.freqs, self.scale.bandwidths, sample_rate, self.sllen
        )
        self.freqs = self.frame.freqs
        self.bandwidths = self.frame.bandwidths
        self.block_shapes = [(b.rows, b.m) for b in self.frame.blocks]
        # the forward reads every row's window as a contiguous run of a zero-padded spectrum
        self._pad = max(
            max(
                0,
                int(np.max(b.m // 2 - b.centre)),
                int(np.max(b.centre + b.m // 2)) - (self.frame.nf - 1),
            )
            for b in self.frame.blocks
        )
        self._host = {"slice_window": slice_window(self.sllen, self.trlen)}
        for i, b in enumerate(self.frame.blocks):
            self._host.update(
                {
                    f"start_{i}": b.segment_start + self._pad,
                    f"segment_window_{i}": b.segment_window,
                    f"sign_{i}": (-1.0) ** np.arange(b.m),
                    f"index_{i}": b.index.reshape(-1),
                    f"dual_{i}": b.dual,
                }
            )
        for name, host in self._host.items():  # plain NumPy tables without torch
            table = host if torch is None else torch.as_tensor(host)
            self.register_buffer(name, table, persistent=False)
        self._cache: dict = {}
        self._adjoint_host_tables: dict | None = None

    # ----------------------------------------------------------------- geometry
    @property
    def q(self) -> np.ndarray:
        """Quality factor (centre / bandwidth) of every row; 0 for the DC row."""
        return self.freqs / self.bandwidths

    @property
    def nb_bins(self) -> int:
        return len(self.freqs)

    @property
    def coefs_per_slice(self) -> int:
        """Complex coefficients of one slice of one channel (all blocks)."""
        return int(sum(rows * m for rows, m in self.block_shapes))

    @property
    def coefs_per_second(self) -> float:
        """Complex coefficients per second of audio and channel: one slice's worth every
        ``slice_hop`` samples."""
        return self.coefs_per_slice * self.sample_rate / self.slice_hop

    @property
    def frame_bounds(self) -> tuple[float, float]:
        """Lower and upper frame bounds A, B of one slice's frame:
        ``A ||x||^2 <= ||c||^2 <= B ||x||^2``."""
        weight = np.full(self.frame.nf, 2.0)
        weight[0] = 1.0
        if self.sllen % 2 == 0:
            weight[-1] = 1.0
        ratio = self.frame.diag / (self.sllen * weight)
        return float(ratio.min()), float(ratio.max())

    def nb_slices(self, length: int) -> int:
        """Number of slices the forward transform gives for ``length`` samples."""
        return nb_slices(length, self.sllen, self.trlen)

    def coef_sample(self, block: int, slice_index, time_index):
        """Signal sample (float) at which coefficient ``(slice, time)`` of ``block`` is centred."""
        m = self.block_shapes[block][1]
        return (
            np.asarray(slice_index) * self.slice_hop
            - self.sllen / 2
            + np.asarray(time_index) * self.sllen / m
        )

    def locate(self, sample, block: int) -> tuple[np.ndarray, np.ndarray]:
        """``(slice, time)`` indices of ``block`` whose coefficient covers signal ``sample``:
        the slice whose window plateau holds the sample, and the nearest time index in it."""
        m = self.block_shapes[block][1]
        sample = np.asarray(sample)
        slice_index = np.rint(sample / self.slice_hop).astype(int)
        time_index = (
            np.rint(
                (sample - slice_index * self.slice_hop + self.sllen / 2) * m / self.sllen
            ).astype(int)
            % m
        )
        return slice_index, time_index

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale_name!r}, bins={self.bins}, fmin={self.fmin}, fmax={self.fmax}, "
            f"sample_rate={self.sample_rate}, sllen={self.sllen}, trlen={self.trlen}, "
            f"blocks={len(self.block_shapes)}, backend={self.backend!r}"
        )

    # ------------------------------------------------------------------ tables
    def _apply(self, fn, recurse=True):
        """Move the tables with the module but keep them in float64: a dtype cast of the
        module must not cost the transform its exactness."""
        super()._apply(fn, recurse)
        device = self.slice_window.device
        for name, host in self._host.items():
            self._buffers[name] = torch.as_tensor(host, device=device)
        self._cache = {}
        return self

    def _adjoint_host(self) -> dict:
        """Host (float64) windows of the two adjoints, built on first use (only autograd
        through a non-torch backend, and the tests, need them).

        * ``adjoint_i`` (buffer order, like ``dual_i``): the analysis window times
          ``M / (N * a[j])`` with ``a = (1, 2, ..., 2, 1)`` the weights of a one-sided
          spectrum, so that the synthesis code computes ``Re(A^H c)`` for the analysis
          ``A`` (rfft and ifft with ``norm="forward"``, see :meth:`forward_adjoint`).
        * ``dual_segment_i`` (segment order, like ``segment_window_i``): the dual window
          times ``N * a[j] / M``, so that the analysis code computes ``S^H x`` for the
          synthesis ``S`` (:meth:`inverse_adjoint`).
        """
        if self._adjoint_host_tables is None:
            n = self.sllen
            a = np.full(self.frame.nf, 2.0)
            a[0] = a[-1] = 1.0  # DC and Nyquist (sllen is a multiple of 4, so even)
            tables = {}
            for i, b in enumerate(self.frame.blocks):
                tables[f"adjoint_{i}"] = b.m * b.window / (n * a[b.index])
                tables[f"dual_segment_{i}"] = np.roll(n * a[b.index] * b.dual / b.m, b.m // 2, 1)
            self._adjoint_host_tables = tables
        return self._adjoint_host_tables

    def _tables(self, xp, device, dtype):
        """Slice window and per-block (index, window, dual) on ``device`` in real ``dtype``."""
        key = (xp.__name__, str(device), str(dtype))
        tables = self._cache.get(key)
        if tables is None:
            if self.backend == "torch":

                def get(name, dtype=dtype):
                    return self.get_buffer(name).to(device=device, dtype=dtype)
            else:

                def get(name, dtype=dtype):
                    return xp.asarray(self._host[name], dtype=dtype, device=device)

            int_dtype = xp.int64
            tables = (
                get("slice_window"),
                [
                    {
                        "start": get(f"start_{i}", int_dtype),
                        "window": get(f"segment_window_{i}"),
                        "sign": get(f"sign_{i}"),
                        "index": get(f"index_{i}", int_dtype),
                        "dual": get(f"dual_{i}"),
                    }
                    for i in range(len(self.block_shapes))
                ],
            )
            self._cache[key] = tables
        return tables

    def _adjoint_tables_on(self, xp, device, dtype) -> list[dict]:
        """Per-block ``adjoint`` and ``dual_segment`` windows (:meth:`_adjoint_host`) on
        ``device`` in real ``dtype``, next to the ordinary tables of :meth:`_tables`."""
        key = ("adjoint", xp.__name__, str(device), str(dtype))
        tables = self._cache.get(key)
        if tables is None:
            host = self._adjoint_host()
            _, blocks = self._tables(xp, device, dtype)
            tables = [
                {
                    **tab,
                    "adjoint": xp.asarray(host[f"adjoint_{i}"], dtype=dtype, device=device),
                    "dual_segment": xp.asarray(
                        host[f"dual_segment_{i}"], dtype=dtype, device=device
                    ),
                }
                for i, tab in enumerate(blocks)
            ]
            self._cache[key] = tables
        return tables

    # ------------------------------------------------------------- transforms
    def _check_signal(self, x):
        return check_signal(x, self.backend, f"SliCQT(backend={self.backend!r})")

    def _check_slices(self, slices):
        """Validate windowed slices ``(batch, channels, slices, sllen)``; return
        ``(xp, slices)``, half precision computed in float32 as for signals."""
        kind = bk.backend_of(slices)
        if kind != self.backend:
            raise TypeError(f"SliCQT(backend={self.backend!r}) got {kind} slices")
        xp = bk.namespace(slices)
        if slices.ndim != 4 or slices.shape[-1] != self.sllen or 0 in tuple(slices.shape):
            raise ValueError(
                f"expected slices of shape (batch, channels, slices, sllen={self.sllen}), got "
                f"shape {tuple(slices.shape)}"
            )
        if kind == "torch" and slices.dtype in (torch.float16, torch.bfloat16):
            slices = slices.float()
        elif kind != "torch" and slices.dtype == xp.float16:
            slices = xp.astype(slices, xp.float32)
        if not xp.isdtype(slices.dtype, "real floating"):
            raise TypeError(f"slices must be real floating point, got dtype {slices.dtype}")
        return xp, slices

    def forward(self, x) -> list:
        """Analyse a signal.

        Args:
            x: (batch, channels, samples) real float32/float64 array of this backend, or,
                for a ``numpy`` or ``cupy`` transform, a torch tensor on the backend's device
                (CPU or CUDA): it goes through the DLPack bridge
                (:func:`xslicq.transform.bridge.analysis`) and autograd flows through it.

        Returns:
            list of complex arrays ``(batch, channels, rows_in_block, slices, time_in_block)``,
            one per block, in ascending frequency (torch tensors for a torch input).
        """
        if self.backend != "torch" and torch is not None and isinstance(x, torch.Tensor):
            from .bridge import analysis

            return analysis(self, x)
        xp, x = self._check_signal(x)
        return self._analyse(xp, x, self.nb_slices(x.shape[-1]), adjoint=False)

    def _analyse(self, xp, x, slices: int, adjoint: bool) -> list:
        """The analysis of a checked signal ``x`` (batch, channels, samples) into ``slices``
        slices: with the slice window and the analysis windows (the transform), or, with
        ``adjoint``, without slice window and with the scaled dual windows (the adjoint of
        the synthesis, :meth:`inverse_adjoint`)."""
        window, _ = self._tables(xp, bk.array_api_compat.device(x), x.dtype)
        framed = slice_signal(xp, x, None if adjoint else window, self.sllen, slices)
        return self._analyse_framed(xp, framed, adjoint)

    def analyse_slices(self, slices) -> list:
        """Analyse slices already cut and windowed (the per-slice half of :meth:`forward`).

        Every slice is transformed on its own, so a stream can analyse one slice at a time
        (:mod:`xslicq.stream`) and get the coefficients :meth:`forward` gives for it.

        Args:
            slices: (batch, channels, slices, sllen) real array of this backend: the signal
                cut as :func:`~xslicq.transform.slicing.slice_signal` cuts it, multiplied by
                the slice window (the ``slice_window`` buffer).

        Returns:
            list of complex arrays ``(batch, channels, rows_in_block, slices, time_in_block)``,
            one per block, in ascending frequency.
        """
        xp, slices = self._check_slices(slices)
        return self._analyse_framed(xp, slices, adjoint=False)

    def _analyse_framed(self, xp, framed, adjoint: bool) -> list:
        """Cut and (unless ``adjoint``) windowed slices (batch, channels, slices, sllen) ->
        blocks, with the analysis windows or, with ``adjoint``, the scaled dual windows."""
        device = bk.array_api_compat.device(framed)
        if adjoint:
            blocks = self._adjoint_tables_on(xp, device, framed.dtype)
        else:
            _, blocks = self._tables(xp, device, framed.dtype)
        spectrum = xp.fft.rfft(framed, axis=-1, norm="forward")
        lead = tuple(spectrum.shape[:-1])
        if self._pad:
            zeros = xp.zeros(
                lead + (self._pad,),
                dtype=spectrum.dtype,
                device=bk.array_api_compat.device(spectrum),
            )
            spectrum = xp.concat([zeros, spectrum, zeros], axis=-1)
        out = []
        for tab, (_, m) in zip(blocks, self.block_shapes):
            buf = bk.runs(xp, spectrum, m, tab["start"])  # (B, C, S, rows, M)
            buf *= tab["dual_segment" if adjoint else "window"]  # in place: the runs are a copy
            coefs = xp.fft.ifft(buf, axis=-1, norm="forward")
            coefs *= tab["sign"]  # (-1)^n: demodulate to the centre, not the run's start
            out.append(xp.permute_dims(coefs, (0, 1, 3, 2, 4)))
        return out

    def check_coefs(self, coefs: Sequence, complex_only: bool = True):
        """Validate ragged blocks against this transform and return their array namespace.

        Raises an error that names the expected and the given block shapes when they
        differ; ``complex_only=False`` also admits real blocks (magnitudes, masks), all of
        one kind. A ``numpy`` or ``cupy`` transform also admits torch blocks (what it returns
        for torch input, :mod:`xslicq.transform.bridge`).
        """
        if not isinstance(coefs, (list, tuple)) or len(coefs) != len(self.block_shapes):
            got = len(coefs) if isinstance(coefs, (list, tuple)) else type(coefs).__name__
            raise ValueError(
                f"expected a list of {len(self.block_shapes)} coefficient blocks, got {got}"
            )
        first = coefs[0]
        kind = bk.backend_of(first)
        if kind not in (self.backend, "torch"):
            raise TypeError(f"SliCQT(backend={self.backend!r}) got {kind} coefficients")
        if any(bk.backend_of(blk) != kind for blk in coefs):
            kinds = sorted({bk.backend_of(blk) for blk in coefs})
            raise TypeError(f"coefficient blocks of one kind of array expected, got {kinds}")
        xp = bk.namespace(first)
        if first.ndim != 5:
            raise ValueError(
                f"coefficient blocks must be 5-D (batch, channels, rows, slices, "
                f"time), got shape {tuple(first.shape)}"
            )
        b, c, _, s, _ = first.shape
        expected = [(b, c, rows, s, m) for rows, m in self.block_shapes]
        given = [tuple(blk.shape) for blk in coefs]
        if given != expected:
            raise ValueError(
                f"coefficient block shapes do not match this transform: expected "
                f"{expected}, got {given}"
            )
        kinds = {
            "complex"
            if xp.isdtype(blk.dtype, "complex floating")
            else "real"
            if xp.isdtype(blk.dtype, "real floating")
            else str(blk.dtype)
            for blk in coefs
        }
        allowed = [{"complex"}] if complex_only else [{"complex"}, {"real"}]
        if kinds not in allowed:
            wanted = "complex" if complex_only else "all complex or all real floating"
            raise TypeError(
                f"coefficients must be {wanted}, got dtypes "
                f"{sorted({str(blk.dtype) for blk in coefs})}"
            )
        return xp

    def inverse(self, coefs: Sequence, length: int | None = None):
        """Synthesise a signal from (possibly modified) coefficients with the canonical duals.

        Args:
            coefs: list of blocks as returned by :meth:`forward`; blocks of different
                complex precisions are all computed in the highest one. A ``numpy`` or
                ``cupy`` transform also takes torch blocks (through the DLPack bridge,
                differentiable, :func:`xslicq.transform.bridge.synthesis`).
            length: number of samples to return; ``None`` gives the longest signal the
                slices cover.

        Returns:
            (batch, channels, length) real array; equal to the analysed signal when the
            coefficients are unmodified (a torch tensor for torch blocks).
        """
        xp = self.check_coefs(coefs)
        if self.backend != "torch" and bk.backend_of(coefs[0]) == "torch":
            from .bridge import synthesis

            return synthesis(self, coefs, length)
        coefs, length = self._check_synthesis(xp, coefs, length)
        return self._synthesise(xp, coefs, length, adjoint=False)

    def _check_synthesis(self, xp, coefs, length):
        """Blocks of one (the highest) complex precision and a checked ``length``."""
        # blocks of mixed precision (complex64 and complex128) meet in one spectrum
        dtype = xp.result_type(*[blk.dtype for blk in coefs])
        coefs = [blk if blk.dtype == dtype else xp.astype(blk, dtype) for blk in coefs]
        slices = coefs[0].shape[3]
        longest = max_length(slices, self.sllen, self.trlen)
        if length is None:
            length = longest
        if not is_int(length) or not 0 < length <= slices * self.slice_hop:
            raise ValueError(
                f"length must be an integer in [1, {slices * self.slice_hop}] for "
                f"{slices} slices, got {length!r}"
            )
        return coefs, int(length)

    def _synthesise(self, xp, coefs, length: int, adjoint: bool):
        """The synthesis of checked blocks into ``length`` samples: with the dual windows
        (the inverse), or, with ``adjoint``, with the scaled analysis windows and the slice
        window (the adjoint of the analysis, :meth:`forward_adjoint`)."""
        return overlap_add(xp, self._synthesise_framed(xp, coefs, adjoint), self.sllen, length)

    def synthesise_slices(self, coefs: Sequence):
        """The windowed time-domain slices of (possibly modified) coefficients, before they
        are overlap-added (the per-slice half of :meth:`inverse`).

        Args:
            coefs: list of blocks as returned by :meth:`forward` or :meth:`analyse_slices`.

        Returns:
            (batch, channels, slices, sllen) real array; overlap-added ``sllen / 2`` apart
            (:func:`~xslicq.transform.slicing.overlap_add`) they give :meth:`inverse`.
        """
        xp = self.check_coefs(coefs)
        # blocks of mixed precision (complex64 and complex128) meet in one spectrum
        dtype = xp.result_type(*[blk.dtype for blk in coefs])
        coefs = [blk if blk.dtype == dtype else xp.astype(blk, dtype) for blk in coefs]
        return self._synthesise_framed(xp, coefs, adjoint=False)

    def _synthesise_framed(self, xp, coefs, adjoint: bool):
        """Blocks of one precision -> time-domain slices (batch, channels, slices, sllen),
        with the dual windows or, with ``adjoint``, the scaled analysis windows and the
        slice window."""
        device, dtype = bk.array_api_compat.device(coefs[0]), bk.real_dtype(xp, coefs[0].dtype)
        window, blocks = self._tables(xp, device, dtype)
        if adjoint:
            blocks = self._adjoint_tables_on(xp, device, dtype)
        spectrum = None
        for blk, tab, (rows, m) in zip(coefs, blocks, self.block_shapes):
            # the FFT of centre-demodulated coefficients is the buffer in rotated order
            buf = xp.fft.fft(xp.permute_dims(blk, (0, 1, 3, 2, 4)), axis=-1, norm="forward")
            buf *= tab["adjoint" if adjoint else "dual"]
            buf = xp.reshape(buf, tuple(buf.shape[:-2]) + (rows * m,))
            spectrum = bk.scatter_add_last(xp, buf, tab["index"], self.frame.nf, out=spectrum)
        slices_td = xp.fft.irfft(spectrum, n=self.sllen, axis=-1, norm="forward")
        if adjoint:
            slices_td = slices_td * window  # the slice window's adjoint: itself
        return slices_td

    # ---------------------------------------------------------------- adjoints
    def forward_adjoint(self, coefs: Sequence, length: int):
        """The adjoint of the analysis: ``Re(A^H c)`` for blocks ``c`` shaped like the
        output of :meth:`forward` for a ``length``-sample signal, i.e. the gradient that a
        loss with gradient ``c`` with respect to the coefficients has with respect to the
        (real) signal. A synthesis with the analysis windows (the inverse uses the duals),
        the slice window and the weights of a one-sided spectrum; arrays of this backend.

        Returns:
            (batch, channels, length) real array; ``<A x, c> = <x, A^H c>`` (real parts).
        """
        xp = self.check_coefs(coefs)
        coefs, length = self._check_synthesis(xp, coefs, length)
        return self._synthesise(xp, coefs, length, adjoint=True)

    def inverse_adjoint(self, x, slices: int) -> list:
        """The adjoint ``S^H x`` of the synthesis :meth:`inverse` (as a map of the complex
        coefficients of ``slices`` slices to a real signal): an analysis of ``x`` (batch,
        channels, length) with the dual windows, no slice window and the one-sided spectrum
        weights; torch's gradient of the coefficients for a signal gradient ``x``. Arrays of
        this backend.

        Returns:
            list of complex blocks ``(batch, channels, rows, slices, M)``.
        """
        xp, x = self._check_signal(x)
        if not is_int(slices) or not x.shape[-1] <= slices * self.slice_hop:
            raise ValueError(
                f"slices must be an integer with slices * {self.slice_hop} >= "
                f"{x.shape[-1]} samples, got {slices!r}"
            )
        return self._analyse(xp, x, int(slices), adjoint=True)
