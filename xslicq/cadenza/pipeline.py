"""The Cadenza pipeline: one (song, listener) job, and a whole evaluation of songs x listeners.

    mixture (2, N) -> separate_fn (this process, once per song) -> {stem: (2, N)}
    for every listener, one job (process_song, in a worker process):
      stems (2, N) -> hearing_aid per ear -> remix_stems -> remix (2, N)
      processed stem (N,), reference stem (N,) per ear -> score_stem -> rows
    rows -> scores.csv, summary.json, summary.md (write_results)

:func:`run` does the same from the ``conf/cadenza.yaml`` config (what the command line
``python -m xslicq.cadenza`` calls). The jobs run in the processes of
:func:`xslicq.evaluation.pool.run_in_processes`; their worker, :func:`_job`, lives here so
that a spawned process can import it by name.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..checks import check_int, is_number
from ..data import SOURCES
from ..data.tracks import Track, read
from ..errors import CadenzaConfigError
from ..evaluation import load_split
from ..evaluation.estimates import check_estimates
from ..evaluation.pool import run_in_processes
from ..outputs import results
from .errors import CadenzaError, clarity_api
from .haaqi import check_reference_mode, score_stem
from .hearing_aid import (
    MIN_SAMPLE_RATE,
    NALR_TAPS,
    check_hearing_aid_rate,
    hearing_aid,
    remix_stems,
)
from .listeners import EARS, ear_audiograms, load_listeners
from .reports import CSV_COLUMNS, write_results

log = logging.getLogger(__name__)

__all__ = [
    "check_flag",
    "check_seconds",
    "check_workers",
    "evaluate_cadenza",
    "process_song",
    "run",
]


FLAGS = {"compressor": False, "soft_clip": True, "save_remix": False}
"""The boolean settings of ``conf/cadenza.yaml`` and their defaults."""


def _check_stems(stems: Mapping, references: Mapping) -> tuple[list[str], int]:
    """Stem names in MUSDB18 order and their common length N; every array must be (2, N)."""
    if not isinstance(stems, Mapping) or not isinstance(references, Mapping):
        raise CadenzaError(
            f"stems and references must be dicts {{stem: (2, samples)}}, got "
            f"{type(stems).__name__} and {type(references).__name__}"
        )
    if not stems:
        raise CadenzaError("no stems to process")
    if set(stems) != set(references):
        raise CadenzaError(
            f"stems {sorted(stems)} and references {sorted(references)} must name the same stems"
        )
    names = [s for s in SOURCES if s in stems] + [s for s in stems if s not in SOURCES]
    length = None
    for what, group in (("stem", stems), ("reference", references)):
        for name in names:
            x = np.asarray(group[name])
            if x.ndim != 2 or x.shape[0] != 2:
                raise CadenzaError(
                    f"{what} {name!r} has shape {x.shape}, expected "
                    "(2, samples): left and right ear"
                )
            if length is None:
                length = x.shape[1]
            if x.shape[1] != length or length == 0:
                raise CadenzaError(
                    f"{what} {name!r} has {x.shape[1]} samples, expected "
                    f"{length} like the others (and more than 0)"
                )
            if not np.all(np.isfinite(x)):
                raise CadenzaError(f"{what} {name!r} contains NaN or inf")
    return names, int(length)


def process_song(
    stems: Mapping[str, np.ndarray],
    references: Mapping[str, np.ndarray],
    listener,
    sample_rate: int,
    compressor: bool = False,
    reference: str = "cad1",
    soft: bool = True,
    song: str = "",
    nfir: int = NALR_TAPS,
) -> tuple[list[dict], np.ndarray]:
    """One (song, listener) job: hearing aid per stem and ear, remix, HAAQI per stem and ear.

    Args:
        stems: ``{stem: (2, N)}`` separated stems (channel 0 = left ear).
        references: ``{stem: (2, N)}`` clean reference stems, same names and length.
        listener: ``clarity.utils.audiogram.Listener`` (see :func:`load_listeners`).
        sample_rate: Hz of all signals (>= 16 kHz).
        compressor: apply the baseline's compressor after NAL-R.
        reference: HAAQI reference convention, ``cad1`` or ``matched`` (docs/cadenza.md).
        soft: soft-clip the remix (``tanh``) before clipping it.
        song: the song's name for the rows.
    Returns:
        ``(rows, remix)``: one row ``{"song", "listener", "stem", "ear", "haaqi"}`` per stem
        and ear (stems in vocals, drums, bass, other order, then left, right) and the remix
        (2, N) float32 in [-1, 1].
    """
    sample_rate = check_hearing_aid_rate(sample_rate)
    check_reference_mode(reference)
    compressor, soft = check_flag(compressor, "compressor"), check_flag(soft, "soft_clip")
    audiograms = ear_audiograms(listener)
    names, _ = _check_stems(stems, references)
    processed = {}
    for name in names:
        x = np.asarray(stems[name], dtype=np.float64)
        processed[name] = np.stack(
            [hearing_aid(x[e], audiograms[e], sample_rate, compressor, nfir) for e in range(2)]
        )
    remix = remix_stems(processed, soft=soft).astype(np.float32)
    rows = []
    for name in names:
        ref = np.asarray(references[name], dtype=np.float64)
        for e, ear in enumerate(EARS):
            score = score_stem(
                processed[name][e], ref[e], sample_rate, audiograms[e], reference, nfir
            )
            rows.append(
                {"song": song, "listener": listener.id, "stem": name, "ear": ear, "haaqi": score}
            )
    return rows, remix


def _job(
    song: str,
    listener,
    stems: dict,
    references: dict,
    sample_rate: int,
    options: dict,
    keep_remix: bool,
):
    """One (song, listener) job in a worker process; see :func:`process_song`.

    Returns:
        ``(rows, remix)``; ``remix`` (2, N) float32, or ``None`` unless ``keep_remix``.
    """
    rows, remix = process_song(stems, references, listener, sample_rate, song=song, **options)
    return rows, (remix if keep_remix else None)


def _targets(separate_fn, targets) -> list[str]:
    """The stems to score, in MUSDB18 order: ``targets``, else the separator's, else all."""
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
        raise CadenzaError(
            f"stems {unknown} are not MUSDB18 stems; choose from {', '.join(SOURCES)}"
        )
    missing = [s for s in SOURCES if s not in names]
    if missing:
        warnings.warn(
            f"the separator gives no {missing}: the remix lacks them and only "
            f"{names} are scored (CAD1 scores all four)",
            stacklevel=3,
        )
    return [s for s in SOURCES if s in names]


