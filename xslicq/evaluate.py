"""Evaluate a separator on a data set: ``python -m xslicq.evaluate checkpoint=PATH [overrides]``.

    python -m xslicq.evaluate checkpoint=model.ckpt                          # synthetic test split
    python -m xslicq.evaluate checkpoint=model.ckpt data=musdb data.root=/path/MUSDB18-HQ
    python -m xslicq.evaluate checkpoint=model.ckpt metric=sdr workers=0 out=DIR

Data flow, one line per stage (``J`` targets, ``C`` channels, ``N`` samples)::

    track mixture (C, N)            -> separate_fn, in this process    -> {target: (C, N)}
    estimates + references (J, C, N) -> score_track, in worker processes -> scores per 1 s frame
                                       (museval also writes <out>/<subset>/<track>.json)
    scores per frame -> median over frames per track -> median over tracks per target
                     -> mean of the targets -> summary.md, summary.csv (and tracks.csv)

Metrics (``metric=``):

* ``museval``: BSSEval v4 as in SiSEC 2018 (:func:`museval.evaluate`: time-invariant
  512-tap multichannel distortion filters, metrics in 1 s windows with 1 s hops): SDR,
  SIR, SAR and ISR. The per-track JSON files have museval's own format
  (:class:`museval.TrackStore`), so ``museval.EvalStore().add_eval_dir(out)`` and the
  SiSEC aggregation tools read them. About 25 s per 30 s 4-source track on one core.
* ``sdr``: museval's SDR computed directly, in milliseconds. In BSSEval v4 (museval's
  default ``mode="v4"``, image criteria) the four distortion terms add up to
  ``estimate - reference``, so its SDR is exactly ``10 log10(|s|^2 / |s_hat - s|^2)``
  per frame, summed over channels; ``sdr`` computes that with museval's framing and
  silence rules and equals museval's SDR to float precision (tested). No SIR, SAR or ISR.
  This is the metric for loops that score many estimates (the transform search).
* ``fast``: SDR only, from ``fast_bss_eval`` (``sdr_loss`` without permutation, 512-tap
  filter, float64) on the same 1 s frames, median over frames. Each channel gets its own
  filter and the channels' target and distortion energies are summed before the ratio,
  as BSSEval v4 sums over channels. About 9x faster than museval (2.7 s per 30 s
  4-source track); values above ~100 dB are capped there by the diagonal loading.

How ``fast`` relates to museval: museval's v4 SDR is the plain ratio above (the filters
only shape SIR, SAR and ISR). fast_bss_eval computes the *sources*
SDR, which lets a 512-tap filter of the reference explain part of the error; it reads
higher than museval when the error is correlated with the reference within a frame
(a rescaled or filtered estimate, or tonal interference), by ~0.05 dB for white noise
and a few tenths of a dB for music-like interference. Use ``sdr`` (or museval) for numbers to
report.

Frames follow museval: trailing samples that do not fill a window are dropped (a signal
shorter than one window is one frame), and a frame in which any reference or any
estimate is digital silence (all zeros) is not scored for any target (NaN). A target
whose reference is silent in the whole track is not scored (NaN) and does not enter the
others' evaluation; an estimate that is all zeros gets a -200 dBFS dither (museval cannot
evaluate it otherwise), so that museval scores it about 0 dB SDR (fast, being blind to the
estimate's scale, about -19 dB). Infinite values are stored as NaN, as museval does.
Medians skip NaN.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import importlib
import logging
import math
import multiprocessing
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from .data import SOURCES
from .data.tracks import DatasetError, Track, find_tracks, read

log = logging.getLogger(__name__)

__all__ = ["METRICS", "EvaluationError", "check_metric", "check_workers", "evaluate",
           "fast_frames", "load_split", "museval_frames", "sdr_frames", "run", "score_arrays", "score_track",
           "score_tracks", "summarize", "summary_markdown", "write_summary"]

METRICS: dict[str, tuple[str, ...]] = {
    "museval": ("SDR", "SIR", "SAR", "ISR"),
    "sdr": ("SDR",),
    "fast": ("SDR",),
}
"""Metric name -> the scores it gives per target (dB)."""

WINDOW_SECONDS = 1.0
FILTER_LENGTH = 512
DITHER = 1e-10                  # -200 dBFS: amplitude of the dither of an all-zero estimate
FAST_CHUNK_FRAMES = 16          # frames per fast_bss_eval call (bounds its memory)
LOAD_DIAG = 1e-10               # fast: diagonal loading of the normalised filter equations


class EvaluationError(ValueError):
    """An evaluation cannot run as asked; the message names the value or path."""


# ----------------------------------------------------------------------------- metrics
def check_metric(metric: str) -> None:
    """Raise a clear error for an unknown metric or a missing package it needs."""
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    _import_metric(metric)


def _import_metric(metric: str):
    if metric == "sdr":
        return np                                   # plain NumPy
    package, hint = {"museval": ("museval", "museval"),
                     "fast": ("fast_bss_eval", "fast-bss-eval")}[metric]
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise EvaluationError(
            f"metric={metric} needs the {package} package, which is not installed ({err}); "
            f"install it with `pip install -c constraints.txt {hint}`") from err


def _frame_geometry(samples: int, sample_rate: float, window_seconds: float) -> tuple[int, int]:
    """``(frames, frame_length)`` of museval's framing with hop = window."""
    win = int(window_seconds * sample_rate)
    if win < 1:
        raise EvaluationError(f"window of {window_seconds} s at {sample_rate} Hz is shorter "
                              "than one sample")
    if win < samples:
        return samples // win, win
    return 1, samples


