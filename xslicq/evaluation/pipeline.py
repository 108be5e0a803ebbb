"""Separate the tracks of a data set and score them in worker processes: :func:`evaluate`.

Data flow, one line per stage (``J`` targets, ``C`` channels, ``N`` samples)::

    load_split(data, split)           -> tracks (MUSDB18-HQ layout; the synthetic set is
                                         generated first if its config asks for it)
    track mixture (C, N)              -> separate_fn, in this process   -> {target: (C, N)}
                                      -> check_estimates: the references' channels, rate
                                         and length, else one error (xslicq.evaluation.
                                         estimates; align="crop" | "pad" for other lengths)
    estimates + references (J, C, N)  -> score_track, in worker processes (score_tracks)
                                         -> scores per 1 s frame (xslicq.evaluation.bsseval)
                                         and the frames a silent reference leaves out
                                         (museval also writes <out>/<subset>/<track>.json)
    scores per frame -> median over frames per track -> median over tracks per target
                     -> mean of the targets -> summary.md, summary.csv, tracks.csv,
                        summary.json (xslicq.evaluation.reports), with the skipped frames
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..checks import check_int
from ..data import SOURCES
from ..data.tracks import DatasetError, Track, find_tracks, read
from ..errors import EvaluationConfigError
from .bsseval import EvaluationError, check_metric, score_arrays, skipped_frames
from .estimates import check_align, check_estimates, separator_output
from .pool import run_in_processes
from .reports import summarize, track_scores, write_museval_json, write_summary

log = logging.getLogger(__name__)

__all__ = ["check_workers", "evaluate", "load_split", "score_track", "score_tracks"]


def check_workers(workers) -> int:
    """``workers`` if it is an integer >= 0 (0: score in this process), else a clear error."""
    return check_int(workers, "workers", 0, EvaluationConfigError, " (0: score in this process)")


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
    align: str | None = None,
) -> dict[str, dict[str, float]]:
    """Score one track's estimates against its reference stems (runs in a worker process).

    Args:
        track: the track (its references are read from disk here).
        estimates: ``{target: (channels, samples)}``; every key must be a stem of the track
            and every estimate must have its shape (:func:`~xslicq.evaluation.estimates.
            check_estimates`).
        metric: a key of :data:`~xslicq.evaluation.bsseval.METRICS`.
        json_dir: museval only: write museval's JSON to ``json_dir/<track>.json``.
        align: ``None``, ``"crop"`` or ``"pad"``: how to score estimates of another length
            (:mod:`xslicq.evaluation.estimates`).
    Returns:
        ``{target: {score: median over frames (dB, NaN where nothing was scored),
        "frames": frames of the track, "skipped": frames a silent reference left out}}``
        (:func:`~xslicq.evaluation.reports.track_scores`).
    """
    targets = list(estimates)
    refs = np.stack([read(track, t) for t in targets])
    checked = check_estimates(
        estimates, targets, refs.shape[1:], track.sample_rate, track.name, align
    )
    ests = np.stack([checked[t] for t in targets])
    refs = refs[..., : ests.shape[-1]]  # align="crop" may have cut the estimates
    frames = score_arrays(refs, ests, track.sample_rate, metric, targets, track.name)
    skipped = dict(zip(targets, skipped_frames(refs, track.sample_rate)))
    if metric == "museval" and json_dir is not None:
        write_museval_json(Path(json_dir) / f"{track.name}.json", track.name, frames, skipped)
    return track_scores(frames, skipped)


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
    align: str | None = None,
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Score ``(group, track, estimates)`` jobs, in ``workers`` processes (0: this process).

    ``jobs`` is consumed lazily in this process (that is where separation runs), at most
    two jobs per worker ahead of the scoring. A progress bar counts scored jobs. The
    workers run :func:`score_track`, which they import as
    ``xslicq.evaluation.pipeline.score_track`` (never ``__main__``, so ``python -m`` entry
    points can use this too).

    ``align`` (``None``, ``"crop"`` or ``"pad"``) is passed to :func:`score_track`.

    Returns:
        ``{group: {track name: {target: {score: median over frames, "frames", "skipped"}}}}``.
    """
    from tqdm.auto import tqdm

    check_metric(metric)
    check_workers(workers)
    align = check_align(align)
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
                    score_track(track, est, metric, _json_dir(json_root, group, track), align),
                )
            return results

        def failed(key, err):
            return EvaluationError(f"scoring track {key[1]} failed: {type(err).__name__}: {err}")

        run_in_processes(
            score_track,
            (
                (
                    (group, track.name),
                    (track, est, metric, _json_dir(json_root, group, track), align),
                )
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
    align: str | None = None,
) -> dict:
    """Separate every track and score it; write the tables; return the summary.

    Args:
        separate_fn: ``separate_fn(audio (channels, samples) float32, sample_rate)`` ->
            ``{target: (channels, samples)}`` (numpy or torch) at ``sample_rate``, or
            ``({target: ...}, rate)`` to say the rate the stems are at; runs in this
            process. The estimates must have the track's channels, rate and length
            (:func:`~xslicq.evaluation.estimates.check_estimates`), else an
            :class:`EvaluationError` names the track, the target and both values. Float
            estimates are taken as they are (full scale 1.0; peaks above 100 are refused as
            integer PCM stored as float); integer PCM (int16, int32) is converted to float by
            its full scale (int16 / 32768), not scored as raw integers; other dtypes are
            refused.
        tracks: :class:`~xslicq.data.tracks.Track` objects (e.g. from ``find_tracks``).
        out_dir: receives ``summary.md``, ``summary.csv``, ``tracks.csv``,
            ``summary.json`` (with the frames skipped because a reference is silent, per
            target and per track) and, for museval, ``<subset>/<track>.json`` in museval's
            format.
        metric: a key of :data:`~xslicq.evaluation.bsseval.METRICS` (``museval``, ``sdr``
            or ``fast_bss_eval``).
        workers: scoring processes (0: score in this process).
        targets: targets to score; default the separator's ``targets`` attribute (or that
            of the object a bound ``separate`` method belongs to), else every estimated
            stem that the track has.
        align: how to score estimates of another length than the track: ``None`` (the
            default: an error), ``"crop"`` (score the samples both have) or ``"pad"``
            (zero-pad or cut the estimates; the padding counts as error, never skipped);
            see :mod:`xslicq.evaluation.estimates`.
    Returns:
        the summary dict of :func:`~xslicq.evaluation.reports.summarize`, plus ``align``.
    """
    check_metric(metric)
    align = check_align(align)
    tracks = list(tracks)
    if not tracks:
        raise EvaluationError("no tracks to evaluate")
    chosen = list(targets) if targets else _targets_of(separate_fn)
    resolved: list[str] = list(chosen or [])

    def jobs() -> Iterator:
        for track in tracks:
            mixture = read(track, "mixture")
            output = separate_fn(mixture, track.sample_rate)
            stems, _ = separator_output(output)
            if not resolved and isinstance(stems, Mapping):
                keys = [s for s in SOURCES if s in stems] + [k for k in stems if k not in SOURCES]
                resolved.extend(k for k in keys if k in track.paths and k != "mixture")
                if not resolved:
                    raise EvaluationError(
                        f"track {track.name}: the separator's stems "
                        f"{sorted(stems)} match no stem of the track"
                    )
            missing = [t for t in resolved if t not in track.paths]
            if missing:
                raise EvaluationError(
                    f"track {track.name} has no reference for targets "
                    f"{missing} (stems: {sorted(track.paths)})"
                )
            checked = check_estimates(
                output, resolved, mixture.shape, track.sample_rate, track.name, align
            )
            yield "", track, checked

    results = score_tracks(
        jobs(),
        len(tracks),
        metric,
        workers,
        json_root=out_dir,
        desc=f"evaluate ({metric})",
        align=align,
    )
    summary = summarize(results.get("", {}), metric, resolved)
    summary["align"] = align
    write_summary(summary, out_dir, title="Separation scores")
    return summary