def check_seconds(seconds) -> float | None:
    """``seconds`` as a float (``None`` stays: whole songs), or a :class:`CadenzaError`."""
    if seconds is None:
        return None
    if not is_number(seconds) or not seconds > 0:
        raise CadenzaConfigError(
            f"seconds must be a positive number of seconds or null (whole songs), got {seconds!r}"
        )
    return float(seconds)


def check_flag(value, name: str) -> bool:
    """``value`` if it is a boolean (``compressor``, ``soft_clip``, ``save_remix``), else a
    :class:`CadenzaError` naming it (``bool("false")`` would read as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise CadenzaConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_workers(workers) -> int:
    """``workers`` if it is an integer >= 0 (0: score in this process), else an error."""
    return check_int(workers, "workers", 0, CadenzaConfigError, " (0: score in this process)")


def evaluate_cadenza(
    separate_fn: Callable,
    tracks: Sequence[Track],
    listeners: Sequence,
    out_dir,
    workers: int = 2,
    compressor: bool = False,
    reference: str = "cad1",
    soft: bool = True,
    seconds: float | None = None,
    save_remix: bool = False,
    targets: Sequence[str] | None = None,
) -> dict:
    """Separate every song, process and score it for every listener, write the results.

    Args:
        separate_fn: ``separate_fn(audio (2, N) float32, sample_rate) -> {stem: (2, N)}``
            (e.g. ``Separator.separate``); runs in this process, once per song. Stems of
            another length, channel count or rate (``({stem: ...}, rate)``) are refused
            with an :class:`~xslicq.evaluation.EvaluationError` naming the song, the stem
            and both values (:func:`xslicq.evaluation.check_estimates`).
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
        the summary of :func:`~xslicq.cadenza.reports.summarize` (plus ``options``).
    """
    from tqdm.auto import tqdm

    clarity_api()
    workers = check_workers(workers)
    seconds = check_seconds(seconds)
    check_reference_mode(reference)
    compressor, soft = check_flag(compressor, "compressor"), check_flag(soft, "soft_clip")
    save_remix = check_flag(save_remix, "save_remix")
    tracks, listeners = list(tracks), list(listeners)
    if not tracks:
        raise CadenzaError("no songs to evaluate")
    if not listeners:
        raise CadenzaError("no listeners to evaluate for")
    for track in tracks:
        if track.sample_rate < MIN_SAMPLE_RATE:
            raise CadenzaError(
                f"song {track.name} has sample rate {track.sample_rate} Hz; "
                f"the hearing aid needs >= {MIN_SAMPLE_RATE} Hz"
            )
    names = _targets(separate_fn, targets)
    options = {"compressor": bool(compressor), "reference": reference, "soft": bool(soft)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / "scores.partial.csv"

    def jobs() -> Iterator:
        for track in tracks:
            frames = (
                track.frames
                if seconds is None
                else min(track.frames, max(1, int(round(seconds * track.sample_rate))))
            )
            mixture = read(track, "mixture", 0, frames)
            stems = check_estimates(
                separate_fn(mixture, track.sample_rate),
                names,
                mixture.shape,
                track.sample_rate,
                track.name,
                label="song",
            )
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
                    collect(
                        song,
                        listener.id,
                        _job(song, listener, stems, refs, sr, options, save_remix),
                    )
            else:
                _run_pool(jobs(), workers, options, save_remix, collect)
        finally:
            bar.close()
    summary = write_results(
        rows,
        out_dir,
        {
            "compressor": bool(compressor),
            "reference": reference,
            "soft_clip": bool(soft),
            "seconds": seconds,
            "listeners": len(listeners),
        },
    )
    partial.unlink(missing_ok=True)
    return summary


def _run_pool(
    jobs: Iterator, workers: int, options: dict, keep_remix: bool, collect: Callable
) -> None:
    """Score the (song, listener) jobs in ``workers`` spawned processes."""

    def failed(key, err):
        song, listener_id = key
        if isinstance(err, CadenzaError):
            return CadenzaError(f"song {song}, listener {listener_id}: {err}")
        return CadenzaError(
            f"scoring song {song} for listener {listener_id} failed: {type(err).__name__}: {err}"
        )

    run_in_processes(
        _job,
        (
            ((song, listener.id), (song, listener, stems, refs, sr, options, keep_remix))
            for song, listener, stems, refs, sr in jobs
        ),
        workers,
        lambda key, result: collect(*key, result),
        failed,
    )


def run(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` on ``cfg.split`` of ``cfg.data`` for ``cfg.listeners``.

    Every setting is checked, and the checkpoint read, before the data set is read or
    generated: a damaged checkpoint is one error at once (it came as a traceback after the
    synthetic set's generation, 44 s).

    Args:
        cfg: the composed ``conf/cadenza.yaml`` (checkpoint, split, data, listeners, workers,
            device, compressor, soft_clip, reference, seconds, save_remix, targets, out).
    Returns:
        the summary of :func:`evaluate_cadenza`.
    """
    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.checkpoint in (None, ""):
        raise CadenzaConfigError("no checkpoint given: pass checkpoint=/path/to/model.ckpt")
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    if not checkpoint.is_file():
        raise CadenzaConfigError(f"checkpoint {checkpoint} does not exist (or is not a file)")
    clarity_api()
    workers = check_workers(cfg.workers)
    seconds = check_seconds(cfg.get("seconds"))
    reference = check_reference_mode(cfg.get("reference", "cad1"))
    flags = {k: check_flag(cfg.get(k, d), k) for k, d in FLAGS.items()}
    listeners = load_listeners(cfg.get("listeners"))
    from ..separator import Separator

    separator = Separator.from_checkpoint(str(checkpoint), device=cfg.get("device", "cpu"))
    tracks = load_split(cfg.data, cfg.split)
    log.info(
        "Cadenza HAAQI of %s: %d %s songs x %d listeners",
        checkpoint,
        len(tracks),
        cfg.split,
        len(listeners),
    )
    # the output policy (xslicq.outputs): one run at a time in `out`, nothing it did not
    # write replaced, its own earlier results only with force=true
    with results(
        Path(str(cfg.out)),
        "cadenza",
        ["scores.csv", "scores.partial.csv", "summary.json", "summary.md", "remix"],
        bool(cfg.get("force", False)),
        [checkpoint, cfg.data.get("root")],
        source={"checkpoint": str(checkpoint.resolve()), "split": str(cfg.split)},
    ):
        return evaluate_cadenza(
            separator.separate,
            tracks,
            listeners,
            cfg.out,
            workers=workers,
            compressor=flags["compressor"],
            reference=reference,
            soft=flags["soft_clip"],
            seconds=seconds,
            save_remix=flags["save_remix"],
            targets=list(cfg.targets) if cfg.get("targets") else None,
        )
