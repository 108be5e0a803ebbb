"""Separate the tracks of a data set and score them in worker processes: :func:`evaluate`.

Data flow, one line per stage (``J`` targets, ``C`` channels, ``N`` samples)::

    load_split(data, split)           -> tracks (MUSDB18-HQ layout; the synthetic set is
                                         generated first if its config asks for it)
    track mixture (C, N)              -> separate_fn, in this process   -> {target: (C, N)}
    estimates + references (J, C, N)  -> score_track, in worker processes (score_tracks)
                                         -> scores per 1 s frame (xslicq.evaluation.bsseval)
                                         (museval also writes <out>/<subset>/<track>.json)
    scores per frame -> median over frames per track -> median over tracks per target
                     -> mean of the targets -> summary.md, summary.csv, tracks.csv
                                         (xslicq.evaluation.reports)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..data import SOURCES
from ..data.tracks import DatasetError, Track, find_tracks, read
from .bsseval import EvaluationError, check_metric, fit_length, score_arrays
from .pool import run_in_processes
from .reports import median, summarize, write_museval_json, write_summary

log = logging.getLogger(__name__)

__all__ = ["check_workers", "evaluate", "load_split", "score_track", "score_tracks"]


def check_workers(workers) -> int:
    """``workers`` if it is an integer >= 0 (0: score in this process), else a clear error."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise EvaluationError(
            f"workers must be an integer >= 0 (0: score in this process), got {workers!r}"
        )
    return workers


def load_split(data: DictConfig, split: str) -> list[Track]:
    """The tracks of ``split`` for a ``data`` config group (generates the synthetic set if
    its config asks for one and it is not there yet)."""
    if OmegaConf.is_missing(data, "root"):
        raise DatasetError(
            "data.root is not set: pass data.root=/path/to/MUSDB18-HQ (or use data=synthetic)"
        )
    root = Path(str(data.root)).expanduser()
    sample_rate = int(data.get("sample_rate", 44100))
    if data.get("synthetic"):
        from ..data.synthetic import generate_dataset

        generate_dataset(
            root, sample_rate=sample_rate, **OmegaConf.to_container(data.synthetic, resolve=True)
        )
    return find_tracks(root, split, sample_rate=sample_rate)


