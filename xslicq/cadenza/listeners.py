"""Listeners: CAD1 listener JSON files <-> ``clarity.utils.audiogram.Listener`` objects.

A CAD1 listener file (``listeners.*.json``) is one object keyed by listener id::

    {"L0001": {"name": "L0001", "audiogram_cfs": [250, 500, ...],
               "audiogram_levels_l": [...], "audiogram_levels_r": [...]}, ...}

with the audiogram frequencies in Hz and the hearing levels of each ear in dB HL at those
frequencies. Levels must lie in :data:`LEVEL_RANGE` (-10 to 120 dB HL, an audiometer's range)
and frequencies in :data:`FREQUENCY_RANGE` (125 Hz to 16 kHz, the standard audiogram
frequencies); a value outside is refused, naming the listener, the field, the value and the
range (a 500 dB HL audiogram was taken). Without a file the four made-up listeners of
:data:`EXAMPLE_LISTENERS` are used (mild, moderate, sloping, near-normal; *not* the
challenge's listeners).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import CadenzaError, clarity_api

__all__ = [
    "EARS",
    "EXAMPLE_LISTENERS",
    "FREQUENCY_RANGE",
    "LEVEL_RANGE",
    "LISTENER_FIELDS",
    "ear_audiograms",
    "load_listeners",
    "pick_listener",
    "save_listeners",
]

EXAMPLE_LISTENERS = Path(__file__).resolve().parents[1] / "data" / "listeners" / "examples.json"
"""Four made-up listeners in the CAD1 format (see the README.md next to it)."""

EARS = ("left", "right")
"""The ears in channel order: channel 0 of a stereo signal is the left ear, 1 the right."""

LISTENER_FIELDS = ("audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r")
"""The fields every entry of a CAD1 listener file must have (``name`` is optional)."""

LEVEL_RANGE = (-10.0, 120.0)
"""Hearing levels an audiogram may hold, dB HL: what audiometers measure (ISO 8253-1)."""

FREQUENCY_RANGE = (125.0, 16000.0)
"""Audiogram frequencies allowed, Hz: the lowest and highest standard audiogram frequency
(``clarity.utils.audiogram.FULL_STANDARD_AUDIOGRAM_FREQUENCIES``)."""


def _listener_from_entry(key: str, entry, source):
    """One entry of a CAD1 listener dict -> ``clarity.utils.audiogram.Listener``."""
    c = clarity_api()
    if not isinstance(entry, Mapping):
        raise CadenzaError(
            f"listener {key!r} in {source} is a {type(entry).__name__}, expected "
            f"an object with fields {', '.join(LISTENER_FIELDS)}"
        )
    missing = [f for f in LISTENER_FIELDS if f not in entry]
    if missing:
        raise CadenzaError(
            f"listener {key!r} in {source} has no {', '.join(missing)} (a CAD1 "
            f"listener needs {', '.join(LISTENER_FIELDS)})"
        )
    name = str(entry.get("name", key))
    ears = {}
    for ear, field in (("left", "audiogram_levels_l"), ("right", "audiogram_levels_r")):
        try:
            freqs = np.asarray(entry["audiogram_cfs"], dtype=np.float64)
            levels = np.asarray(entry[field], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise CadenzaError(
                f"listener {key!r} in {source}: audiogram_cfs and {field} must "
                f"be lists of numbers ({err})"
            ) from err
        if freqs.ndim != 1 or levels.ndim != 1 or len(freqs) < 1:
            raise CadenzaError(
                f"listener {key!r} in {source}: audiogram_cfs and {field} must be "
                "non-empty lists of numbers"
            )
        if not (np.all(np.isfinite(freqs)) and np.all(np.isfinite(levels))):
            raise CadenzaError(
                f"listener {key!r} in {source}: audiogram_cfs and {field} must be "
                "finite numbers (no null)"
            )
        for checked, values, (low, high), unit in (
            ("audiogram_cfs", freqs, FREQUENCY_RANGE, "Hz"),
            (field, levels, LEVEL_RANGE, "dB HL"),
        ):
            bad = values[(values < low) | (values > high)]
            if bad.size:
                raise CadenzaError(
                    f"listener {key!r} in {source}: {checked} holds {bad[0]:g} {unit}, outside "
                    f"the range {low:g} to {high:g} {unit}"
                )
        try:
            ears[ear] = c["Audiogram"](levels=levels, frequencies=freqs)
        except ValueError as err:  # lengths differ, or not ascending / unique
            raise CadenzaError(
                f"listener {key!r} in {source}: {field} does not fit audiogram_cfs: {err}"
            ) from err
    return c["Listener"](audiogram_left=ears["left"], audiogram_right=ears["right"], id=name)


def load_listeners(path=None) -> list:
    """Read a CAD1 listener JSON file (default: :data:`EXAMPLE_LISTENERS`).

    Returns:
        ``clarity.utils.audiogram.Listener`` objects in file order; ``.id`` is the entry's
        ``name`` (its key when there is no name), ``.audiogram_left`` / ``.audiogram_right``
        the ears' audiograms (dB HL at ``audiogram_cfs`` Hz).
    """
    path = Path(EXAMPLE_LISTENERS if path in (None, "") else path).expanduser()
    if not path.is_file():
        raise CadenzaError(f"listener file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CadenzaError(f"cannot read listener file {path}: {err}") from err
    if not isinstance(data, Mapping) or not data:
        raise CadenzaError(
            f"listener file {path} must hold a non-empty JSON object keyed by "
            "listener id (the CAD1 listeners.*.json format)"
        )
    listeners = [_listener_from_entry(str(k), v, path) for k, v in data.items()]
    ids = [listener.id for listener in listeners]
    if len(set(ids)) != len(ids):
        raise CadenzaError(
            f"listener file {path} has repeated listener names: "
            f"{sorted({i for i in ids if ids.count(i) > 1})}"
        )
    return listeners


def save_listeners(listeners: Sequence, path) -> Path:
    """Write listeners in the CAD1 JSON format (both ears must share their frequencies)."""
    out = {}
    for listener in listeners:
        left, right = listener.audiogram_left, listener.audiogram_right
        if not np.array_equal(left.frequencies, right.frequencies):
            raise CadenzaError(
                f"listener {listener.id!r}: the CAD1 format needs the same "
                "audiogram frequencies in both ears"
            )
        out[listener.id] = {
            "name": listener.id,
            "audiogram_cfs": [float(f) for f in left.frequencies],
            "audiogram_levels_l": [float(v) for v in left.levels],
            "audiogram_levels_r": [float(v) for v in right.levels],
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return path


def pick_listener(listeners: Sequence, wanted: str | None):
    """The listener whose ``.id`` is ``wanted`` (``None``: the first one)."""
    if wanted is None:
        return listeners[0]
    for listener in listeners:
        if listener.id == wanted:
            return listener
    raise CadenzaError(
        f"no listener {wanted!r}; choose one of {', '.join(other.id for other in listeners)}"
    )


def ear_audiograms(listener) -> tuple:
    """``(left, right)`` audiograms of a listener, in the channel order of :data:`EARS`."""
    for attr in ("id", "audiogram_left", "audiogram_right"):
        if not hasattr(listener, attr):
            raise CadenzaError(
                f"listener must be a clarity Listener (from load_listeners), got "
                f"{type(listener).__name__} without .{attr}"
            )
    return listener.audiogram_left, listener.audiogram_right
