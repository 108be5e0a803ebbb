"""Figures of the README: one song-like signal as ragged sliCQT, matrix forms and STFT.

    .venv/bin/python experiments/make_figures.py [--seconds 8] [--out DIR | --record]

Writes spectrograms.png to ``--out`` (default outputs/experiments/), or with ``--record``
to docs/ (the README's picture).
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from benchutil import ROOT, parse_args, save_figure  # noqa: E402

from xslicq import signals  # noqa: E402
from xslicq.plotting import plot_slicq, plot_stft  # noqa: E402
from xslicq.transform import RaggedToMatrix, SliCQT  # noqa: E402

SR = 44100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the signal")
    args = parse_args(parser, record=ROOT / "docs")
    audio = signals.music_like(args.seconds, SR, channels=2, seed=0)
    x = torch.from_numpy(audio).float()[None]
    t = SliCQT()
    c = t(x)
    exact = RaggedToMatrix(t)
    coarse = RaggedToMatrix(t, T=128)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9), constrained_layout=True)
    plot_slicq(
        t,
        c,
        x.shape[-1],
        ax=axes[0, 0],
        title=f"sliCQT cqlog, ragged: {len(c)} blocks, {t.nb_bins} rows",
    )
    plot_slicq(
        t,
        exact(c),
        x.shape[-1],
        ax=axes[0, 1],
        title=f"matrix form, T={exact.T} per slice (exactly invertible)",
    )
    plot_slicq(
        t,
        coarse([b.abs() for b in c]),
        x.shape[-1],
        ax=axes[1, 0],
        title=f"matrix form, T={coarse.T} per slice (a network's input)",
    )
    plot_stft(audio, SR, ax=axes[1, 1])
    save_figure(fig, "spectrograms.png", dpi=80, palette=128)  # 128 colours: a small PNG


if __name__ == "__main__":
    main()
