"""Oracle separation scores of a transform: ``python -m xslicq.oracle [overrides]``.

    python -m xslicq.oracle                                   # cqlog sliCQT, synthetic test split
    python -m xslicq.oracle transform=stft data=musdb data.root=/path/MUSDB18-HQ
    python -m xslicq.oracle transform=bark metric=museval oracle=[mixphase] workers=2
    python -m xslicq.oracle -m hparams_search=transform_oracle     # Optuna transform search

An oracle separates with the true sources in hand, so its score is the ceiling of what a
masking separator can reach with that transform. Data flow per track, one line per stage
(``K`` sources of the track, ``J`` targets, ``C`` channels, ``N`` samples)::

    mixture (1, C, N), sources (K) -> transform.forward -> X, S_k  (lists of complex blocks)
    irm:       Y_j = |S_j| / sum_k |S_k| * X         (ideal ratio mask on the mixture)
    mixphase:  Y_j = |S_j| * exp(i angle(X))         (true magnitude, mixture phase)
    Y_j -> transform.inverse -> estimates (C, N) -> the scoring of :mod:`xslicq.evaluation`

Any transform with ``forward``/``inverse`` on torch tensors works: every sliCQT scale and
the STFT. With ``search`` set (the transform search, :mod:`xslicq.search`) the transform
is built from that point of the search space instead of the ``transform`` config, and
with ``objectives`` set the command returns the values a multi-objective sweep optimises
(mean oracle SDRs and ``coefs_per_second``) with the run's details for the trial's record.
The mixture is the track's ``mixture.wav`` (the sum of the stems in MUSDB18-HQ and the
synthetic set); the masks use all the track's sources, also those that are not targets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from .cli import run_command
from .data import SOURCES
from .data.tracks import Track, read
from .errors import EvaluationConfigError, XslicqError
from .evaluation import (
    EvaluationError,
    check_metric,
    check_workers,
    load_split,
    score_tracks,
    summarize,
    write_summary,
)
from .outputs import results
from .search import SearchPoint
from .search import transform_config as point_config

log = logging.getLogger(__name__)

__all__ = [
    "ORACLES",
    "OBJECTIVES",
    "oracle_estimates",
    "oracle_scores",
    "run_oracles",
    "trial_result",
]

ORACLES = {
    "irm": "ideal ratio mask |S_j| / sum_k |S_k| on the mixture",
    "mixphase": "true magnitude |S_j| with the mixture's phase",
}


OBJECTIVES = tuple(ORACLES) + ("coefs_per_second",)
"""What a sweep can optimise: the mean SDR of an oracle, or the transform's size."""


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in kinds if k not in ORACLES]
    if unknown or not kinds:
        raise EvaluationConfigError(
            f"unknown oracle {unknown or kinds}; choose from {', '.join(ORACLES)}"
        )
    return kinds


def _check_transform(transform, sample_rate: int) -> None:
    if getattr(transform, "backend", "torch") != "torch":
        raise EvaluationError(
            f"the oracle runs the transform on torch tensors; got "
            f"backend={transform.backend!r}: set transform.backend=torch"
        )
    rate = getattr(transform, "sample_rate", sample_rate)
    if rate != sample_rate:
        raise EvaluationError(
            f"transform.sample_rate={rate} differs from the tracks' {sample_rate} Hz"
        )


@torch.no_grad()
def oracle_estimates(
    transform,
    mixture: np.ndarray,
    sources: dict[str, np.ndarray],
    kinds: Sequence[str],
    targets: Sequence[str],
) -> dict[str, dict]:
    """Oracle estimates of one track.

    Args:
        transform: a torch transform (``forward(x (1, C, N)) -> [complex blocks]``, ``inverse``).
        mixture: (C, N) float array.
        sources: ``{name: (C, N)}``, all the sources of the track (the masks' denominator).
        kinds: oracles to compute (``irm``, ``mixphase``).
        targets: the sources to estimate (keys of ``sources``).
    Returns:
        ``{kind: {target: (C, N) float32 numpy}}``.
    """
    kinds = _check_kinds(kinds)
    missing = [t for t in targets if t not in sources]
    if missing:
        raise EvaluationError(f"targets {missing} are not among the sources {sorted(sources)}")
    n = mixture.shape[-1]
    X = transform.forward(torch.as_tensor(np.asarray(mixture, np.float32))[None])
    mags = {
        k: [b.abs() for b in transform.forward(torch.as_tensor(np.asarray(s, np.float32))[None])]
        for k, s in sources.items()
    }
    out: dict[str, dict] = {k: {} for k in kinds}
    if "irm" in kinds:
        total = [sum(m[i] for m in mags.values()) for i in range(len(X))]
        tiny = torch.finfo(total[0].dtype).tiny
        for t in targets:  # where total is 0, |S_j| and X are 0 too
            Y = [x * (m / s.clamp_min(tiny)) for x, m, s in zip(X, mags[t], total)]
            out["irm"][t] = transform.inverse(Y, length=n)[0].numpy().astype(np.float32)
    if "mixphase" in kinds:
        phase = [torch.angle(x) for x in X]
        for t in targets:
            Y = [torch.polar(m, p) for m, p in zip(mags[t], phase)]
            out["mixphase"][t] = transform.inverse(Y, length=n)[0].numpy().astype(np.float32)
    return out


