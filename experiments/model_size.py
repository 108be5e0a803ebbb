"""Parameters and multiply-accumulates per second of audio of every network recipe, next
to Open-Unmix (umxhq), CrossNet-Open-Unmix (X-UMX) and xumx-sliCQ V2.

    .venv/bin/python experiments/model_size.py [--seconds 10] [--out DIR | --record]

Writes models.md to ``--out`` (default outputs/experiments/), or with ``--record`` to
experiments/results/. MACs are counted by :func:`xslicq.models.count_macs`
(weighted layers: linear, convolution, LSTM) over one forward pass of the network alone
on ``--seconds`` of stereo audio, divided by the seconds. Open-Unmix umxhq is built from
the openunmix 1.3.0 package (the dev extras) with umxhq's sizes and random weights; X-UMX
and xumx-sliCQ V2 have no installable code here and are given as published (marked).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
from benchutil import parse_args, write_results

CONF = Path(__file__).resolve().parents[1] / "conf"
SR = 44100

RECIPES = {  # row name -> train overrides
    "default (cqlog + xumx_matrix)": [],
    "experiment=musdb_xumx_matrix": ["experiment=musdb_xumx_matrix", "data.root=/nonexistent"],
    "experiment=xumx_slicq_v2 (cdae_blocks on bark)": [
        "experiment=xumx_slicq_v2",
        "data.root=/nonexistent",
    ],
    "transform=stft model=umx (ours)": ["transform=stft", "model=umx"],
}


def recipe_row(overrides, seconds):
    """(parameters, MACs per second) of a recipe's network on ``seconds`` of audio."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from xslicq.models import count_macs, count_parameters
    from xslicq.system import SeparationSystem

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    system = SeparationSystem.from_config(cfg).eval()
    x = 0.1 * torch.randn(1, 2, int(seconds * SR), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mags = [c.abs() for c in system.transform(x)]
        if system.form == "ragged":
            net_in = (mags,)
        else:
            matrix = system.r2m(mags)
            net_in = (system.r2m.flatten(matrix) if system.form == "frames" else matrix,)
    return count_parameters(system.model), count_macs(system.model, *net_in) / seconds


def umxhq_row(seconds):
    """Open-Unmix umxhq: four OpenUnmix(2049 bins, hidden 512, 3 BLSTM layers, max_bin
    1487) on the 4096/1024 STFT magnitudes; random weights (no download here)."""
    from openunmix.model import OpenUnmix

    from xslicq.models import count_macs, count_parameters

    frames = int(seconds * SR) // 1024 + 1
    spec = torch.rand(1, 2, 2049, frames)
    params = macs = 0
    for _ in range(4):
        net = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, nb_layers=3, max_bin=1487)
        params += count_parameters(net)
        macs += count_macs(net.eval(), spec)
    return params, macs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parse_args(parser, threads=2)
    torch.set_num_threads(2)

    rows = [(name, *recipe_row(o, args.seconds), "counted") for name, o in RECIPES.items()]
    params, macs = umxhq_row(args.seconds)
    rows.append(("Open-Unmix umxhq (openunmix 1.3.0)", params, macs, "counted"))
    # X-UMX: four umxhq-shaped branches joined by averages (CrossNet bridging), so umxhq's
    # layers and MACs; 137 MB of float32 weights published (~34.2 M parameters)
    rows.append(("CrossNet-Open-Unmix X-UMX", 34_250_000, macs, "published size; umxhq MACs"))
    # xumx-sliCQ V2: 60 MB of float32 weights published (~15 M parameters); its code needs
    # its own nsgt fork, not installable here, so no MAC count
    rows.append(("xumx-sliCQ V2 (published)", 15_000_000, None, "published size"))

    lines = [
        "# Network size: parameters and MACs per second of audio",
        "",
        f"Produced by `.venv/bin/python experiments/model_size.py --seconds {args.seconds:g}` "
        f"({platform.machine()}, torch {torch.__version__}, Python {sys.version.split()[0]}). "
        "MACs: multiply-accumulates of the network alone (linear, convolution and LSTM "
        f"layers, counted by `xslicq.models.count_macs` on {args.seconds:g} s of stereo "
        "audio, divided by the seconds); the transform, masks and Wiener-EM are not counted. "
        "Rows marked *published* come from the papers' released weights (float32 bytes / 4), "
        "not from code run here.",
        "",
        "| network | parameters | GMACs per second of audio | source |",
        "|---|---:|---:|---|",
    ]
    for name, params, macs, source in rows:
        approx = "~" if "published" in source else ""
        gmacs = "n/a" if macs is None else f"{macs / 1e9:.2f}"
        lines.append(f"| {name} | {approx}{params:,} | {gmacs} | {source} |")
    write_results("models.md", [*lines, ""])


if __name__ == "__main__":
    main()
