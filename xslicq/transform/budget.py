"""The memory budget of a sliCQT: its tables estimated before they are built.

A sliCQT's tables (index map, analysis and dual windows of every row) hold one entry per
coefficient of one slice, ``coefs_per_slice = sum_k M_k`` over its rows. The slice has to be
long enough for the narrowest window to span a few spectrum samples, so a scale with very
narrow bands (many bins, a very low ``fmin``, ``fmin`` and ``fmax`` almost equal, ``fmax`` a
hair below Nyquist) asks for enormous slices and tables: gigabytes to terabytes, and
minutes of work before the machine runs out of memory.

:func:`plan_tables` finds that out by arithmetic first:

1. the scale's first and last bins alone (:func:`~xslicq.transform.scales.scale_ends`; the
   first is the narrowest) give the narrowest window and so the slice length; every
   spectrum sample is covered by some row and every row has ``M >= 2``, so the tables hold
   at least ``max(sllen / 2 + 1, 2 * rows)`` entries: a lower bound in O(1);
2. if that fits, the scale is built (at most ``MAX_SCALE_BINS`` bins) and every row's ``M``
   is computed without building any table (:func:`~xslicq.transform.frames.row_extents`):
   the exact ``coefs_per_slice``.

The bytes are ``TABLE_BYTES_PER_COEF * coefs_per_slice + TABLE_BYTES_PER_SAMPLE * sllen``
and are compared with ``MAX_TABLE_BYTES`` (or the ``max_table_bytes`` given to the
transform), and with the memory the machine has available. A configuration beyond it is
refused with a ValueError that gives the estimate and names the parameter to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import check_positive_int, is_int
from .checks import check_sample_rate
from .frames import (
    MIN_WINDOW_SAMPLES,
    SUGGESTED_WINDOW_SAMPLES,
    fft_friendly_sllen,
    min_sllen,
    row_extents,
    row_geometry,
)
from .scales import check_scale_args, make_scale, nb_scale_bins, scale_ends

MAX_TABLE_BYTES = 4 * 2**30  # 4 GiB: the default transforms need 7-10 MB
# Peak host bytes per coefficient of one slice while the tables are built, as measured:
# ~41 kept (int64 index, float64 window, dual and segment-ordered window), 8 for the
# float32 copies the forward makes, ~16 of temporaries.
TABLE_BYTES_PER_COEF = 64
TABLE_BYTES_PER_SAMPLE = 16  # per slice sample: slice window, frame diagonal, float32 copy
HIGH_Q = 1000.0  # a bin sharper than this is there because of too many bins
_MAX_EXACT_SLLEN = 2**40  # longer slices are only bounded, never sized row by row


@dataclass(frozen=True)
class TableEstimate:
    """What a sliCQT's tables cost, known before they are built.

    Attributes:
        sllen: slice length in samples.
        nb_rows: rows of the transform (DC row, scale bins, Nyquist row).
        coefs_per_slice: complex coefficients of one slice of one channel.
        coefs_per_second: coefficients per second of audio and channel.
        table_bytes: host memory the tables take while being built.
        exact: False when the rows were not sized and the numbers are lower bounds.
    """

    sllen: int
    nb_rows: int
    coefs_per_slice: int
    coefs_per_second: float
    table_bytes: int
    exact: bool


def table_bytes(coefs_per_slice: int, sllen: int) -> int:
    """Host bytes of the tables of a transform with these coefficients per slice."""
    return TABLE_BYTES_PER_COEF * int(coefs_per_slice) + TABLE_BYTES_PER_SAMPLE * int(sllen)


def available_memory() -> int | None:
    """Bytes of memory the machine can still give (``MemAvailable``); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_limit(max_table_bytes: int | None = None) -> tuple[int, str]:
    """The bytes the tables may take and a phrase saying where the limit comes from."""
    if max_table_bytes is None:
        limit, text = MAX_TABLE_BYTES, f"MAX_TABLE_BYTES = {format_bytes(MAX_TABLE_BYTES)}"
    else:
        limit = check_positive_int(max_table_bytes, "max_table_bytes")
        text = f"max_table_bytes = {format_bytes(max_table_bytes)}"
    available = available_memory()
    if available is not None and available < limit:
        limit, text = available, f"the {format_bytes(available)} of memory available"
    return limit, text


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``"4.0 GiB"``."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def format_duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it >= 1, e.g. ``"2.4 s"``, ``"45 days"``."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def check_sllen(sllen) -> None:
    """Raise a clear error unless ``sllen`` is a positive multiple of 4 (an int)."""
    if not is_int(sllen):
        raise ValueError(f"sllen must be an integer number of samples, got {sllen!r}")
    if sllen <= 0 or sllen % 4:
        raise ValueError(f"sllen must be a positive multiple of 4, got sllen={sllen}")


