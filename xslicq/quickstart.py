"""Train briefly on the offline synthetic data, then separate a held-out song.

    python -m xslicq.quickstart [overrides]      # what `make demo` runs

Prints the SDR of every separated stem against its reference, next to the SDR of the
mixture used as the estimate, and writes the stems under the run folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import soundfile as sf
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="quickstart")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from .metrics import sdr_db
    from .separator import Separator
    from .train import train

    _, objects = train(cfg)
    trainer, datamodule = objects["trainer"], objects["datamodule"]
    ckpt = (
        trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path
    )
    separator = Separator.from_checkpoint(ckpt)
    datamodule.setup("test")
    track = datamodule.test_set.tracks[0]
    mixture, references = datamodule.test_set[0]
    stems = separator.separate(mixture.numpy(), track.sample_rate, progress=True)
    out = Path(HydraConfig.get().runtime.output_dir) / "separated" / track.name
    out.mkdir(parents=True, exist_ok=True)
    estimates = np.stack([stems[t] for t in separator.targets])
    refs = references.numpy()
    sdr = sdr_db(estimates, refs)
    base = sdr_db(np.broadcast_to(mixture.numpy(), refs.shape), refs)
    print(f"\nseparated held-out song {track.name} ({track.seconds:.1f} s) with {ckpt}")
    print(f"{'stem':8s} {'SDR (dB)':>9s} {'mixture as estimate':>20s}")
    for t, s, b in zip(separator.targets, sdr, base):
        sf.write(out / f"{t}.wav", stems[t].T, track.sample_rate, subtype="FLOAT")
        print(f"{t:8s} {s:9.2f} {b:20.2f}")
    print(f"{'mean':8s} {float(np.mean(sdr)):9.2f} {float(np.mean(base)):20.2f}")
    print(f"stems written to {out}")
    return float(np.mean(sdr))


if __name__ == "__main__":
    main()