# ----------------------------------------------------------------------- one track
def score_track(
    track: Track,
    estimates: Mapping[str, np.ndarray],
    metric: str,
    json_dir: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """Score one track's estimates against its reference stems (runs in a worker process).

    Args:
        track: the track (its references are read from disk here).
        estimates: ``{target: (channels, samples)}``; every key must be a stem of the track.
        metric: a key of :data:`~xslicq.evaluation.bsseval.METRICS`.
        json_dir: museval only: write museval's JSON to ``json_dir/<track>.json``.
    Returns:
        ``{target: {score: median over frames}}`` in dB (NaN where nothing was scored).
    """
    targets = list(estimates)
    refs = np.stack([read(track, t) for t in targets])
    n = refs.shape[-1]
    ests = np.stack([fit_length(np.asarray(estimates[t], np.float32), n) for t in targets])
    frames = score_arrays(refs, ests, track.sample_rate, metric, targets, track.name)
    if metric == "museval" and json_dir is not None:
        write_museval_json(Path(json_dir) / f"{track.name}.json", track.name, frames)
    return {t: {m: median(v) for m, v in frames[t].items()} for t in targets}


# -------------------------------------------------------------------- many tracks
def _json_dir(json_root, group: str, track: Track) -> Path | None:
    if json_root is None:
        return None
    root = Path(json_root) / group if group else Path(json_root)
    return root / track.folder.parent.name  # museval's "subset": test or train


def score_tracks(
    jobs: Iterable[tuple[str, Track, Mapping[str, np.ndarray]]],
    total: int,
    metric: str,
    workers: int = 2,
    json_root: str | Path | None = None,
    desc: str = "scoring",
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Score ``(group, track, estimates)`` jobs, in ``workers`` processes (0: this process).

    ``jobs`` is consumed lazily in this process (that is where separation runs), at most
    two jobs per worker ahead of the scoring. A progress bar counts scored jobs. The
    workers run :func:`score_track`, which they import as
    ``xslicq.evaluation.pipeline.score_track`` (never ``__main__``, so ``python -m`` entry
    points can use this too).

    Returns:
        ``{group: {track name: {target: {score: median over frames}}}}``.
    """
    from tqdm.auto import tqdm

    check_metric(metric)
    check_workers(workers)
    results: dict = {}
    bar = tqdm(total=total, desc=desc, unit="track", dynamic_ncols=True)

    def collect(group, name, scores):
        results.setdefault(group, {})[name] = scores
        bar.set_postfix_str(name[:40])
        bar.update(1)

    try:
        if workers == 0:
            for group, track, est in jobs:
                collect(
                    group,
                    track.name,
                    score_track(track, est, metric, _json_dir(json_root, group, track)),
                )
            return results

        def failed(key, err):
            return EvaluationError(f"scoring track {key[1]} failed: {type(err).__name__}: {err}")

        run_in_processes(
            score_track,
            (
                ((group, track.name), (track, est, metric, _json_dir(json_root, group, track)))
                for group, track, est in jobs
            ),
            workers,
            lambda key, scores: collect(*key, scores),
            failed,
        )
        return results
    finally:
        bar.close()


# ----------------------------------------------------------------------- evaluate
def _check_estimates(estimates, targets: Sequence[str], track: Track, shape) -> dict:
    if not isinstance(estimates, Mapping):
        raise EvaluationError(
            f"track {track.name}: the separator returned "
            f"{type(estimates).__name__}, expected a dict of stems"
        )
    out = {}
    for t in targets:
        if t not in estimates:
            raise EvaluationError(
                f"track {track.name}: the separator returned no estimate for "
                f"target {t!r} (got {sorted(estimates)})"
            )
        x = estimates[t]
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != shape[0]:
            raise EvaluationError(
                f"track {track.name}: estimate of {t!r} has shape {x.shape}, "
                f"expected (channels={shape[0]}, samples)"
            )
        if not np.all(np.isfinite(x)):
            raise EvaluationError(f"track {track.name}: estimate of {t!r} contains NaN or inf")
        out[t] = x
    return out


def _targets_of(separate_fn) -> list[str] | None:
    for owner in (separate_fn, getattr(separate_fn, "__self__", None)):
        names = getattr(owner, "targets", None)
        if names:
            return list(names)
    return None


def evaluate(
    separate_fn: Callable,
    tracks: Sequence[Track],
    out_dir: str | Path,
    metric: str = "museval",
    workers: int = 2,
    targets: Sequence[str] | None = None,
) -> dict:
    """Separate every track and score it; write the tables; return the summary.

    Args:
        separate_fn: ``separate_fn(audio (channels, samples) float32, sample_rate)`` ->
            ``{target: (channels, samples)}`` (numpy or torch); runs in this process.
        tracks: :class:`~xslicq.data.tracks.Track` objects (e.g. from ``find_tracks``).
        out_dir: receives ``summary.md``, ``summary.csv``, ``tracks.csv`` and, for
            museval, ``<subset>/<track>.json`` in museval's format.
        metric: a key of :data:`~xslicq.evaluation.bsseval.METRICS` (``museval``, ``sdr``
            or ``fast_bss_eval``).
        workers: scoring processes (0: score in this process).
        targets: targets to score; default the separator's ``targets`` attribute (or that
            of the object a bound ``separate`` method belongs to), else every estimated
            stem that the track has.
    Returns:
        the summary dict of :func:`~xslicq.evaluation.reports.summarize`.
    """
    check_metric(metric)
    tracks = list(tracks)
    if not tracks:
        raise EvaluationError("no tracks to evaluate")
    chosen = list(targets) if targets else _targets_of(separate_fn)
    resolved: list[str] = list(chosen or [])

    def jobs() -> Iterator:
        for track in tracks:
            mixture = read(track, "mixture")
            estimates = separate_fn(mixture, track.sample_rate)
            if not resolved:
                keys = [s for s in SOURCES if s in estimates] + [
                    k for k in estimates if k not in SOURCES
                ]
                resolved.extend(k for k in keys if k in track.paths and k != "mixture")
                if not resolved:
                    raise EvaluationError(
                        f"track {track.name}: the separator's stems "
                        f"{sorted(estimates)} match no stem of the track"
                    )
            missing = [t for t in resolved if t not in track.paths]
            if missing:
                raise EvaluationError(
                    f"track {track.name} has no reference for targets "
                    f"{missing} (stems: {sorted(track.paths)})"
                )
            yield "", track, _check_estimates(estimates, resolved, track, mixture.shape)

    results = score_tracks(
        jobs(), len(tracks), metric, workers, json_root=out_dir, desc=f"evaluate ({metric})"
    )
    summary = summarize(results.get("", {}), metric, resolved)
    write_summary(summary, out_dir, title="Separation scores")
    return summary
