"""Cadenza CAD1 task 1: separate, fit a hearing aid per ear, remix, and score with HAAQI.

    python -m xslicq.cadenza checkpoint=model.ckpt                           # synthetic test split
    python -m xslicq.cadenza checkpoint=model.ckpt data=musdb data.root=/path/MUSDB18-HQ \\
        listeners=/path/cadenza_data/cad1/task1/metadata/listeners.valid.json workers=2
    python -m xslicq.cadenza checkpoint=model.ckpt seconds=10 compressor=true out=DIR

Data flow of one (song, listener) job, one line per stage (``N`` samples at the song's rate)::

    mixture (2, N)       -> Separator.separate (main process) -> {vocals, drums, bass, other}
    stems (2, N) each    -> 8 mono signals (left ear = channel 0, right ear = channel 1)
      -> hearing_aid       NAL-R FIR fitted to that ear's audiogram (+ optional compressor)
    processed stems      -> remix_stems: sum per ear -> tanh soft clip -> clip to [-1, 1] (2, N)
    processed stem, clean reference stem of the same ear
      -> score_stem        both resampled to 24 kHz -> HAAQI for that ear's audiogram
    rows (song, listener, stem, ear, haaqi) -> scores.csv, summary.json, summary.md

Songs are separated once in this process; the (song, listener) jobs run in ``workers``
processes (``concurrent.futures``), which is where nearly all the time goes: HAAQI costs
0.65-0.8 CPU s per second of mono audio (experiments/results/haaqi.md), i.e. ~3 min of one
core per 30 s song excerpt and listener (8 mono stems).

Conventions (those of the CAD1 task 1 baseline, ``recipes/cad1/task1/baseline`` of the
``pyclarity`` repository, final version v0.4; read there, not copied):

* Hearing aid: ``clarity.enhancer.nalr.NALR`` with ``nfir=220`` taps, designed at the song's
  sample rate from the ear's audiogram (pyclarity interpolates the audiogram to 250-6000 Hz
  on a log axis), then optionally ``clarity.enhancer.compressor.Compressor`` with the
  baseline's settings (:data:`COMPRESSOR`). The baseline keeps the FIR's constant delay of
  ``nfir / 2`` samples; here it is removed so that every stem and the remix stay aligned
  with the input (HAAQI aligns the signals itself, so the scores do not change).
* Stems are scored at their amplified level, unclipped: the baseline writes each stem
  peak-normalised next to its scale factor and the evaluation restores the scale. Only the
  remix is soft-clipped (``tanh``, then clipped to [-1, 1]), as the baseline does with
  ``soft_clip: True``. The baseline writes the remix at 32 kHz; here it stays at the input
  rate.
* HAAQI (``clarity.evaluator.haaqi.compute_haaqi``): processed stem and reference are both
  resampled to 24 kHz with ``clarity.utils.signal_processing.resample`` (soxr), and
  ``level1 = 65 - 20 log10(rms(reference))``, i.e. the reference is presented at 65 dB SPL
  and the processed stem at its level relative to it.
* The reference (``reference=`` option):

  - ``cad1`` (default): the *unamplified* reference stem with ``equalisation=1``, so HAAQI
    applies its own NAL-R (140 taps at 24 kHz) to the reference inside its ear model. This
    is exactly what the CAD1 evaluation did, so numbers are comparable with CAD1 results.
    Caveat of the metric: after aligning the two signals HAAQI takes its NAL-R output from
    sample ``nfir`` instead of ``nfir / 2``, so its reference leads the processed signal by
    70 samples (2.9 ms) more than its alignment intends, and even a perfect separation
    scores below 1: about 0.93 for tonal stems with a flat 0 dB HL audiogram and 0.73-0.89
    for the four stems of a music-like test song with the near-normal example listener
    (0.98-0.99 with ``matched``). Using HAAQI's own 140-tap filter for the processed stem
    gives the same number, so the offset, not the filter, is the cause. It applies to
    every system scored this way, CAD1 entries included.
  - ``matched``: the reference stem passed through the *same* NAL-R filter as the processed
    stem (no compressor, no clip) with ``equalisation=2`` (reference already amplified).
    A perfect separation then scores ~0.99, so the score isolates what separation (and the
    compressor) does to the music; not comparable with CAD1 numbers.

* A reference channel that is digitally silent (RMS below :data:`SILENT_RMS`) cannot be
  presented at 65 dB SPL and is not scored (NaN, left out of the means), as the
  evaluation of :mod:`xslicq.evaluation` skips silent references.

Listeners come from a CAD1 listener JSON file (``{"L0001": {"name": "L0001",
"audiogram_cfs": [...], "audiogram_levels_l": [...], "audiogram_levels_r": [...]}}``); without
``listeners=`` the four made-up examples of ``xslicq/data/listeners/examples.json`` are
used (mild, moderate, sloping, near-normal; *not* the challenge's listeners).

:class:`HAAQICallback` scores a short clip of the first validation item for one listener at
the end of every validation epoch and logs ``val/haaqi``.
"""
from __future__ import annotations