def run_oracles(
    transform,
    tracks: Sequence[Track],
    kinds: Sequence[str] = tuple(ORACLES),
    metric: str = "fast_bss_eval",
    workers: int = 2,
    targets: Sequence[str] = SOURCES,
    out_dir: str | Path | None = None,
    name: str | None = None,
) -> dict[str, dict]:
    """Oracle scores of ``transform`` on ``tracks`` for several oracles at once.

    The transform runs once per track in this process; scoring runs in ``workers``
    processes (0: here). With ``out_dir``, every oracle gets ``out_dir/<kind>/summary.md``,
    ``summary.csv``, ``tracks.csv`` (and museval's JSON files), and ``out_dir/summary.md``
    holds one SDR table of all the oracles.

    Returns:
        ``{kind: summary}`` (see :func:`xslicq.evaluation.summarize`).
    """
    kinds = _check_kinds(kinds)
    check_metric(metric)
    check_workers(workers)
    tracks = list(tracks)
    if not tracks:
        raise EvaluationError("no tracks to score")
    targets = list(targets)
    name = name or type(transform).__name__

    def jobs() -> Iterator:
        for track in tracks:
            _check_transform(transform, track.sample_rate)
            mixture = read(track, "mixture")
            sources = {s: read(track, s) for s in SOURCES if s in track.paths}
            estimates = oracle_estimates(transform, mixture, sources, kinds, targets)
            for kind in kinds:
                yield kind, track, estimates[kind]

    results = score_tracks(
        jobs(),
        len(tracks) * len(kinds),
        metric,
        workers,
        json_root=out_dir,
        desc=f"oracle {name} ({metric})",
    )
    summaries = {k: summarize(results.get(k, {}), metric, targets) for k in kinds}
    if out_dir is not None:
        out_dir = Path(out_dir)
        for kind, summary in summaries.items():
            write_summary(summary, out_dir / kind, title=f"Oracle {kind} ({name})")
        (out_dir / "summary.md").write_text(oracle_markdown(summaries, name))
    return summaries


def oracle_scores(
    transform,
    tracks: Sequence[Track],
    kind: str = "irm",
    metric: str = "fast_bss_eval",
    workers: int = 2,
    targets: Sequence[str] = SOURCES,
    out_dir: str | Path | None = None,
) -> dict:
    """Scores of one oracle (``irm`` or ``mixphase``) of ``transform``; the summary dict."""
    if not isinstance(kind, str):
        raise EvaluationError(f"kind must be one oracle name ({', '.join(ORACLES)}), got {kind!r}")
    return run_oracles(transform, tracks, [kind], metric, workers, targets, out_dir)[kind]


def _fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.2f}"


def oracle_markdown(summaries: dict[str, dict], name: str) -> str:
    """One SDR table: a row per oracle, a column per target and the mean."""
    first = next(iter(summaries.values()))
    targets = first["targets"]
    lines = [
        f"# Oracle SDR: {name}",
        "",
        f"Metric: {first['metric']}, {len(first['tracks'])} tracks; median over 1 s "
        "frames, then over tracks; `mean` is the mean of the targets. dB.",
        "",
        "| oracle | " + " | ".join(targets) + " | mean |",
        "|---|" + "---:|" * (len(targets) + 1),
    ]
    for kind, s in summaries.items():
        lines.append(
            f"| {kind} | "
            + " | ".join(_fmt(s["per_target"][t]["SDR"]) for t in targets)
            + f" | **{_fmt(s['mean']['SDR'])}** |"
        )
    return "\n".join(lines) + "\n"


def describe_transform(cfg_transform: DictConfig) -> str:
    """A short name for a transform config, e.g. ``SliCQT(cqlog, 262 bins)``."""
    target = str(cfg_transform.get("_target_", "transform")).rsplit(".", 1)[-1]
    if "scale" in cfg_transform:
        return f"{target}({cfg_transform.scale}, {cfg_transform.bins} bins)"
    if "n_fft" in cfg_transform:
        return f"{target}({cfg_transform.n_fft}/{cfg_transform.hop_length})"
    return target


