"""The transform search: its parameter space, its Pareto front and the chosen point.

``python -m xslicq.oracle -m hparams_search=transform_oracle`` asks Optuna for points of
this space; every trial turns its point into a sliCQT with :func:`transform_config`,
scores the oracles on the validation tracks and reports two objectives: the
mixture-phase oracle SDR (maximised) and the coefficients per second of audio
(minimised). The search parameters are chosen so that every scale has the same meaning
for every value:

    scale            cqlog, oct, mel, bark, vqlog
    bins             bins between fmin and fmax (for oct: turned into bins per octave),
                     capped at the most whose narrowest window still fits the longest
                     slice (many bins from a low fmin need slices longer than that)
    fmin, fmax       lowest and highest centre frequency, Hz
    sllen            slice length as a position in [0, 1] on a log axis from the scale's
                     suggested length (0) to the longest slice allowed (1, a training
                     segment): every value is a valid slice
    trlen            transition length as a fraction of the slice length, in (0, 0.5)
    gamma            extra bandwidth of every vqlog bin, Hz (ignored by other scales)

The cap keeps every sampled point buildable, which matters for the sampler: Optuna's TPE
samplers learn nothing from failed trials and, without the cap, spend most of a search on
points that cannot be built. A point that still cannot be built (fmax above the Nyquist
frequency, a scale that does not exist) raises :class:`InvalidTransform` naming why, and the
sweeper records the trial as failed with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidTransform
from .transform.frames import SUGGESTED_WINDOW_SAMPLES, fft_friendly_sllen, min_sllen
from .transform.scales import SCALES, make_scale

__all__ = ["InvalidTransform", "SearchPoint", "pareto_front", "transform_config", "tuned_yaml"]

SLICQT_TARGET = "xslicq.transform.SliCQT"


@dataclass(frozen=True)
class SearchPoint:
    """One point of the search space (see the module docstring for the meaning of each)."""

    scale: str = "cqlog"
    bins: int = 262
    fmin: float = 32.9
    fmax: float = 22050.0
    sllen: float = 0.0
    trlen: float = 0.25
    gamma: float = 25.0


def _even(x: float) -> int:
    return 2 * max(1, int(round(x / 2)))


def _largest_friendly_at_most(n: int) -> int:
    """Largest FFT-friendly multiple of 4 that is <= ``n`` (``n`` itself a multiple of 4)."""
    m = n - n % 4
    while m >= 4:
        if fft_friendly_sllen(m) == m:
            return m
        m -= 4
    raise InvalidTransform(f"no slice length fits in {n} samples")


def transform_config(point: SearchPoint, sample_rate: int, max_sllen: int) -> dict:
    """The SliCQT config (``_target_`` and keyword arguments) of a search point.

    Args:
        point: the search parameters.
        sample_rate: Hz.
        max_sllen: longest slice in samples (a training segment).
    Returns:
        a dict for ``hydra.utils.instantiate``: ``scale``, ``bins`` (per octave for oct),
        ``fmin``, ``fmax``, ``sample_rate``, ``sllen``, ``trlen`` (integers in samples),
        ``gamma`` and ``backend``.
    Raises:
        InvalidTransform: the point cannot be built; the message names the parameters.
    """
    if point.scale not in SCALES:
        raise InvalidTransform(f"unknown scale {point.scale!r}; choose one of {', '.join(SCALES)}")
    if not 0.0 <= point.sllen <= 1.0:
        raise InvalidTransform(f"sllen is a position in [0, 1], got {point.sllen}")
    if not 0.0 < point.trlen < 0.5:
        raise InvalidTransform(f"trlen is a fraction of the slice in (0, 0.5), got {point.trlen}")
    if not 0 < point.fmin < point.fmax <= sample_rate / 2:
        raise InvalidTransform(
            f"need 0 < fmin < fmax <= {sample_rate / 2:g} Hz, got "
            f"fmin={point.fmin:g}, fmax={point.fmax:g}"
        )
    bins = int(point.bins)
    if point.scale == "oct":  # the search counts bins over the band
        bins = max(1, int(round(bins / math.log2(point.fmax / point.fmin))))

    def suggested_sllen(nb: int) -> int:
        try:
            scale = make_scale(point.scale, point.fmin, point.fmax, nb, point.gamma)
        except ValueError as err:
            raise InvalidTransform(str(err)) from err
        return fft_friendly_sllen(
            min_sllen(scale.freqs, scale.bandwidths, sample_rate, SUGGESTED_WINDOW_SAMPLES)
        )

    suggested = suggested_sllen(bins)
    if suggested > max_sllen:  # the most bins that fit: bisection (monotonic)
        lo, hi = 0, bins  # suggested_sllen(hi) > max_sllen
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if suggested_sllen(mid) <= max_sllen else (lo, mid)
        if lo < 1:
            raise InvalidTransform(
                f"{point.scale} from fmin={point.fmin:.1f} Hz needs slices longer than a "
                f"training segment of {max_sllen} samples ({max_sllen / sample_rate:.2f} s) "
                "even with one bin"
            )
        bins, suggested = lo, suggested_sllen(lo)
    wanted = suggested * (max_sllen / suggested) ** point.sllen
    sllen = min(fft_friendly_sllen(int(round(wanted))), _largest_friendly_at_most(max_sllen))
    sllen = max(sllen, suggested)
    trlen = min(_even(point.trlen * sllen), sllen // 2 - 2)
    return {
        "_target_": SLICQT_TARGET,
        "scale": point.scale,
        "bins": bins,
        "fmin": float(point.fmin),
        "fmax": float(point.fmax),
        "sample_rate": int(sample_rate),
        "sllen": int(sllen),
        "trlen": int(trlen),
        "gamma": float(point.gamma),
        "backend": "torch",
    }


def pareto_front(points: Iterable[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order.

    Args:
        points: objective values per point, one value per direction.
        directions: ``maximize`` or ``minimize`` per objective.
    """
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    values = np.asarray(list(points), dtype=float) * sign  # all maximised
    front = []
    for i, v in enumerate(values):
        dominated = np.any(np.all(values >= v, axis=1) & np.any(values > v, axis=1))
        if not dominated:
            front.append(i)
    return front


def tuned_yaml(config: dict, comment: Sequence[str]) -> str:
    """The text of ``conf/transform/tuned.yaml`` for a SliCQT config, with ``comment``
    lines on top (where it came from, what it scored)."""
    keys = (
        "_target_",
        "scale",
        "bins",
        "fmin",
        "fmax",
        "sample_rate",
        "sllen",
        "trlen",
        "gamma",
        "backend",
    )
    lines = [f"# {line}" if line else "#" for line in comment]
    for key in keys:
        value = config[key]
        lines.append(f"{key}: {value!r}" if isinstance(value, float) else f"{key}: {value}")
    return "\n".join(lines) + "\n"


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