import csv
import importlib
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from .data import SOURCES
from .data.tracks import DatasetError, Track, read

log = logging.getLogger(__name__)

__all__ = ["CadenzaError", "COMPRESSOR", "CSV_COLUMNS", "EARS", "EXAMPLE_LISTENERS",
           "HAAQICallback", "REFERENCES", "evaluate_cadenza", "hearing_aid", "load_listeners",
           "nalr_fir", "process_song", "remix_stems", "save_listeners", "score_stem",
           "soft_clip", "summarize", "write_results"]

EXAMPLE_LISTENERS = Path(__file__).resolve().parent / "data" / "listeners" / "examples.json"
"""Four made-up listeners in the CAD1 format (see the README.md next to it)."""

EARS = ("left", "right")                  # channel 0 is the left ear, channel 1 the right
CSV_COLUMNS = ("song", "listener", "stem", "ear", "haaqi")
REFERENCES = ("cad1", "matched")
NALR_TAPS = 220                           # CAD1 baseline: nalr.nfir
HAAQI_SAMPLE_RATE = 24000                 # CAD1: stem_sample_rate; HAAQI's own model rate
REFERENCE_SPL = 65.0                      # dB SPL of a reference at RMS 1 after level1
SILENT_RMS = 1e-6                         # -120 dBFS: a reference channel below is not scored
MIN_SAMPLE_RATE = 16000                   # NAL-R prescribes gains up to 6 kHz
COMPRESSOR = {"threshold": 0.35, "attenuation": 0.1, "attack": 50.0, "release": 1000.0,
              "rms_buffer_size": 0.064}
"""The CAD1 baseline's compressor settings (``clarity.enhancer.compressor.Compressor``)."""

LISTENER_FIELDS = ("audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r")


class CadenzaError(ValueError):
    """A Cadenza evaluation cannot run as asked; the message names the value or file."""


def _clarity():
    """The pyclarity modules used here, with a clear error when it is not installed."""
    try:
        from clarity.enhancer.compressor import Compressor
        from clarity.enhancer.nalr import NALR
        from clarity.evaluator.haaqi import compute_haaqi
        from clarity.utils.audiogram import Audiogram, Listener
        from clarity.utils.signal_processing import resample
    except ImportError as err:
        raise CadenzaError(f"the Cadenza evaluation needs pyclarity, which is not installed "
                           f"({err}); install it with `pip install -c constraints.txt "
                           "pyclarity`") from err
    return {"Compressor": Compressor, "NALR": NALR, "compute_haaqi": compute_haaqi,
            "Audiogram": Audiogram, "Listener": Listener, "resample": resample}


