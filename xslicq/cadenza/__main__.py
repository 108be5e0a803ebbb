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

from ..config import DeviceError
from ..data.tracks import DatasetError
from .errors import CadenzaError
from .pipeline import run
from .reports import summary_markdown

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path="../conf", config_name="cadenza")
def main(cfg: DictConfig) -> float:
    """Returns the mean HAAQI."""
    from ..evaluation import EvaluationError
    from ..outputs import OutputError
    from ..train import CheckpointError

    errors = (CadenzaError, DatasetError, EvaluationError, DeviceError, CheckpointError)
    try:
        summary = run(cfg)
    except (*errors, OutputError) as err:
        raise SystemExit(f"xslicq.cadenza: error: {err}") from None
    print(summary_markdown(summary, summary.get("options")))
    print(f"written to {Path(cfg.out).resolve()}")
    return summary["mean"]


if __name__ == "__main__":
    main()
