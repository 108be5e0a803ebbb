"""Benchmark: sliCQT forward/inverse against torch.stft/istft on the CPU.

    .venv/bin/python experiments/bench_transform.py [--threads 2] [--repeats 5]
        [--seconds 30] [--batch 16] [--out DIR | --record]

Writes transform.md (and transform.json) to ``--out`` (default outputs/experiments/), or
with ``--record`` to experiments/results/. The signals: a ``--seconds`` stereo song and
the training shape, ``--batch`` x 2 s stereo segments. Every measurement
runs in a fresh subprocess so that its peak memory (the rise of the process's
maximum resident set size during the timed calls, on top of the input and the
transform tables) is its own. Times are the median of ``--repeats`` runs after
one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

from benchutil import median_time, parse_args, write_json, write_results

SR = 44100
OPS = (
    "slicqt_forward",
    "slicqt_inverse",
    "slicqt_roundtrip",
    "stft_forward",
    "stft_inverse",
    "stft_roundtrip",
    "slicqt_train_step",  # the training steps run on the batch only
    "stft_train_step",
)


def measure(
    case: str, op: str, threads: int, repeats: int, seconds: float = 30.0, batch: int = 16
) -> dict:
    """Run one (case, op) in this process and return its median time and memory rise."""
    import resource

    import numpy as np
    import torch

    from xslicq import signals
    from xslicq.transform import SliCQT

    torch.set_num_threads(threads)
    if case == "song":  # a song of stereo music-like audio
        x = torch.from_numpy(signals.music_like(seconds, SR, 2, seed=0)).float()[None]
    else:  # the training shape: a batch of 2 s stereo segments
        x = torch.from_numpy(
            np.stack([signals.music_like(2.0, SR, 2, seed=s) for s in range(batch)])
        ).float()
    window = torch.hann_window(4096)
    t = SliCQT()  # default cqlog, 262 bins, 32.9 Hz .. 22050 Hz
    length = x.shape[-1]

    def stft(v):
        return torch.stft(v.reshape(-1, length), 4096, 1024, window=window, return_complex=True)

    def istft(s):
        return torch.istft(s, 4096, 1024, window=window, length=length)

    if op == "slicqt_forward":
        run = lambda: t(x)  # noqa: E731
    elif op == "slicqt_inverse":
        c = t(x)
        run = lambda: t.inverse(c, length)  # noqa: E731
    elif op == "slicqt_roundtrip":
        run = lambda: t.inverse(t(x), length)  # noqa: E731
    elif op == "stft_forward":
        run = lambda: stft(x)  # noqa: E731
    elif op == "stft_inverse":
        s = stft(x)
        run = lambda: istft(s)  # noqa: E731
    elif op == "stft_roundtrip":
        run = lambda: istft(stft(x))  # noqa: E731
    elif op in ("slicqt_train_step", "stft_train_step"):
        # forward + inverse + backward of a loss on the reconstruction, as in training
        xg = x.clone().requires_grad_(True)
        if op == "slicqt_train_step":

            def run():
                y = t.inverse([b * 0.5 for b in t(xg)], length)
                y.square().mean().backward()
        else:

            def run():
                y = istft(stft(xg) * 0.5)
                y.square().mean().backward()
    else:
        raise ValueError(op)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    median = median_time(run, repeats)  # the warm-up also builds table caches
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": case,
        "op": op,
        "median_s": median,
        "peak_mib": (peak - before) / 1024.0,
        "coefficients": int(sum(b.numel() for b in t(x)))
        if op.startswith("slicqt")
        else int(stft(x).numel()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the song")
    parser.add_argument("--batch", type=int, default=16, help="2 s segments in the batch")
    parser.add_argument(
        "--ops", nargs="+", choices=OPS, default=list(OPS), help="the operations to time"
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "OP"), help=argparse.SUPPRESS)
    args = parse_args(parser)
    if args.child:
        print(
            json.dumps(measure(*args.child, args.threads, args.repeats, args.seconds, args.batch))
        )
        return

    # every operation on both signals, the training steps on the batch only
    plan = [
        (case, op)
        for case in ("song", "batch")
        for op in OPS
        if op in args.ops and (case == "batch" or not op.endswith("_train_step"))
    ]
    rows = []
    for case, op in plan:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                case,
                op,
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
                "--seconds",
                str(args.seconds),
                "--batch",
                str(args.batch),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(
            f"{case:6s} {op:20s} {rows[-1]['median_s'] * 1000:8.1f} ms "
            f"{rows[-1]['peak_mib']:8.1f} MiB",
            flush=True,
        )

    get = {(r["case"], r["op"]): r["median_s"] for r in rows}

    def ratio_of(case, what):  # sliCQT / STFT time, None when --ops left one out
        pair = get.get((case, f"slicqt_{what}")), get.get((case, f"stft_{what}"))
        return pair[0] / pair[1] if None not in pair else None

    ratio = {case: ratio_of(case, "roundtrip") for case in ("song", "batch")}
    train_ratio = ratio_of("batch", "train_step")

    import torch

    from xslicq.transform import SliCQT

    t = SliCQT()
    write_json(
        "transform.json", {"rows": rows, "roundtrip_ratio": ratio, "train_step_ratio": train_ratio}
    )
    song, batch = f"{args.seconds:g} s song", f"{args.batch} x 2 s batch"
    n = int(args.seconds * SR)
    lines = [
        "# sliCQT speed and memory on the CPU",
        "",
        f"Produced by `.venv/bin/python experiments/bench_transform.py --threads {args.threads} "
        f"--repeats {args.repeats} --seconds {args.seconds:g} --batch {args.batch}"
        + ("" if len(args.ops) == len(OPS) else f" --ops {' '.join(args.ops)}")
        + "` "
        f"({platform.processor() or platform.machine()}, "
        f"{args.threads} torch threads, torch {torch.__version__}).",
        "",
        f"Transform: default `cqlog`, {t.bins} bins from {t.fmin} Hz to {t.fmax} Hz "
        f"({t.nb_bins} rows with DC), sllen {t.sllen}, trlen {t.trlen}, "
        f"{len(t.block_shapes)} blocks, float32. Baseline: `torch.stft`/`torch.istft`, "
        "n_fft 4096, hop 1024, Hann window.",
        "",
        "Median of the timed runs after one warm-up; memory is the rise of the process's peak "
        "RSS during the runs (each row in a fresh process).",
        "",
        "| signal | operation | time (ms) | peak memory rise (MiB) | complex coefficients |",
        "|---|---|---:|---:|---:|",
    ]
    names = {"song": f"{args.seconds:g} s stereo song", "batch": f"{args.batch} x 2 s stereo"}
    for r in rows:
        lines.append(
            f"| {names[r['case']]} | {r['op']} | {r['median_s'] * 1000:.1f} | "
            f"{r['peak_mib']:.1f} | {r['coefficients']:,} |"
        )
    lines.append("")
    if None not in ratio.values():
        lines.append(
            f"**Forward + inverse vs the STFT pair: {ratio['song']:.2f}x on the {song}, "
            f"{ratio['batch']:.2f}x on the {batch}** (target: at most 2x)."
        )
    if train_ratio is not None:
        lines.append(f"Forward + inverse + backward on the {batch}: {train_ratio:.2f}x the STFT's.")
    lines += [
        "",
        f"Why the batch ratio is higher: a {t.sllen}-sample slice ({t.sllen / SR:.2f} s, needed "
        f"for the {t.scale.bandwidths[0]:.2f} Hz band of the lowest bin) is longer than a 2 s "
        f"segment, so each segment is analysed in {t.nb_slices(2 * SR)} overlapping slices, "
        f"{t.nb_slices(2 * SR) * t.sllen / (2 * SR):.1f}x its own length, against "
        f"{t.nb_slices(n) * t.sllen / n:.1f}x for the {song}.",
        "",
    ]
    write_results("transform.md", lines)


if __name__ == "__main__":
    main()
