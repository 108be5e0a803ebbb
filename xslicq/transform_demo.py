"""Transform demo: analyse a song-like signal, reconstruct it, print the error and save
a spectrogram PNG (sliCQT beside an STFT of the same signal).

    python -m xslicq.transform_demo                       # default transform (cqlog)
    python -m xslicq.transform_demo transform=bark seconds=5
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from . import signals

log = logging.getLogger(__name__)


def run_demo(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the demo and return its numbers (used by tests)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import spectrogram_figure

    if cfg.seconds <= 0:
        raise ValueError(f"seconds must be positive, got {cfg.seconds}")
    transform = hydra.utils.instantiate(cfg.transform)
    sr = transform.sample_rate
    audio = signals.music_like(cfg.seconds, sr, channels=2, seed=cfg.seed)
    x = torch.from_numpy(audio)[None].to(getattr(torch, cfg.dtype))

    t0 = time.perf_counter()
    coefs = transform(x)
    t1 = time.perf_counter()
    y = transform.inverse(coefs, length=x.shape[-1])
    t2 = time.perf_counter()
    err = float((x - y).norm() / x.norm())
    result = {
        "transform": repr(transform),
        "blocks": len(coefs),
        "coefficients": int(sum(b.numel() for b in coefs)),
        "relative_error": err,
        "snr_db": float(-20 * np.log10(max(err, 1e-300))),
        "forward_s": t1 - t0,
        "inverse_s": t2 - t1,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = spectrogram_figure(transform, coefs, x.shape[-1], audio=audio)
    png = out_dir / "spectrogram.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    result["png"] = str(png)
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="transform_demo")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    r = run_demo(cfg, Path(HydraConfig.get().runtime.output_dir))
    print(f"{r['transform']}")
    print(
        f"{cfg.seconds} s of song-like stereo audio -> {r['blocks']} blocks, "
        f"{r['coefficients']:,} complex coefficients"
    )
    print(f"forward {r['forward_s'] * 1000:.0f} ms, inverse {r['inverse_s'] * 1000:.0f} ms")
    print(
        f"reconstruction: relative error {r['relative_error']:.2e} "
        f"(SNR {r['snr_db']:.1f} dB, {cfg.dtype})"
    )
    print(f"spectrogram: {r['png']}")
    return r["relative_error"]


if __name__ == "__main__":
    main()
