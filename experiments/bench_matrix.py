"""Benchmark: RaggedToMatrix cost and memory next to the sliCQT forward, on the CPU.

    .venv/bin/python experiments/bench_matrix.py [--threads 2] [--repeats 5] [--seconds 30]
        [--out DIR | --record]

Writes matrix.md to ``--out`` (default outputs/experiments/), or with ``--record`` to
experiments/results/. Input: ``--seconds`` of stereo song-like audio, default
cqlog sliCQT, float32. For each matrix configuration: time of forward + inverse of the
interpolation, as a fraction of the sliCQT forward, and the size of the matrix next to
the ragged form.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
from benchutil import interleaved_times, median_time, parse_args, write_results

from xslicq import signals
from xslicq.models import XUMXMatrix
from xslicq.system import apply_masks, network_columns
from xslicq.transform import RaggedToMatrix, SliCQT

SR = 44100


def mib(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the signal")
    args = parse_args(parser)
    torch.set_num_threads(args.threads)

    x = torch.from_numpy(signals.music_like(args.seconds, SR, 2, seed=0)).float()[None]
    t = SliCQT()
    c = t(x)
    mags = [b.abs() for b in c]
    bases = []  # the sliCQT forward of every round of every configuration
    finest = max(m for _, m in t.block_shapes)
    # the default network's grid: xumx_matrix's own columns per second on this transform
    grid = network_columns(t, XUMXMatrix.columns_per_second)
    cases = [
        ("complex coefficients", "interpolate", None, c),
        ("magnitudes", "interpolate", None, mags),
        ("magnitudes", "zeropad", None, mags),
        ("magnitudes (network grid)", "interpolate", 256, mags),
        ("magnitudes (network grid)", "interpolate", 128, mags),
        ("magnitudes (default network grid)", "interpolate", grid, mags),
    ]
    rows = []
    for name, mode, T, blocks in cases:
        r = RaggedToMatrix(t, mode=mode, T=T)
        m = r(blocks)
        # the sliCQT forward, the matrix forward and its inverse in turn in every round:
        # the ratio is the median of the rounds' ratios, each under one load
        times = interleaved_times(
            [lambda: t(x), lambda r=r, blocks=blocks: r(blocks), lambda r=r, m=m: r.inverse(m)],
            args.repeats,
        )
        bases += [row[0] for row in times]
        fwd, inv = (float(np.median([row[i] for row in times])) for i in (1, 2))
        ratio = float(np.median([(f + i) / b for b, f, i in times]))
        rows.append((name, mode, r.T, r.exact, fwd, inv, ratio, mib(blocks), mib([m])))
        print(rows[-1], flush=True)

    mask_net = RaggedToMatrix(t, T=grid)
    mask = torch.sigmoid(mask_net(mags))
    apply = median_time(
        lambda: apply_masks(c, [m[:, None] for m in mask_net.inverse(mask)]), args.repeats
    )
    print("mask path", apply)

    # magnitudes on the default network grid: times (s) and sizes (MiB) of both directions
    _, _, _, _, grid_fwd, grid_inv, _, grid_ragged, grid_matrix = next(
        row for row in rows if row[0] == "magnitudes (default network grid)"
    )
    grid_mib = 2 * (grid_ragged + grid_matrix)  # each read once and written once
    lines = [
        "# RaggedToMatrix: cost and memory",
        "",
        f"Produced by `.venv/bin/python experiments/bench_matrix.py --threads {args.threads} "
        f"--repeats {args.repeats} --seconds {args.seconds:g}` ({platform.machine()}, "
        f"{args.threads} torch threads, torch {torch.__version__}).",
        "",
        f"Signal: {args.seconds:g} s of stereo song-like audio, float32. Transform: default cqlog "
        f"({t.nb_bins} rows, {len(t.block_shapes)} blocks, time sizes "
        f"{min(m for _, m in t.block_shapes)}..{finest} per slice, {c[0].shape[3]} slices). "
        f"sliCQT forward: **{np.median(bases) * 1000:.1f} ms** (median of its "
        f"{len(bases)} rounds below).",
        "",
        "Every configuration is timed in rounds: a sliCQT forward, the matrix forward and "
        "its inverse in turn; times are medians over the rounds, and the ratio is the median "
        "of the rounds' ratios (each round under one load of the machine).",
        "",
        "| input | mode | T | exact inverse | forward (ms) | inverse (ms) | "
        "(forward + inverse) / sliCQT forward | ragged (MiB) | matrix (MiB) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, mode, T, exact, fwd, inv, ratio, rag, mat in rows:
        lines.append(
            f"| {name} | {mode} | {T} | {'yes' if exact else 'no'} | {fwd * 1000:.1f} | "
            f"{inv * 1000:.1f} | {100 * ratio:.0f}% | {rag:.1f} | {mat:.1f} |"
        )
    lines += [
        "",
        f"Separation path (a T={grid} mask back onto the ragged mixture and multiplied in, "
        f"`RaggedToMatrix.inverse` + `xslicq.system.apply_masks`): {apply * 1000:.1f} ms.",
        "",
        "Target: forward + inverse at most 20% of the sliCQT forward. "
        + "; ".join(
            f"T={T} ({name}, {mode}): {100 * ratio:.0f}%, "
            f"{'meets' if ratio <= 0.2 else 'misses'} it"
            for name, mode, T, _, _, _, ratio, _, _ in rows
        )
        + ".",
        "",
        f"The exact matrix (T = the finest block's {finest} columns per slice) holds "
        f"{t.nb_bins} x {finest} values per slice against the ragged form's "
        f"{sum(r * m for r, m in t.block_shapes):,}: writing it costs more than a sliCQT "
        "forward (its exact inverse is a free strided view). On a network grid (T = "
        + ", ".join(
            f"{T}: one column per {1e3 * t.slice_hop / SR / T:.1f} ms"
            for T in sorted({row[2] for row in rows if row[2] < finest})
        )
        + ") the work is a read of the ragged magnitudes and a write of the matrix, then a "
        "read of the matrix and a write of a ragged-size mask: at the default network's "
        f"T={grid} {grid_mib:.0f} MiB in {1e3 * (grid_fwd + grid_inv):.1f} ms, "
        f"{grid_mib / 1024 / (grid_fwd + grid_inv):.1f} GiB/s, so the cost is "
        "memory traffic; the masks go back onto the exact ragged mixture coefficients.",
        "",
    ]
    write_results("matrix.md", lines)


if __name__ == "__main__":
    main()
