"""Evaluate a separator on a data set: ``python -m xslicq.evaluate checkpoint=PATH [overrides]``.

    python -m xslicq.evaluate checkpoint=model.ckpt                          # synthetic test split
    python -m xslicq.evaluate checkpoint=model.ckpt data=musdb data.root=/path/MUSDB18-HQ
    python -m xslicq.evaluate checkpoint=model.ckpt metric=sdr workers=0 out=DIR

The command only reads ``conf/evaluate.yaml``, loads the checkpoint with
:meth:`xslicq.Separator.from_checkpoint` and hands over to :func:`xslicq.evaluation.evaluate`,
whose docstrings describe the data flow, the metrics (``museval``, ``sdr``,
``fast_bss_eval``) and the tables it writes to ``out``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .cli import run_command
from .data.tracks import SPLITS
from .errors import DatasetError, EvaluationConfigError
from .evaluation import (
    check_metric,
    check_workers,
    evaluate,
    load_split,
    summary_markdown,
)
from .outputs import results

log = logging.getLogger(__name__)

RESULT_FILES = ("summary.md", "summary.csv", "tracks.csv", "summary.json")  # write_summary's

__all__ = ["main", "run"]


def run(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` on ``cfg.split`` of ``cfg.data``; returns the summary.

    The settings are checked and the checkpoint read before the data set is read or
    generated: a damaged checkpoint is one error at once (a :class:`~xslicq.errors.
    CheckpointError`; it came as a traceback after the synthetic set's generation, 44 s)."""
    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.checkpoint in (None, ""):
        raise EvaluationConfigError("no checkpoint given: pass checkpoint=/path/to/model.ckpt")
    checkpoint = Path(str(cfg.checkpoint)).expanduser()
    if not checkpoint.is_file():
        raise EvaluationConfigError(f"checkpoint {checkpoint} does not exist (or is not a file)")
    check_metric(cfg.metric)
    workers = check_workers(cfg.workers)
    if cfg.split not in SPLITS:  # before the checkpoint: a typo is no reason to load a model
        raise DatasetError(f"unknown split {cfg.split!r}; choose one of {', '.join(SPLITS)}")
    from .separator import Separator  # with torch and Lightning: after the checks

    separator = Separator.from_checkpoint(str(checkpoint), device=cfg.get("device", "cpu"))
    tracks = load_split(cfg.data, cfg.split)
    targets = list(cfg.targets) if cfg.get("targets") else list(separator.targets)
    log.info(
        "evaluating %s on %d %s tracks with %s", checkpoint, len(tracks), cfg.split, cfg.metric
    )
    # the output policy (xslicq.outputs): one run at a time in `out`, nothing it did not
    # write replaced, its own earlier results only with force=true
    subsets = sorted({t.folder.parent.name for t in tracks}) if cfg.metric == "museval" else []
    with results(
        Path(str(cfg.out)),
        "evaluate",
        [*RESULT_FILES, *subsets],
        bool(cfg.get("force", False)),
        [checkpoint, cfg.data.get("root")],
        source={"checkpoint": str(checkpoint.resolve()), "split": str(cfg.split)},
    ):
        return evaluate(
            separator.separate,
            tracks,
            cfg.out,
            metric=cfg.metric,
            workers=workers,
            targets=targets,
            align=cfg.get("align"),
        )


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    """Returns the mean SDR over the targets; a failure is one ``error:`` line
    (:func:`xslicq.cli.run_command`)."""
    status, summary = run_command(lambda: run(cfg))
    if status:
        raise SystemExit(status)
    print(summary_markdown(summary, "Separation scores"))
    print(f"written to {Path(cfg.out).resolve()}")
    return summary["mean"]["SDR"]


if __name__ == "__main__":
    main()
