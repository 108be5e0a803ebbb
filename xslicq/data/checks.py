"""Checks of the data config values (``data.*``), run when the DataModule is built, before
any work: each bad value is one :class:`DataConfigError` that names the key as a user
writes it on the command line (``data.val_chunks must be an integer >= 1, got 0``).

Each function returns the value in the type the data code uses (a tuple for a list, a
plain dict for a config node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..checks import check_int, is_number
from ..errors import DataConfigError
from . import SOURCES

LOADERS = ("default", "dali")
SYNTHETIC_KEYS = (
    "tracks",
    "seconds",
    "seed",
    "test_tracks",
    "valid_tracks",
    "soundfont",
    "workers",
    "progress",
    "force",
)  # the parameters of xslicq.data.synthetic.generate_dataset that a config may set


def integer(key: str, value, minimum: int) -> int:
    """An integer >= ``minimum``."""
    return check_int(value, key, minimum, DataConfigError)


def positive(key: str, value, allow_none: bool = False) -> float | None:
    """A finite number > 0 (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not (is_number(value, finite=True) and value > 0):
        what = "positive or null" if allow_none else "a positive number"
        raise DataConfigError(f"{key} must be {what}, got {_show(value)}")
    return float(value)


def boolean(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise DataConfigError(f"{key} must be true or false, got {value!r}")
    return value


def choice(key: str, value, options) -> str:
    if value not in options:
        raise DataConfigError(f"unknown {key} {value!r}; choose one of {', '.join(options)}")
    return value


def targets(key: str, value) -> tuple[str, ...]:
    """A non-empty list of distinct source names."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise DataConfigError(
            f"{key} must be a non-empty list of sources ({', '.join(SOURCES)}), got "
            f"{_show(value)} (e.g. {key}=[vocals])"
        )
    names = tuple(value)
    unknown = [t for t in names if t not in SOURCES]
    if unknown:
        raise DataConfigError(
            f"unknown target names {unknown} in {key}; choose from {', '.join(SOURCES)}"
        )
    if len(set(names)) != len(names):
        raise DataConfigError(f"{key} names a source twice: {list(names)}")
    return names


def gain(key: str, value) -> tuple[float, float]:
    """A range ``[low, high]`` with ``0 <= low <= high``."""
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(is_number(v, finite=True) for v in value)
        and 0 <= value[0] <= value[1]
    )
    if not ok:
        raise DataConfigError(
            f"{key} must be a range [low, high] with 0 <= low <= high, got {_show(value)}"
        )
    return float(value[0]), float(value[1])


def decibels(key: str, value) -> float:
    """A level in dBFS: a finite number <= 0."""
    if not (is_number(value, finite=True) and value <= 0):
        raise DataConfigError(f"{key} must be a level in dBFS (a number <= 0), got {_show(value)}")
    return float(value)


def root(key: str, value) -> str:
    """A folder path: a non-empty string."""
    if value is None or not str(value).strip():
        raise DataConfigError(
            f"{key} is not set: pass {key}=/path/to/MUSDB18-HQ (or use data=synthetic)"
        )
    return str(value)


def synthetic(key: str, value, sample_rate: int, seq_dur: float) -> dict | None:
    """The parameters of the synthetic set (None for a real dataset), checked by the
    generator's own rules; ``sample_rate`` (``data.sample_rate``) must suit the renderer and
    ``seq_dur`` (``data.seq_dur``) must fit in a track."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DataConfigError(f"{key} must be a mapping of parameters or null, got {value!r}")
    params = dict(value)
    unknown = sorted(set(params) - set(SYNTHETIC_KEYS))
    if unknown:
        raise DataConfigError(
            f"unknown key {key}.{unknown[0]}; the keys are {', '.join(SYNTHETIC_KEYS)}"
        )
    for name in ("tracks", "seconds"):
        if params.get(name) is None:
            raise DataConfigError(f"{key}.{name} is not set")
    for name in ("progress", "force"):
        if name in params:
            boolean(f"{key}.{name}", params[name])
    if not 8000 <= sample_rate <= 96000:
        raise DataConfigError(
            f"data.sample_rate must be between 8000 and 96000 Hz for a synthetic set, got "
            f"{sample_rate}"
        )
    from .synthetic import check_parameters

    optional = ("seed", "test_tracks", "valid_tracks", "workers")
    values = {k: params[k] for k in optional if k in params}
    try:
        checked, _ = check_parameters(
            params["tracks"], params["seconds"], sample_rate=sample_rate, **values
        )
    except ValueError as err:  # its message starts with the parameter's name
        raise DataConfigError(f"{key}.{err}") from None
    if seq_dur > checked["seconds"]:
        raise DataConfigError(
            f"data.seq_dur={seq_dur:g} s is longer than the synthetic tracks "
            f"({key}.seconds={checked['seconds']:g})"
        )
    return params


def _show(value) -> str:
    """``value`` as a user writes it in a config: ``null`` for None, lists as lists."""
    if value is None:
        return "null"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return repr(list(value))
    return repr(value) if isinstance(value, str) else f"{value}"
