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
from .checks import is_number
from .cli import run_command
from .errors import ConfigError, XslicqError

log = logging.getLogger(__name__)

# the longest test signal: the transform holds all its coefficients at once (the default
# cqlog, analysed and resynthesised: 572 MiB peak for 1 s of stereo, 1165 MiB for 60 s, about
# 10 MiB a second; 120 s stays under 2 GiB)
MAX_SECONDS = 120.0
DTYPES = ("float32", "float64")  # the precisions the transforms compute in


def check_config(cfg: DictConfig) -> None:
    """A ValueError naming the value and what is allowed, for ``seconds`` outside
    (0, :data:`MAX_SECONDS`] or a ``dtype`` not in :data:`DTYPES`."""
    seconds = cfg.seconds
    if not is_number(seconds, finite=True) or not 0 < seconds <= MAX_SECONDS:
        raise ValueError(
            f"seconds must be positive and at most {MAX_SECONDS:g} (the whole signal is "
            f"transformed at once), got {seconds!r}"
        )
    if cfg.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")


def run_demo(cfg: DictConfig, out_dir: Path) -> dict:
    """Run the demo and return its numbers (used by tests)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import spectrogram_figure

    check_config(cfg)
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
    """The demo; a value it or the transform refuses is one ``error:`` line, exit status 2
    (:func:`xslicq.cli.run_command`); a file it cannot write, status 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import InstantiationException

    def work():
        try:
            return run_demo(cfg, Path(HydraConfig.get().runtime.output_dir))
        except XslicqError:
            raise
        except (ValueError, InstantiationException) as err:
            if isinstance(err, InstantiationException):  # the transform's own check, wrapped
                if not isinstance(err.__cause__, ValueError):
                    raise
                err = err.__cause__
            raise ConfigError(str(err)) from None  # a value the demo or transform refuses

    status, r = run_command(work)
    if status:
        raise SystemExit(status)
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