# ----------------------------------------------------------------------------- listeners
def _listener_from_entry(key: str, entry, source):
    """One entry of a CAD1 listener dict -> ``clarity.utils.audiogram.Listener``."""
    c = _clarity()
    if not isinstance(entry, Mapping):
        raise CadenzaError(f"listener {key!r} in {source} is a {type(entry).__name__}, expected "
                           f"an object with fields {', '.join(LISTENER_FIELDS)}")
    missing = [f for f in LISTENER_FIELDS if f not in entry]
    if missing:
        raise CadenzaError(f"listener {key!r} in {source} has no {', '.join(missing)} (a CAD1 "
                           f"listener needs {', '.join(LISTENER_FIELDS)})")
    name = str(entry.get("name", key))
    ears = {}
    for ear, field in (("left", "audiogram_levels_l"), ("right", "audiogram_levels_r")):
        try:
            freqs = np.asarray(entry["audiogram_cfs"], dtype=np.float64)
            levels = np.asarray(entry[field], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise CadenzaError(f"listener {key!r} in {source}: audiogram_cfs and {field} must "
                               f"be lists of numbers ({err})") from err
        if freqs.ndim != 1 or levels.ndim != 1 or len(freqs) < 1:
            raise CadenzaError(f"listener {key!r} in {source}: audiogram_cfs and {field} must be "
                               "non-empty lists of numbers")
        if not (np.all(np.isfinite(freqs)) and np.all(np.isfinite(levels))):
            raise CadenzaError(f"listener {key!r} in {source}: audiogram_cfs and {field} must be "
                               "finite numbers (no null)")
        if np.any(freqs <= 0):
            raise CadenzaError(f"listener {key!r} in {source}: audiogram_cfs must be positive Hz, "
                               f"got {freqs.tolist()}")
        try:
            ears[ear] = c["Audiogram"](levels=levels, frequencies=freqs)
        except ValueError as err:          # lengths differ, or not ascending / unique
            raise CadenzaError(f"listener {key!r} in {source}: {field} does not fit "
                               f"audiogram_cfs: {err}") from err
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
        raise CadenzaError(f"listener file {path} must hold a non-empty JSON object keyed by "
                           "listener id (the CAD1 listeners.*.json format)")
    listeners = [_listener_from_entry(str(k), v, path) for k, v in data.items()]
    ids = [listener.id for listener in listeners]
    if len(set(ids)) != len(ids):
        raise CadenzaError(f"listener file {path} has repeated listener names: "
                           f"{sorted({i for i in ids if ids.count(i) > 1})}")
    return listeners


def save_listeners(listeners: Sequence, path) -> Path:
    """Write listeners in the CAD1 JSON format (both ears must share their frequencies)."""
    out = {}
    for listener in listeners:
        left, right = listener.audiogram_left, listener.audiogram_right
        if not np.array_equal(left.frequencies, right.frequencies):
            raise CadenzaError(f"listener {listener.id!r}: the CAD1 format needs the same "
                               "audiogram frequencies in both ears")
        out[listener.id] = {"name": listener.id,
                            "audiogram_cfs": [float(f) for f in left.frequencies],
                            "audiogram_levels_l": [float(v) for v in left.levels],
                            "audiogram_levels_r": [float(v) for v in right.levels]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return path


def _pick_listener(listeners: Sequence, wanted: str | None):
    if wanted is None:
        return listeners[0]
    for listener in listeners:
        if listener.id == wanted:
            return listener
    raise CadenzaError(f"no listener {wanted!r}; choose one of "
                       f"{', '.join(l.id for l in listeners)}")


# ------------------------------------------------------------------------ hearing aid
def _check_sample_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate < MIN_SAMPLE_RATE:
        raise CadenzaError(f"sample_rate must be an integer >= {MIN_SAMPLE_RATE} Hz (NAL-R "
                           f"prescribes gains up to 6 kHz), got {sample_rate!r}")
    return int(sample_rate)


def nalr_fir(audiogram, sample_rate: int, nfir: int = NALR_TAPS) -> np.ndarray:
    """NAL-R FIR taps (``nfir + 1``, linear phase, delay ``nfir / 2``) for one ear's audiogram."""
    sample_rate = _check_sample_rate(sample_rate)
    if isinstance(nfir, bool) or not isinstance(nfir, (int, np.integer)) or nfir < 2 or nfir % 2:
        raise CadenzaError(f"nfir must be an even integer >= 2, got {nfir!r}")
    fir, _ = _clarity()["NALR"](int(nfir), sample_rate).build(audiogram)
    return np.asarray(fir, dtype=np.float64)


def hearing_aid(signal, audiogram, sample_rate: int, compressor: bool = False,
                nfir: int = NALR_TAPS) -> np.ndarray:
    """The CAD1 baseline hearing aid for one ear: NAL-R, then optionally the compressor.

    Args:
        signal: (samples,) mono audio at ``sample_rate``.
        audiogram: ``clarity.utils.audiogram.Audiogram`` of the ear.
    Returns:
        (samples,) float64, aligned with ``signal`` (the FIR's delay removed), not clipped.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise CadenzaError(f"hearing_aid takes one mono signal (samples,), got shape {x.shape}")
    fir = nalr_fir(audiogram, sample_rate, nfir)
    y = np.convolve(x, fir)[nfir // 2: nfir // 2 + len(x)]
    if compressor:
        y, _, _ = _clarity()["Compressor"](fs=float(sample_rate), **COMPRESSOR).process(y)
    return np.asarray(y, dtype=np.float64)


def soft_clip(x) -> np.ndarray:
    """``tanh`` soft clip followed by a hard clip to [-1, 1] (the baseline's remix clip)."""
    return np.clip(np.tanh(np.asarray(x, dtype=np.float64)), -1.0, 1.0)


def remix_stems(processed: Mapping[str, np.ndarray], soft: bool = True) -> np.ndarray:
    """Sum the processed stems per ear and clip: ``{stem: (2, N)}`` -> (2, N) in [-1, 1].

    ``soft=True`` soft-clips (``tanh``) before the hard clip, as the baseline's
    ``soft_clip: True``; ``soft=False`` only clips.
    """
    if not processed:
        raise CadenzaError("nothing to remix: no processed stems")
    mix = np.sum([np.asarray(x, dtype=np.float64) for x in processed.values()], axis=0)
    return soft_clip(mix) if soft else np.clip(mix, -1.0, 1.0)


# ------------------------------------------------------------------------------ HAAQI
def _check_reference_mode(reference: str) -> str:
    if reference not in REFERENCES:
        raise CadenzaError(f"unknown reference convention {reference!r}; choose one of "
                           f"{', '.join(REFERENCES)}")
    return reference


def score_stem(processed, reference, sample_rate: int, audiogram, reference_mode: str = "cad1",
               nfir: int = NALR_TAPS) -> float:
    """HAAQI of one ear's processed stem against the clean reference stem of that ear.

    Args:
        processed: (samples,) the hearing-aid output for the stem (amplified).
        reference: (samples,) the clean, *unamplified* reference stem; the convention
            (``reference_mode``: ``cad1`` or ``matched``, see the module docstring) decides
            how its NAL-R amplification is applied.
        sample_rate: Hz of both; they are resampled to 24 kHz for HAAQI.
    Returns:
        HAAQI in [0, 1]; NaN when the reference is digitally silent.
    """
    c = _clarity()
    sample_rate = _check_sample_rate(sample_rate)
    _check_reference_mode(reference_mode)
    proc = np.asarray(processed, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if proc.ndim != 1 or ref.ndim != 1 or len(proc) == 0 or len(ref) == 0:
        raise CadenzaError(f"score_stem takes two non-empty mono signals, got shapes "
                           f"{proc.shape} and {ref.shape}")
    rms = float(np.sqrt(np.mean(ref ** 2)))
    if rms < SILENT_RMS:
        return math.nan
    level1 = REFERENCE_SPL - 20.0 * math.log10(rms)
    if reference_mode == "matched":
        ref, equalisation = hearing_aid(ref, audiogram, sample_rate, nfir=nfir), 2
    else:
        equalisation = 1
    proc = c["resample"](proc, sample_rate, HAAQI_SAMPLE_RATE)
    ref = c["resample"](ref, sample_rate, HAAQI_SAMPLE_RATE)
    with np.errstate(divide="ignore", invalid="ignore"):      # log10(0) of a silent estimate
        score = c["compute_haaqi"](processed_signal=proc, reference_signal=ref,
                                   processed_sample_rate=HAAQI_SAMPLE_RATE,
                                   reference_sample_rate=HAAQI_SAMPLE_RATE,
                                   audiogram=audiogram, equalisation=equalisation,
                                   level1=level1)
    return float(score)


def _check_stems(stems: Mapping, references: Mapping) -> tuple[list[str], int]:
    if not isinstance(stems, Mapping) or not isinstance(references, Mapping):
        raise CadenzaError(f"stems and references must be dicts {{stem: (2, samples)}}, got "
                           f"{type(stems).__name__} and {type(references).__name__}")
    if not stems:
        raise CadenzaError("no stems to process")
    if set(stems) != set(references):
        raise CadenzaError(f"stems {sorted(stems)} and references {sorted(references)} must "
                           "name the same stems")
    names = [s for s in SOURCES if s in stems] + [s for s in stems if s not in SOURCES]
    length = None
    for what, group in (("stem", stems), ("reference", references)):
        for name in names:
            x = np.asarray(group[name])
            if x.ndim != 2 or x.shape[0] != 2:
                raise CadenzaError(f"{what} {name!r} has shape {x.shape}, expected "
                                   "(2, samples): left and right ear")
            if length is None:
                length = x.shape[1]
            if x.shape[1] != length or length == 0:
                raise CadenzaError(f"{what} {name!r} has {x.shape[1]} samples, expected "
                                   f"{length} like the others (and more than 0)")
            if not np.all(np.isfinite(x)):
                raise CadenzaError(f"{what} {name!r} contains NaN or inf")
    return names, int(length)


def process_song(stems: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray],
                 listener, sample_rate: int, compressor: bool = False,
                 reference: str = "cad1", soft: bool = True, song: str = "",
                 nfir: int = NALR_TAPS) -> tuple[list[dict], np.ndarray]:
    """One (song, listener) job: hearing aid per stem and ear, remix, HAAQI per stem and ear.

    Args:
        stems: ``{stem: (2, N)}`` separated stems (channel 0 = left ear).
        references: ``{stem: (2, N)}`` clean reference stems, same names and length.
        listener: ``clarity.utils.audiogram.Listener`` (see :func:`load_listeners`).
        sample_rate: Hz of all signals (>= 16 kHz).
        compressor: apply the baseline's compressor after NAL-R.
        reference: HAAQI reference convention, ``cad1`` or ``matched`` (module docstring).
        soft: soft-clip the remix (``tanh``) before clipping it.
        song: the song's name for the rows.
    Returns:
        ``(rows, remix)``: one row ``{"song", "listener", "stem", "ear", "haaqi"}`` per stem
        and ear (stems in vocals, drums, bass, other order, then left, right) and the remix
        (2, N) float32 in [-1, 1].
    """
    sample_rate = _check_sample_rate(sample_rate)
    _check_reference_mode(reference)
    for attr in ("id", "audiogram_left", "audiogram_right"):
        if not hasattr(listener, attr):
            raise CadenzaError(f"listener must be a clarity Listener (from load_listeners), got "
                               f"{type(listener).__name__} without .{attr}")
    names, _ = _check_stems(stems, references)
    audiograms = (listener.audiogram_left, listener.audiogram_right)
    processed = {}
    for name in names:
        x = np.asarray(stems[name], dtype=np.float64)
        processed[name] = np.stack([hearing_aid(x[e], audiograms[e], sample_rate, compressor,
                                                nfir) for e in range(2)])
    remix = remix_stems(processed, soft=soft).astype(np.float32)
    rows = []
    for name in names:
        ref = np.asarray(references[name], dtype=np.float64)
        for e, ear in enumerate(EARS):
            score = score_stem(processed[name][e], ref[e], sample_rate, audiograms[e],
                               reference, nfir)
            rows.append({"song": song, "listener": listener.id, "stem": name, "ear": ear,
                         "haaqi": score})
    return rows, remix


# -------------------------------------------------------------------------- results
def _mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def summarize(rows: Sequence[Mapping]) -> dict:
    """Means of the HAAQI rows (NaN rows, i.e. silent references, left out).

    Returns:
        ``{"mean", "per_stem", "per_ear", "per_listener", "per_song", "rows", "scored",
        "songs", "listeners", "stems"}``; ``mean`` is over all scored rows (with no NaN rows
        the mean of the per-(song, listener) CAD1 scores).
    """
    stems = [s for s in SOURCES if any(r["stem"] == s for r in rows)]
    stems += sorted({r["stem"] for r in rows} - set(stems))
    songs = sorted({r["song"] for r in rows})
    listeners = sorted({r["listener"] for r in rows})

    def mean_by(key, value):
        return _mean(r["haaqi"] for r in rows if r[key] == value)

    return {"mean": _mean(r["haaqi"] for r in rows),
            "per_stem": {s: mean_by("stem", s) for s in stems},
            "per_ear": {e: mean_by("ear", e) for e in EARS},
            "per_listener": {k: mean_by("listener", k) for k in listeners},
            "per_song": {k: mean_by("song", k) for k in songs},
            "rows": len(rows), "scored": sum(not math.isnan(r["haaqi"]) for r in rows),
            "songs": songs, "listeners": listeners, "stems": stems}


def _fmt(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.4f}"


def summary_markdown(summary: dict, options: Mapping | None = None) -> str:
    """A small Markdown report: mean per stem, per ear and overall."""
    lines = ["# HAAQI (Cadenza CAD1 task 1 pipeline)", "",
             f"{len(summary['songs'])} song(s) x {len(summary['listeners'])} listener(s); "
             f"{summary['scored']} of {summary['rows']} (song, listener, stem, ear) rows scored "
             "(a digitally silent reference is not scored)."]
    if options:
        lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in options.items()) + "."]
    lines += ["", "| stem | HAAQI |", "|---|---:|"]
    lines += [f"| {s} | {_fmt(v)} |" for s, v in summary["per_stem"].items()]
    lines += [f"| {e} ear | {_fmt(v)} |" for e, v in summary["per_ear"].items()]
    lines.append(f"| **mean** | **{_fmt(summary['mean'])}** |")
    lines += ["", "| listener | HAAQI |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in summary["per_listener"].items()]
    return "\n".join(lines) + "\n"


def _sort_key(row: Mapping):
    order = {s: i for i, s in enumerate(SOURCES)}
    return (row["song"], row["listener"], order.get(row["stem"], len(order)), row["stem"],
            EARS.index(row["ear"]) if row["ear"] in EARS else 2)


def _write_csv(rows: Sequence[Mapping], path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in sorted(rows, key=_sort_key):
            w.writerow([r["song"], r["listener"], r["stem"], r["ear"],
                        "nan" if math.isnan(r["haaqi"]) else f"{r['haaqi']:.6f}"])
    os.replace(tmp, path)


def _jsonable(value):
    """NaN -> None (JSON null), recursively."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_results(rows: Sequence[Mapping], out_dir, options: Mapping | None = None) -> dict:
    """Write ``scores.csv`` (one row per song, listener, stem, ear), ``summary.json`` and
    ``summary.md`` into ``out_dir``; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(rows, out_dir / "scores.csv")
    summary = summarize(rows)
    if options:
        summary["options"] = dict(options)
    (out_dir / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n",
                                          encoding="utf-8")
    (out_dir / "summary.md").write_text(summary_markdown(summary, options), encoding="utf-8")
    return summary


# ------------------------------------------------------------------------- pipeline
def _job(song: str, listener, stems: dict, references: dict, sample_rate: int,
         options: dict, keep_remix: bool):
    """One (song, listener) job in a worker process; see :func:`process_song`."""
    rows, remix = process_song(stems, references, listener, sample_rate, song=song, **options)
    return rows, (remix if keep_remix else None)


def _check_estimates(estimates, names: Sequence[str], track: Track, frames: int) -> dict:
    if not isinstance(estimates, Mapping):
        raise CadenzaError(f"song {track.name}: the separator returned "
                           f"{type(estimates).__name__}, expected a dict of stems")
    out = {}
    for name in names:
        if name not in estimates:
            raise CadenzaError(f"song {track.name}: the separator returned no {name!r} stem "
                               f"(got {sorted(estimates)})")
        x = estimates[name]
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (2, frames):
            raise CadenzaError(f"song {track.name}: the {name!r} stem has shape {x.shape}, "
                               f"expected (2, {frames})")
        out[name] = x
    return out


def _targets(separate_fn, targets) -> list[str]:
    if targets:
        names = list(targets)
    else:
        names = None
        for owner in (separate_fn, getattr(separate_fn, "__self__", None)):
            if getattr(owner, "targets", None):
                names = list(owner.targets)
                break
        names = names or list(SOURCES)
    unknown = [t for t in names if t not in SOURCES]
    if unknown:
        raise CadenzaError(f"stems {unknown} are not MUSDB18 stems; choose from "
                           f"{', '.join(SOURCES)}")
    missing = [s for s in SOURCES if s not in names]
    if missing:
        warnings.warn(f"the separator gives no {missing}: the remix lacks them and only "
                      f"{names} are scored (CAD1 scores all four)", stacklevel=3)
    return [s for s in SOURCES if s in names]


def _check_seconds(seconds) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise CadenzaError(f"seconds must be a positive number of seconds or null (whole "
                           f"songs), got {seconds!r}")
    return float(seconds)


def _check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise CadenzaError(f"workers must be an integer >= 0 (0: score in this process), "
                           f"got {workers!r}")
    return workers


def evaluate_cadenza(separate_fn: Callable, tracks: Sequence[Track], listeners: Sequence,
                     out_dir, workers: int = 2, compressor: bool = False,
                     reference: str = "cad1", soft: bool = True,
                     seconds: float | None = None, save_remix: bool = False,
                     targets: Sequence[str] | None = None) -> dict:
    """Separate every song, process and score it for every listener, write the results.

    Args:
        separate_fn: ``separate_fn(audio (2, N) float32, sample_rate) -> {stem: (2, N)}``
            (e.g. ``Separator.separate``); runs in this process, once per song.
        tracks: :class:`~xslicq.data.tracks.Track` objects (``find_tracks``).
        listeners: ``clarity`` Listener objects (:func:`load_listeners`).
        out_dir: receives ``scores.csv`` (sorted; while running, finished rows are appended
            to ``scores.partial.csv``, which stays behind if the run fails),
            ``summary.json``, ``summary.md`` and, with ``save_remix``,
            ``remix/<listener>/<song>.wav`` (16-bit, the input rate).
        workers: processes for the (song, listener) jobs (0: this process).
        compressor, reference, soft: see :func:`process_song`.
        seconds: score only the first ``seconds`` of every song (``None``: whole songs).
        targets: stems to score (default: the separator's ``targets``, else all four).
    Returns:
        the summary of :func:`summarize` (plus ``options``).
    """
    from tqdm.auto import tqdm

    _clarity()
    workers = _check_workers(workers)
    seconds = _check_seconds(seconds)
    _check_reference_mode(reference)
    tracks, listeners = list(tracks), list(listeners)
    if not tracks:
        raise CadenzaError("no songs to evaluate")
    if not listeners:
        raise CadenzaError("no listeners to evaluate for")
    for track in tracks:
        if track.sample_rate < MIN_SAMPLE_RATE:
            raise CadenzaError(f"song {track.name} has sample rate {track.sample_rate} Hz; "
                               f"the hearing aid needs >= {MIN_SAMPLE_RATE} Hz")
    names = _targets(separate_fn, targets)
    options = {"compressor": bool(compressor), "reference": reference, "soft": bool(soft)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / "scores.partial.csv"

    def jobs() -> Iterator:
        for track in tracks:
            frames = track.frames if seconds is None else \
                min(track.frames, max(1, int(round(seconds * track.sample_rate))))
            mixture = read(track, "mixture", 0, frames)
            stems = _check_estimates(separate_fn(mixture, track.sample_rate), names, track,
                                     frames)
            missing = [n for n in names if n not in track.paths]
            if missing:
                raise CadenzaError(f"song {track.name} has no reference for {missing}")
            references = {n: read(track, n, 0, frames) for n in names}
            for listener in listeners:
                yield track.name, listener, stems, references, track.sample_rate

    rows: list[dict] = []
    sample_rates = {t.name: t.sample_rate for t in tracks}
    total = len(tracks) * len(listeners)
    bar = tqdm(total=total, desc="HAAQI (song x listener)", unit="job", dynamic_ncols=True)
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)

        def collect(song, listener_id, result):
            job_rows, remix = result
            rows.extend(job_rows)
            for r in job_rows:
                writer.writerow([r[c] for c in CSV_COLUMNS])
            f.flush()
            if remix is not None:
                import soundfile as sf
                path = out_dir / "remix" / listener_id / f"{song}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), remix.T, sample_rates[song], subtype="PCM_16")
            bar.set_postfix_str(f"{song[:30]} / {listener_id}")
            bar.update(1)

        try:
            if workers == 0:
                for song, listener, stems, refs, sr in jobs():
                    collect(song, listener.id, _job(song, listener, stems, refs, sr, options,
                                                    save_remix))
            else:
                _run_pool(jobs(), workers, options, save_remix, collect)
        finally:
            bar.close()
    summary = write_results(rows, out_dir, {
        "compressor": bool(compressor), "reference": reference, "soft_clip": bool(soft),
        "seconds": seconds, "listeners": len(listeners)})
    partial.unlink(missing_ok=True)
    return summary


def _run_pool(jobs: Iterator, workers: int, options: dict, keep_remix: bool,
              collect: Callable) -> None:
    """Score the (song, listener) jobs in ``workers`` spawned processes."""
    from .evaluation import run_in_processes

    # by import name, so that workers can unpickle it when this module runs as __main__
    worker = importlib.import_module("xslicq.cadenza")._job

    def failed(key, err):
        song, listener_id = key
        if isinstance(err, CadenzaError):
            return CadenzaError(f"song {song}, listener {listener_id}: {err}")
        return CadenzaError(f"scoring song {song} for listener {listener_id} failed: "
                            f"{type(err).__name__}: {err}")

    run_in_processes(worker, (((song, listener.id),
                               (song, listener, stems, refs, sr, options, keep_remix))
                              for song, listener, stems, refs, sr in jobs),
                     workers, lambda key, result: collect(*key, result), failed)


# ----------------------------------------------------------------------- the CLI
def run(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` on ``cfg.split`` of ``cfg.data`` for ``cfg.listeners``."""
    from .evaluation import load_split

    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.checkpoint in (None, ""):
        raise CadenzaError("no checkpoint given: pass checkpoint=/path/to/model.ckpt")
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    if not checkpoint.is_file():
        raise CadenzaError(f"checkpoint {checkpoint} does not exist (or is not a file)")
    _clarity()
    workers = _check_workers(cfg.workers)
    seconds = _check_seconds(cfg.get("seconds"))
    reference = _check_reference_mode(cfg.get("reference", "cad1"))
    listeners = load_listeners(cfg.get("listeners"))
    tracks = load_split(cfg.data, cfg.split)
    from .separator import Separator
    separator = Separator.from_checkpoint(str(checkpoint), device=cfg.get("device", "cpu"))
    log.info("Cadenza HAAQI of %s: %d %s songs x %d listeners", checkpoint, len(tracks),
             cfg.split, len(listeners))
    return evaluate_cadenza(separator.separate, tracks, listeners, cfg.out, workers=workers,
                            compressor=bool(cfg.compressor), reference=reference,
                            soft=bool(cfg.get("soft_clip", True)), seconds=seconds,
                            save_remix=bool(cfg.get("save_remix", False)),
                            targets=list(cfg.targets) if cfg.get("targets") else None)


@hydra.main(version_base="1.3", config_path="../conf", config_name="cadenza")
def main(cfg: DictConfig) -> float:
    """Returns the mean HAAQI."""
    from .evaluation import EvaluationError
    try:
        summary = run(cfg)
    except (CadenzaError, DatasetError, EvaluationError) as err:
        raise SystemExit(f"xslicq.cadenza: error: {err}") from None
    print(summary_markdown(summary, summary.get("options")))
    print(f"written to {Path(cfg.out).resolve()}")
    return summary["mean"]


# -------------------------------------------------------------------- the callback
def _loudest_window(references: np.ndarray, frames: int, hop: int) -> int:
    """Start of the ``frames``-long window whose quietest (stem, channel) is loudest."""
    n = references.shape[-1]
    if frames >= n:
        return 0
    power = np.cumsum(np.concatenate([np.zeros(references.shape[:-1] + (1,)),
                                      references.astype(np.float64) ** 2], axis=-1), axis=-1)
    starts = np.arange(0, n - frames + 1, max(1, hop))
    energy = power[..., starts + frames] - power[..., starts]          # (J, C, W)
    return int(starts[np.argmax(energy.reshape(-1, len(starts)).min(0))])


class _HAAQIScoring:
    """The logic of :class:`HAAQICallback`, kept free of Lightning so that importing this
    module (as the scoring workers do) does not import it."""

    def __init__(self, seconds: float = 2.0, listener: str | None = None,
                 every_n_epochs: int = 1, listeners: str | None = None,
                 reference: str = "cad1", compressor: bool = False):
        super().__init__()
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise CadenzaError(f"HAAQICallback: seconds must be positive, got {seconds!r}")
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) \
                or every_n_epochs < 1:
            raise CadenzaError(f"HAAQICallback: every_n_epochs must be an integer >= 1, got "
                               f"{every_n_epochs!r}")
        self.seconds, self.every_n_epochs = float(seconds), every_n_epochs
        self.reference, self.compressor = _check_reference_mode(reference), bool(compressor)
        self.listener = _pick_listener(load_listeners(listeners), listener)
        self.last_scores: dict | None = None
        self._item = None

    def _due(self, trainer) -> bool:
        return not trainer.sanity_checking and \
            (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0 and self._due(trainer):
            self._item = (batch[0][0].detach().cpu(), batch[1][0].detach().cpu())

    def on_validation_epoch_end(self, trainer, pl_module):
        item, self._item = self._item, None
        if item is None or not self._due(trainer):
            return
        scores = self.score(pl_module, *item)
        self.last_scores = scores
        if math.isnan(scores["mean"]):
            warnings.warn("HAAQICallback: every reference of the clip is silent; val/haaqi not "
                          "logged", stacklevel=2)
            return
        pl_module.log("val/haaqi", scores["mean"])
        for stem, value in scores["per_stem"].items():
            if not math.isnan(value):
                pl_module.log(f"val/haaqi_{stem}", value)

    def score(self, pl_module, mixture, references) -> dict:
        """HAAQI of the module's estimates for one item (a clip of ``seconds``).

        Args:
            pl_module: a :class:`~xslicq.system.SeparationSystem` (``pl_module(mixture[None])``
                gives (1, J, C, L) estimates; ``.targets``, ``.transform.sample_rate``).
            mixture: (C, L) tensor; references: (J, C, L) tensor.
        Returns:
            :func:`summarize` of the rows (``mean``, ``per_stem``, ...).
        """
        import torch

        sample_rate = int(pl_module.transform.sample_rate)
        with torch.no_grad():
            device = getattr(pl_module, "device", torch.device("cpu"))
            estimates = pl_module(mixture[None].to(device))[0].float().cpu().numpy()
        refs = references.float().cpu().numpy()
        if refs.shape[1] == 1:                                   # mono: both ears hear it
            refs, estimates = np.repeat(refs, 2, 1), np.repeat(estimates, 2, 1)
        frames = min(refs.shape[-1], int(round(self.seconds * sample_rate)))
        start = _loudest_window(refs, frames, sample_rate // 4)
        cut = slice(start, start + frames)
        targets = list(pl_module.targets)
        rows, _ = process_song({t: estimates[j, :, cut] for j, t in enumerate(targets)},
                               {t: refs[j, :, cut] for j, t in enumerate(targets)},
                               self.listener, sample_rate, compressor=self.compressor,
                               reference=self.reference, song="validation")
        return summarize(rows)



_CALLBACK_DOC = """At the end of a validation epoch, HAAQI of a clip of the first validation item.

    Takes the first validation batch's first item (mixture and references), separates it
    with ``pl_module(mixture[None])``, cuts the ``seconds``-long window in which the
    quietest stem is loudest, runs it through :func:`process_song` for one listener and logs
    ``val/haaqi`` (mean over stems and ears) and ``val/haaqi_<stem>``. Runs in the training
    process and blocks it: about 8 x ``seconds`` s of CPU per scored epoch with four stems
    (``every_n_epochs`` spaces it out); skipped in the sanity check.

    Args:
        seconds: clip length in seconds.
        listener: listener id in ``listeners`` (``None``: the file's first listener, in the
            example file ``example_mild``).
        every_n_epochs: score every n-th epoch.
        listeners: CAD1 listener JSON file (``None``: the examples).
        reference: ``cad1`` or ``matched`` (see the module docstring).
        compressor: apply the baseline's compressor.
    """


def _make_callback_class():
    import pytorch_lightning as pl
    cls = type("HAAQICallback", (_HAAQIScoring, pl.Callback),
               {"__module__": __name__, "__doc__": _CALLBACK_DOC})
    cls.__qualname__ = "HAAQICallback"
    return cls


if TYPE_CHECKING:                          # what linters and IDEs see
    import pytorch_lightning as pl

    class HAAQICallback(_HAAQIScoring, pl.Callback):
        """See :data:`_CALLBACK_DOC`; built on first access by the module ``__getattr__``."""


def __getattr__(name):
    # HAAQICallback subclasses pl.Callback; build it on first use so that importing this
    # module (the scoring workers do) does not import Lightning (~9 s)
    if name == "HAAQICallback":
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