@dataclass(frozen=True)
class _Narrowest:
    """The narrowest window of a scale: which row, its centre and width in Hz."""

    kind: str  # "DC row", "bin" or "Nyquist row"
    freq: float
    width: float


def _narrowest(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: float) -> _Narrowest:
    centres, a, b, lo, hi = row_geometry(freqs, bandwidths, sample_rate)
    widths = b - a + lo + hi
    k = int(np.argmin(widths))
    kind = "DC row" if k == 0 else "Nyquist row" if k == len(freqs) + 1 else "bin"
    return _Narrowest(kind, float(centres[k]), float(widths[k]))


def _suggested_or_none(freqs, bandwidths, sample_rate) -> int | None:
    """The suggested slice length, or None when the narrowest window is too narrow for a
    float to hold how long a slice it needs."""
    narrowest = _narrowest(freqs, bandwidths, sample_rate).width
    if not (narrowest > 0 and math.isfinite(SUGGESTED_WINDOW_SAMPLES * sample_rate / narrowest)):
        return None
    return min_sllen(freqs, bandwidths, sample_rate, SUGGESTED_WINDOW_SAMPLES)


def _lower_bound(sllen: int, rows: int) -> int:
    """Bytes the tables take at least: every spectrum sample is in some row, every row has
    at least two time samples."""
    return table_bytes(max(sllen // 2 + 1, 2 * rows), sllen)


_WIDEN = {  # what widens the narrowest window of each kind
    "DC row": "raise fmin (the DC row is 2 * fmin wide)",
    "bin": "widen the narrowest bin (fewer bins, a higher fmin or a wider fmin..fmax)",
    "Nyquist row": "set fmax to the Nyquist frequency or further below it",
}


def _hint(name, fmin, fmax, bins, gamma, sample_rate, limit, narrow: _Narrowest) -> str:
    """Which parameter to change, from the row whose window is the narrowest."""
    nyquist = sample_rate / 2.0
    if narrow.kind == "Nyquist row":
        return (
            f"change fmax: the last bin, at {nyquist - narrow.width / 2!r} Hz, leaves a "
            f"Nyquist row only {narrow.width:.3g} Hz wide; set fmax={nyquist!r} (no Nyquist "
            f"row) or move it further below the Nyquist frequency"
        )
    if narrow.kind == "DC row":
        return f"raise fmin: the DC row below fmin={fmin!r} Hz is only {narrow.width:.3g} Hz wide"
    one = scale_ends(name, fmin, fmax, 1, gamma)
    one_sllen = _suggested_or_none(one.freqs, one.bandwidths, sample_rate)
    if one_sllen is None or _lower_bound(one_sllen, 3) > limit:
        return (
            f"widen fmin..fmax: fmax - fmin = {fmax - fmin:.3g} Hz is narrower than even one "
            f"bin can resolve within the bound"
        )
    q = narrow.freq / narrow.width
    if q > HIGH_Q:
        return (
            f"lower bins: bins={bins} makes the bin at {narrow.freq:.6g} Hz only "
            f"{narrow.width:.3g} Hz wide (Q = {q:.3g})"
        )
    return (
        f"raise fmin={fmin!r} (or lower bins): the bin at {narrow.freq:.6g} Hz is only "
        f"{narrow.width:.3g} Hz wide"
    )


def _too_large(what, hint, est: TableEstimate, narrow: _Narrowest, sample_rate, limit_text):
    bound = "" if est.exact else "at least "
    return ValueError(
        f"{what} is too large: its narrowest window ({narrow.kind} at {narrow.freq:.6g} Hz, "
        f"{narrow.width:.3g} Hz wide) needs slices of {bound}{est.sllen} samples "
        f"({format_duration(est.sllen / sample_rate)}), {bound}{est.coefs_per_slice:.4g} "
        f"coefficients per slice ({est.coefs_per_second:.4g} per second and channel) and "
        f"tables of {bound}{format_bytes(est.table_bytes)}, above {limit_text}. {hint}"
    )


def plan_tables(
    scale: str,
    bins,
    fmin,
    fmax,
    sample_rate,
    sllen=None,
    gamma=25.0,
    max_table_bytes: int | None = None,
    enforce: bool = True,
):
    """Validate a sliCQT configuration and estimate its tables before building them.

    Args:
        scale, bins, fmin, fmax, gamma: the frequency scale (see
            :func:`~xslicq.transform.scales.make_scale`).
        sample_rate: Hz, already validated.
        sllen: slice length in samples, or None for the suggested one.
        max_table_bytes: the bound; None for ``MAX_TABLE_BYTES``.
        enforce: raise when the tables exceed the bound (False only estimates).

    Returns:
        ``(scale, sllen, estimate)``: the built :class:`~xslicq.transform.FrequencyScale`
        (None when not enforcing and the slices are too long to size), the slice length and
        a :class:`TableEstimate`.

    Raises:
        ValueError: a bad argument, ``sllen`` too short for the narrowest window, or (when
            enforcing) tables beyond the bound; the message gives the estimate and names
            the parameter to change.
    """
    bins = check_scale_args(scale, fmin, fmax, bins, gamma)
    nyquist = sample_rate / 2.0
    if fmax > nyquist:
        raise ValueError(
            f"fmax={fmax} Hz is above the Nyquist frequency {nyquist} Hz "
            f"of sample_rate={sample_rate}"
        )
    if sllen is not None:
        check_sllen(sllen)
        sllen = int(sllen)
    limit, limit_text = memory_limit(max_table_bytes)
    what = (
        f"SliCQT(scale={scale!r}, bins={bins}, fmin={fmin!r}, fmax={fmax!r}, "
        f"sample_rate={sample_rate!r}" + (f", sllen={sllen})" if sllen else ")")
    )

    # 1. the scale's ends: the narrowest window, the slice length and a lower bound, in O(1)
    ends = scale_ends(scale, fmin, fmax, bins, gamma)
    narrow = _narrowest(ends.freqs, ends.bandwidths, sample_rate)
    rows = nb_scale_bins(scale, fmin, fmax, bins) + 1 + int(ends.freqs[-1] < nyquist)

    def hint():
        return _hint(scale, fmin, fmax, bins, gamma, sample_rate, limit, narrow)

    suggested = _suggested_or_none(ends.freqs, ends.bandwidths, sample_rate)
    if suggested is None:
        raise ValueError(
            f"{what} cannot be built: its narrowest window ({narrow.kind} at "
            f"{narrow.freq:.6g} Hz) is {narrow.width:.3g} Hz wide, finer than a float64 "
            f"frequency resolves. {hint()}"
        )
    if sllen is not None:
        shortest = min_sllen(ends.freqs, ends.bandwidths, sample_rate, MIN_WINDOW_SAMPLES)
        if sllen < shortest:
            raise ValueError(
                f"sllen={sllen} is too short for the longest window of this scale "
                f"(narrowest band {narrow.width:.3f} Hz, the {narrow.kind} at "
                f"{narrow.freq:.6g} Hz): use sllen >= {shortest}, or sllen=None for the "
                f"suggested length, or {_WIDEN[narrow.kind]}"
            )
    given = sllen
    needed = given if given is not None else suggested
    lower = _lower_bound(needed, rows)
    if lower > limit or needed > _MAX_EXACT_SLLEN:
        coefs = max(needed // 2 + 1, 2 * rows)
        est = TableEstimate(
            sllen=needed,
            nb_rows=rows,
            coefs_per_slice=coefs,
            coefs_per_second=coefs * sample_rate / (needed // 2),
            table_bytes=lower,
            exact=False,
        )
        if enforce and lower > limit:
            hint_text = _sllen_hint(given, suggested) or hint()
            raise _too_large(what, hint_text, est, narrow, sample_rate, limit_text)
        if needed > _MAX_EXACT_SLLEN:
            return None, needed, est

    # 2. every row's time size, without building a table
    sllen = needed if given is not None else fft_friendly_sllen(suggested)
    full = make_scale(scale, fmin, fmax, bins, gamma)
    *_, sizes = row_extents(full.freqs, full.bandwidths, sample_rate, sllen)
    coefs = int(np.sum(sizes))
    est = TableEstimate(
        sllen=sllen,
        nb_rows=len(sizes),
        coefs_per_slice=coefs,
        coefs_per_second=coefs * sample_rate / (sllen // 2),
        table_bytes=table_bytes(coefs, sllen),
        exact=True,
    )
    if enforce and est.table_bytes > limit:
        hint_text = _sllen_hint(given, suggested) or hint()
        raise _too_large(what, hint_text, est, narrow, sample_rate, limit_text)
    return full, sllen, est


def _sllen_hint(sllen: int | None, suggested: int) -> str | None:
    """A hint to shorten a given slice length, when it is what makes the tables large."""
    if sllen is not None and sllen > 2 * suggested:
        return f"lower sllen: this scale needs only sllen >= {suggested} (or sllen=None)"
    return None


def estimate_tables(
    scale: str = "cqlog",
    bins=262,
    fmin=32.9,
    fmax=22050.0,
    sample_rate=44100,
    sllen=None,
    gamma=25.0,
) -> TableEstimate:
    """What the tables of ``SliCQT(scale, bins, fmin, fmax, sample_rate, sllen, gamma=gamma)``
    would cost, without building them and whatever their size (absurd configurations get a
    lower bound, ``exact=False``). Takes milliseconds.

    Raises:
        ValueError: an argument no transform accepts (see :class:`~xslicq.transform.SliCQT`).
    """
    sample_rate = check_sample_rate(sample_rate)
    return plan_tables(scale, bins, fmin, fmax, sample_rate, sllen, gamma, enforce=False)[2]
