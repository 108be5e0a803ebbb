"""Command line of the Cadenza pipeline (config ``conf/cadenza.yaml``)::

    python -m xslicq.cadenza checkpoint=model.ckpt                           # synthetic test split
    python -m xslicq.cadenza checkpoint=model.ckpt data=musdb data.root=/path/MUSDB18-HQ \\
        listeners=/path/cadenza_data/cad1/task1/metadata/listeners.valid.json workers=2
    python -m xslicq.cadenza checkpoint=model.ckpt seconds=10 compressor=true out=DIR

:func:`main` only hands the config to :func:`xslicq.cadenza.pipeline.run` and prints the
summary; a user error (missing checkpoint, bad listener file, ...) ends the command with
one line, without a traceback.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ..cli import run_command
from ..errors import XslicqError
from .pipeline import run
from .reports import summary_markdown

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path="../conf", config_name="cadenza")
def main(cfg: DictConfig) -> float:
    """Returns the mean HAAQI."""
    status, summary = run_command(lambda: run(cfg), (XslicqError, OSError))
    if status:
        raise SystemExit(status)
    print(summary_markdown(summary, summary.get("options")))
    print(f"written to {Path(cfg.out).resolve()}")
    return summary["mean"]


if __name__ == "__main__":
    main()