def _silent(x: np.ndarray) -> np.ndarray:
    """museval's silence test over the last two axes (channels, samples): the channel sum
    is zero at every sample."""
    return np.all(x.sum(axis=-2) == 0, axis=-1)


def museval_frames(refs: np.ndarray, ests: np.ndarray, sample_rate: float,
                   window_seconds: float = WINDOW_SECONDS) -> dict[str, np.ndarray]:
    """BSSEval v4 scores per frame with museval.

    Args:
        refs, ests: (targets, channels, samples) float arrays, no target silent throughout.
        sample_rate: Hz.
    Returns:
        ``{"SDR", "SIR", "SAR", "ISR"}`` -> (targets, frames) float64 dB; NaN for frames
        museval does not score (silence) and for infinite values (as museval stores them).
    """
    museval = _import_metric("museval")
    win = int(window_seconds * sample_rate)
    sdr, isr, sir, sar = museval.evaluate(np.moveaxis(refs, 1, 2), np.moveaxis(ests, 1, 2),
                                          win=win, hop=win, mode="v4")
    out = {"SDR": sdr, "SIR": sir, "SAR": sar, "ISR": isr}
    return {k: np.where(np.isfinite(v), v, np.nan).astype(np.float64) for k, v in out.items()}


def sdr_frames(refs: np.ndarray, ests: np.ndarray, sample_rate: float,
               window_seconds: float = WINDOW_SECONDS) -> dict[str, np.ndarray]:
    """museval's BSSEval v4 SDR per frame, computed directly (see the module docstring).

    Args:
        refs, ests: (targets, channels, samples) float arrays.
        sample_rate: Hz.
    Returns:
        ``{"SDR": (targets, frames)}`` float64 dB; NaN where museval gives NaN: frames in
        which any reference or any estimate is silent, and infinite values.
    """
    refs = np.asarray(refs, dtype=np.float64)
    ests = np.asarray(ests, dtype=np.float64)
    J, C, N = refs.shape
    F, L = _frame_geometry(N, sample_rate, window_seconds)
    r = refs[..., :F * L].reshape(J, C, F, L)
    e = ests[..., :F * L].reshape(J, C, F, L)
    target = np.square(r).sum(axis=(1, 3))                               # (J, F)
    error = np.square(e - r).sum(axis=(1, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        sdr = 10.0 * np.log10(target / error)
    skip = _silent(r.transpose(2, 0, 1, 3)).any(-1) | _silent(e.transpose(2, 0, 1, 3)).any(-1)
    sdr[:, skip] = np.nan
    sdr[~np.isfinite(sdr)] = np.nan
    return {"SDR": sdr}


def fast_frames(refs: np.ndarray, ests: np.ndarray, sample_rate: float,
                window_seconds: float = WINDOW_SECONDS,
                filter_length: int = FILTER_LENGTH) -> dict[str, np.ndarray]:
    """bss_eval sources SDR per frame with fast_bss_eval (see the module docstring).

    Only the frames museval scores are computed. A channel that is silent in the
    reference or the estimate of a frame gives no target energy (its estimate energy all
    counts as distortion). The filter equations get a ``LOAD_DIAG`` diagonal loading (of
    the normalised auto-correlation; museval itself adds machine epsilon) so that tonal
    references with singular correlation matrices are scored instead of failing.

    Runs torch with one thread: with more, its batched ``linalg.solve`` (MKL) fails with
    "Pivots given to lu_solve must all be greater or equal to 1"; the caller's thread count
    is restored afterwards.

    Args:
        refs, ests: (targets, channels, samples) float arrays.
        sample_rate: Hz.
    Returns:
        ``{"SDR": (targets, frames)}`` float64 dB, NaN where museval would give NaN.
    """
    fbe = _import_metric("fast")
    import torch

    refs = np.asarray(refs, dtype=np.float64)
    ests = np.asarray(ests, dtype=np.float64)
    J, C, N = refs.shape
    F, L = _frame_geometry(N, sample_rate, window_seconds)

    def framed(x):                                     # (J, C, F*L) -> (F, C, J, L)
        return x[..., :F * L].reshape(J, C, F, L).transpose(2, 1, 0, 3)

    r, e = framed(refs), framed(ests)
    skip = _silent(r.transpose(0, 2, 1, 3)).any(-1) | _silent(e.transpose(0, 2, 1, 3)).any(-1)
    scored = np.flatnonzero(~skip)
    sdr = np.full((F, J), np.nan)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for i0 in range(0, len(scored), FAST_CHUNK_FRAMES):
                idx = scored[i0:i0 + FAST_CHUNK_FRAMES]
                rc, ec = r[idx], e[idx]                                  # (f, C, J, L)
                energy = np.square(ec).sum(-1)                           # (f, C, J)
                dead = (np.square(rc).sum(-1) == 0) | (energy == 0)      # silent channel
                if dead.any():                           # any stand-in; its result is unused
                    rc, ec = rc.copy(), ec.copy()
                    rc[dead] = ec[dead] = np.sin(np.arange(L) * 0.1 + 0.3) + 1e-3 * np.cos(
                        np.arange(L) * 1.7)
                neg = fbe.sdr_loss(torch.from_numpy(ec), torch.from_numpy(rc),
                                   filter_length=min(filter_length, L), pairwise=False,
                                   load_diag=LOAD_DIAG)
                sdr_c = -neg.numpy()                                     # (f, C, J)
                with np.errstate(over="ignore"):
                    # sdr_c = 10 log10(T / D) with T + D = energy (an orthogonal split)
                    target = energy / (1.0 + 10.0 ** (-sdr_c / 10.0))
                    distortion = energy / (1.0 + 10.0 ** (sdr_c / 10.0))
                bad = dead | np.isnan(sdr_c)
                target = np.where(bad, 0.0, target)
                distortion = np.where(bad, energy, distortion)
                with np.errstate(divide="ignore", invalid="ignore"):
                    sdr[idx] = 10.0 * np.log10(target.sum(1) / distortion.sum(1))
    finally:
        torch.set_num_threads(threads)
    sdr[~np.isfinite(sdr)] = np.nan
    return {"SDR": sdr.T}


_FRAME_FUNCTIONS: dict[str, Callable] = {"museval": museval_frames, "sdr": sdr_frames,
                                          "fast": fast_frames}


# ----------------------------------------------------------------------- one track
def _prepare(track_name: str, refs: np.ndarray, ests: np.ndarray, targets: Sequence[str]):
    """float64 copies with estimates cut or zero-padded to the references' length (as museval
    does); drops targets whose reference is silent; dithers all-zero estimates."""
    refs = np.asarray(refs, dtype=np.float64)
    ests = np.asarray(ests, dtype=np.float64)
    ests = _fit_length(ests, refs.shape[-1])
    keep = ~_silent(refs)
    if not keep.all():
        log.info("track %s: reference of %s is silent; not scored", track_name,
                 [t for t, k in zip(targets, keep) if not k])
    refs, ests = refs[keep], ests[keep]
    zero = _silent(ests)
    if zero.any():
        kept = [t for t, k in zip(targets, keep) if k]
        warnings.warn(f"track {track_name}: estimate of {[t for t, z in zip(kept, zero) if z]} "
                      f"is all zeros; scored with a {DITHER:g} dither", stacklevel=3)
        rng = np.random.default_rng(0)
        ests[zero] = DITHER * rng.standard_normal(ests[zero].shape)
    return refs, ests, keep


def score_arrays(refs: np.ndarray, ests: np.ndarray, sample_rate: float, metric: str,
                 targets: Sequence[str], track_name: str = "track"):
    """Framewise scores of one track given as arrays.

    Args:
        refs, ests: (targets, channels, samples).
        targets: names of the targets, in that order.
    Returns:
        ``{target: {score: (frames,) float64}}``; a target with a silent reference gets
        all-NaN frames.
    """
    if refs.shape[:2] != ests.shape[:2] or refs.ndim != 3:
        raise EvaluationError(f"track {track_name}: references {refs.shape} and estimates "
                              f"{ests.shape} must both be (targets, channels, samples)")
    r, e, keep = _prepare(track_name, refs, ests, targets)
    names = METRICS[metric]
    frames, _ = _frame_geometry(refs.shape[-1], sample_rate, WINDOW_SECONDS)
    out = {t: {m: np.full(frames, np.nan) for m in names} for t in targets}
    if keep.any():
        scores = _FRAME_FUNCTIONS[metric](r, e, sample_rate)
        for j, target in enumerate(t for t, k in zip(targets, keep) if k):
            for m in names:
                out[target][m] = scores[m][j]
    return out


def _write_museval_json(path: Path, track_name: str, frames: Mapping[str, Mapping]) -> None:
    import museval
    store = museval.TrackStore(track_name=track_name, win=WINDOW_SECONDS, hop=WINDOW_SECONDS)
    for target, values in frames.items():
        if np.all(np.isnan(values["SDR"])):
            continue                      # no frame scored (a silent reference): not stored
        store.add_target(target_name=target,
                         values={m: [float(v) for v in values[m]] for m in METRICS["museval"]})
    store.validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(store.json)
    os.replace(tmp, path)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis to ``n`` samples (as museval does)."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def _median(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmedian(values)) if np.any(~np.isnan(values)) else math.nan


def score_track(track: Track, estimates: Mapping[str, np.ndarray], metric: str,
                json_dir: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Score one track's estimates against its reference stems (runs in a worker process).

    Args:
        track: the track (its references are read from disk here).
        estimates: ``{target: (channels, samples)}``; every key must be a stem of the track.
        metric: ``museval`` or ``fast``.
        json_dir: museval only: write museval's JSON to ``json_dir/<track>.json``.
    Returns:
        ``{target: {score: median over frames}}`` in dB (NaN where nothing was scored).
    """
    targets = list(estimates)
    refs = np.stack([read(track, t) for t in targets])
    n = refs.shape[-1]
    ests = np.stack([_fit_length(np.asarray(estimates[t], np.float32), n) for t in targets])
    frames = score_arrays(refs, ests, track.sample_rate, metric, targets, track.name)
    if metric == "museval" and json_dir is not None:
        _write_museval_json(Path(json_dir) / f"{track.name}.json", track.name, frames)
    return {t: {m: _median(v) for m, v in frames[t].items()} for t in targets}


# -------------------------------------------------------------------- many tracks
@contextlib.contextmanager
def _worker_threads(workers: int):
    """Give each spawned worker its share of the cores (BLAS / OpenMP thread counts)."""
    share = str(max(1, (os.cpu_count() or 1) // max(workers, 1)))
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: share for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_in_processes(worker: Callable, jobs: Iterable[tuple], workers: int,
                     collect: Callable, failed: Callable) -> None:
    """Run ``worker(*args)`` for every ``(key, args)`` of ``jobs`` in ``workers`` spawned
    processes, consuming ``jobs`` lazily with at most two jobs per worker queued ahead, and
    call ``collect(key, result)`` in completion order. A job that raises stops the run with
    the exception ``failed(key, err)`` (chained to ``err``); queued jobs are dropped."""
    context = multiprocessing.get_context("spawn")      # safe after torch started threads
    with _worker_threads(workers), concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context) as pool:
        pending: dict = {}

        def drain(until: int):
            while len(pending) > until:
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    key = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as err:
                        raise failed(key, err) from err
                    collect(key, result)

        try:
            for key, args in jobs:
                pending[pool.submit(worker, *args)] = key
                drain(2 * workers)
            drain(0)
        except BaseException:
            # drop the queued jobs; the pool still waits for the ones running
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _json_dir(json_root, group: str, track: Track) -> Path | None:
    if json_root is None:
        return None
    root = Path(json_root) / group if group else Path(json_root)
    return root / track.folder.parent.name          # museval's "subset": test or train


def score_tracks(jobs: Iterable[tuple[str, Track, Mapping[str, np.ndarray]]], total: int,
                 metric: str, workers: int = 2, json_root: str | Path | None = None,
                 desc: str = "scoring") -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Score ``(group, track, estimates)`` jobs, in ``workers`` processes (0: this process).

    ``jobs`` is consumed lazily in this process (that is where separation runs), at most
    two jobs per worker ahead of the scoring. A progress bar counts scored jobs.

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
                collect(group, track.name,
                        score_track(track, est, metric, _json_dir(json_root, group, track)))
            return results
        # this module by its import name, so that workers can unpickle the function even
        # when it runs as __main__ (python -m xslicq.evaluate)
        worker = importlib.import_module("xslicq.evaluate").score_track

        def failed(key, err):
            return EvaluationError(f"scoring track {key[1]} failed: {type(err).__name__}: {err}")

        run_in_processes(worker, (((group, track.name),
                                   (track, est, metric, _json_dir(json_root, group, track)))
                                  for group, track, est in jobs),
                         workers, lambda key, scores: collect(*key, scores), failed)
        return results
    finally:
        bar.close()


def summarize(per_track: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str,
              targets: Sequence[str]) -> dict:
    """Median over tracks per target and the mean of the targets.

    Args:
        per_track: ``{track: {target: {score: median over frames}}}``.
    Returns:
        ``{"metric", "scores", "targets", "tracks", "per_target": {target: {score: dB}},
        "mean": {score: dB}, "per_track": per_track}``; a target never scored is NaN and
        left out of the mean.
    """
    names = list(METRICS[metric])
    tracks = sorted(per_track)
    per_target = {}
    for t in targets:
        per_target[t] = {m: _median([per_track[k].get(t, {}).get(m, math.nan) for k in tracks])
                         for m in names}
    mean = {}
    for m in names:
        vals = [per_target[t][m] for t in targets if not math.isnan(per_target[t][m])]
        mean[m] = float(np.mean(vals)) if vals else math.nan
    return {"metric": metric, "scores": names, "targets": list(targets), "tracks": tracks,
            "per_target": per_target, "mean": mean,
            "per_track": {k: {t: dict(v) for t, v in per_track[k].items()} for k in tracks}}


METRIC_TITLES = {"museval": "museval BSSEval v4", "sdr": "BSSEval v4 SDR (museval's, computed directly)",
                 "fast": "fast_bss_eval SDR (quick look)"}


def _fmt(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}"


def summary_markdown(summary: dict, title: str | None = None) -> str:
    """A Markdown table: one row per target plus the mean, one column per score."""
    names = summary["scores"]
    lines = [f"# {title or 'Evaluation'}", "",
             f"Metric: {METRIC_TITLES[summary['metric']]}, {len(summary['tracks'])} tracks. "
             "Median over 1 s frames per track, then median over tracks; `mean` is the mean "
             "of the targets. All values in dB.", "",
             "| target | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for t in summary["targets"]:
        lines.append(f"| {t} | " + " | ".join(_fmt(summary["per_target"][t][m]) for m in names)
                     + " |")
    lines.append("| **mean** | " + " | ".join(f"**{_fmt(summary['mean'][m])}**" for m in names)
                 + " |")
    return "\n".join(lines) + "\n"


def write_summary(summary: dict, out_dir: str | Path, title: str | None = None) -> Path:
    """Write ``summary.md``, ``summary.csv`` (targets and mean) and ``tracks.csv`` (per-track
    medians) into ``out_dir``; returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = summary["scores"]
    md = out_dir / "summary.md"
    md.write_text(summary_markdown(summary, title))
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target"] + names)
        for t in summary["targets"]:
            w.writerow([t] + [f"{summary['per_target'][t][m]:.4f}" for m in names])
        w.writerow(["mean"] + [f"{summary['mean'][m]:.4f}" for m in names])
    with open(out_dir / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["track", "target"] + names)
        for k in summary["tracks"]:
            for t in summary["targets"]:
                row = summary["per_track"][k].get(t, {})
                w.writerow([k, t] + [f"{row.get(m, math.nan):.4f}" for m in names])
    return md


# ---------------------------------------------------------------------- evaluate
def _check_estimates(estimates, targets: Sequence[str], track: Track, shape) -> dict:
    if not isinstance(estimates, Mapping):
        raise EvaluationError(f"track {track.name}: the separator returned "
                              f"{type(estimates).__name__}, expected a dict of stems")
    out = {}
    for t in targets:
        if t not in estimates:
            raise EvaluationError(f"track {track.name}: the separator returned no estimate for "
                                  f"target {t!r} (got {sorted(estimates)})")
        x = estimates[t]
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != shape[0]:
            raise EvaluationError(f"track {track.name}: estimate of {t!r} has shape {x.shape}, "
                                  f"expected (channels={shape[0]}, samples)")
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


def evaluate(separate_fn: Callable, tracks: Sequence[Track], out_dir: str | Path,
             metric: str = "museval", workers: int = 2,
             targets: Sequence[str] | None = None) -> dict:
    """Separate every track and score it; write the tables; return the summary.

    Args:
        separate_fn: ``separate_fn(audio (channels, samples) float32, sample_rate)`` ->
            ``{target: (channels, samples)}`` (numpy or torch); runs in this process.
        tracks: :class:`~xslicq.data.tracks.Track` objects (e.g. from ``find_tracks``).
        out_dir: receives ``summary.md``, ``summary.csv``, ``tracks.csv`` and, for
            museval, ``<subset>/<track>.json`` in museval's format.
        metric: ``museval`` or ``fast``.
        workers: scoring processes (0: score in this process).
        targets: targets to score; default the separator's ``targets`` attribute (or that
            of the object a bound ``separate`` method belongs to), else every estimated
            stem that the track has.
    Returns:
        the summary dict of :func:`summarize`.
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
                keys = [s for s in SOURCES if s in estimates] + \
                       [k for k in estimates if k not in SOURCES]
                resolved.extend(k for k in keys if k in track.paths and k != "mixture")
                if not resolved:
                    raise EvaluationError(f"track {track.name}: the separator's stems "
                                          f"{sorted(estimates)} match no stem of the track")
            missing = [t for t in resolved if t not in track.paths]
            if missing:
                raise EvaluationError(f"track {track.name} has no reference for targets "
                                      f"{missing} (stems: {sorted(track.paths)})")
            yield "", track, _check_estimates(estimates, resolved, track, mixture.shape)

    results = score_tracks(jobs(), len(tracks), metric, workers, json_root=out_dir,
                           desc=f"evaluate ({metric})")
    summary = summarize(results.get("", {}), metric, resolved)
    write_summary(summary, out_dir, title="Separation scores")
    return summary


# ----------------------------------------------------------------------- the CLI
def load_split(data: DictConfig, split: str) -> list[Track]:
    """The tracks of ``split`` for a ``data`` config group (generates the synthetic set if
    its config asks for one and it is not there yet)."""
    if OmegaConf.is_missing(data, "root"):
        raise DatasetError("data.root is not set: pass data.root=/path/to/MUSDB18-HQ "
                           "(or use data=synthetic)")
    root = Path(str(data.root)).expanduser()
    sample_rate = int(data.get("sample_rate", 44100))
    if data.get("synthetic"):
        from .data.synthetic import generate_dataset
        generate_dataset(root, sample_rate=sample_rate,
                         **OmegaConf.to_container(data.synthetic, resolve=True))
    return find_tracks(root, split, sample_rate=sample_rate)


def check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise EvaluationError(f"workers must be an integer >= 0 (0: score in this process), "
                              f"got {workers!r}")
    return workers


def run(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` on ``cfg.split`` of ``cfg.data``; returns the summary."""
    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.checkpoint in (None, ""):
        raise EvaluationError("no checkpoint given: pass checkpoint=/path/to/model.ckpt")
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    if not checkpoint.is_file():
        raise EvaluationError(f"checkpoint {checkpoint} does not exist (or is not a file)")
    check_metric(cfg.metric)
    workers = check_workers(cfg.workers)
    tracks = load_split(cfg.data, cfg.split)
    from .separator import Separator
    separator = Separator.from_checkpoint(str(checkpoint), device=cfg.get("device", "cpu"))
    targets = list(cfg.targets) if cfg.get("targets") else list(separator.targets)
    log.info("evaluating %s on %d %s tracks with %s", checkpoint, len(tracks), cfg.split,
             cfg.metric)
    return evaluate(separator.separate, tracks, cfg.out, metric=cfg.metric, workers=workers,
                    targets=targets)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    """Returns the mean SDR over the targets."""
    try:
        summary = run(cfg)
    except (EvaluationError, DatasetError) as err:
        raise SystemExit(f"xslicq.evaluate: error: {err}") from None
    print(summary_markdown(summary, "Separation scores"))
    print(f"written to {Path(cfg.out).resolve()}")
    return summary["mean"]["SDR"]


if __name__ == "__main__":
    main()