def transform_to_score(cfg: DictConfig) -> DictConfig:
    """The transform to score: ``cfg.transform``, or the point ``cfg.search`` of the
    transform search (slices at most one training segment, ``data.seq_dur``, long)."""
    if not cfg.get("search"):
        return cfg.transform
    rate = int(cfg.data.get("sample_rate", 44100))
    point = SearchPoint(**OmegaConf.to_container(cfg.search, resolve=True))
    return OmegaConf.create(point_config(point, rate, int(round(cfg.data.seq_dur * rate))))


def trial_result(
    summaries: dict[str, dict], transform, transform_cfg: DictConfig, objectives
) -> dict:
    """What a sweep trial reports: ``{"values": [one per objective], "attrs": {...}}``;
    the attributes (the built transform, every oracle's SDR per target) are stored with
    the trial."""
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise EvaluationError(f"unknown objectives {unknown}; choose from {', '.join(OBJECTIVES)}")
    missing = [o for o in objectives if o in ORACLES and o not in summaries]
    if missing:
        raise EvaluationError(
            f"objectives {missing} are oracles that were not run (oracle={list(summaries)})"
        )
    cps = float(transform.coefs_per_second)
    values = [
        cps if o == "coefs_per_second" else float(summaries[o]["mean"]["SDR"]) for o in objectives
    ]
    attrs = {
        "transform": OmegaConf.to_container(transform_cfg, resolve=True),
        "coefs_per_second": cps,
        "sdr": {
            kind: {
                "mean": float(s["mean"]["SDR"]),
                **{t: float(v["SDR"]) for t, v in s["per_target"].items()},
            }
            for kind, s in summaries.items()
        },
    }
    return {"values": values, "attrs": attrs}


def run(cfg: DictConfig) -> tuple[dict[str, dict], object, DictConfig]:
    """Score the oracles as configured; returns ``(summaries, transform, transform config)``."""
    kinds = _check_kinds(list(cfg.oracle))
    check_metric(cfg.metric)
    workers = check_workers(cfg.workers)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    transform_cfg = transform_to_score(cfg)
    transform = hydra.utils.instantiate(transform_cfg)
    tracks = load_split(cfg.data, cfg.split)
    targets = list(cfg.targets) if cfg.get("targets") else list(cfg.data.get("targets", SOURCES))
    name = describe_transform(transform_cfg)
    log.info(
        "oracles %s of %s on %d %s tracks (%s)", kinds, name, len(tracks), cfg.split, cfg.metric
    )
    # the output policy (xslicq.outputs): one run at a time in `out`, nothing it did not
    # write replaced, its own earlier results only with force=true
    with results(
        Path(str(cfg.out)),
        "oracle",
        ["summary.md", *kinds],
        bool(cfg.get("force", False)),
        [cfg.data.get("root")],
        source={"transform": name, "split": str(cfg.split)},
    ):
        summaries = run_oracles(
            transform, tracks, kinds, cfg.metric, workers, targets, cfg.out, name
        )
    return summaries, transform, transform_cfg


@hydra.main(version_base="1.3", config_path="conf", config_name="oracle")
def main(cfg: DictConfig):
    """Returns the mean SDR of the first oracle, or with ``objectives`` set (a sweep) the
    :func:`trial_result`. In a sweep, errors are raised for the sweeper to record."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    if sweeping and not any(o.startswith("out=") for o in hydra_cfg.overrides.task):
        # the jobs of a multirun share the default `out`: each writes its own job folder
        with open_dict(cfg):
            cfg.out = hydra_cfg.runtime.output_dir

    def work():
        summaries, transform, transform_cfg = run(cfg)
        result = (
            trial_result(summaries, transform, transform_cfg, list(cfg.objectives))
            if cfg.get("objectives")
            else None
        )
        return summaries, transform_cfg, result

    # in a sweep the trial's error goes to the sweeper, a signal stops the sweep
    status, done = run_command(work, () if sweeping else (XslicqError, OSError))
    if status:
        raise SystemExit(status)
    summaries, transform_cfg, result = done
    print(oracle_markdown(summaries, describe_transform(transform_cfg)))
    print(f"written to {Path(cfg.out).resolve()}")
    if result is not None:
        log.info("objectives %s = %s", list(cfg.objectives), result["values"])
        return result
    return next(iter(summaries.values()))["mean"]["SDR"]


if __name__ == "__main__":
    main()
