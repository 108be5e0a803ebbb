"""Benchmark: streaming separation, real-time factor and latency on the CPU.

    .venv/bin/python experiments/bench_stream.py [--seconds 30] [--threads 2 1]
        [--policies PASSIVE ACTIVE] [--engines torch onnx] [--block 1024]
        [--checkpoint model.ckpt] [--override model.hidden=128 ...] [--out DIR | --record]

Streams a ``--seconds`` stereo song (tones, a chirp and noise: the cost of a slice does not
depend on the content) through the causal configuration (``experiment=stream``: bark
sliCQT with 6400-sample slices, unidirectional Open-Unmix, hidden 256; weights untrained
unless ``--checkpoint`` is given, speed does not depend on them) in input blocks of
``--block`` samples, as ``python -m xslicq.stream`` does, with ``torch.set_num_threads(n)``
for every ``n`` of ``--threads`` and every OpenMP wait policy of ``--policies``, each in a
fresh process; with ``onnx`` in ``--engines``, also through the network exported as a
stream step (:func:`xslicq.export.onnx_bytes`) in :class:`xslicq.stream.OnnxStreamEngine`
(NumPy sliCQT, onnxruntime with ``n`` intra-op threads that do not spin), as
``--model model.onnx`` runs it. Reports the algorithmic latency, the real-time factor
(processing time / audio duration) and the time of every slice step against the hop (a
step must be done before the next hop of input has arrived), and checks that the streamed
stems equal the offline separation of the whole song. Writes stream.md to ``--out``
(default outputs/experiments/), or with ``--record`` to experiments/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchutil import measured_args, parse_args, write_results

CONF = Path(__file__).resolve().parents[1] / "conf"
SR = 44100


def song(seconds: float, seed: int = 0) -> np.ndarray:
    """(2, samples) float32: two tones, a chirp and noise, a different mix per channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 440 * t * (1 + t / 60))
    x = x + 0.05 * rng.standard_normal((2, n))
    return (x * np.array([[1.0], [0.8]])).astype(np.float32)


def build_system(checkpoint: str | None, overrides=()):
    from hydra import compose, initialize_config_dir

    from xslicq.system import SeparationSystem

    if checkpoint:
        from xslicq.separator import Separator

        return Separator.from_checkpoint(checkpoint).system
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=stream", *overrides])
    return SeparationSystem.from_config(cfg, training=False).eval()


def make_engine(system, kind: str, threads: int):
    """The stream engine ``kind`` (``torch`` or ``onnx``) of ``system`` on ``threads``."""
    from xslicq.stream import OnnxStreamEngine, TorchEngine

    if kind == "torch":
        return TorchEngine(system)
    from xslicq.export import onnx_bytes
    from xslicq.inference import OnnxNetwork

    return OnnxStreamEngine(OnnxNetwork(onnx_bytes(system), threads=threads, spinning=False))


def measure(
    checkpoint, seconds: float, block: int, threads: int, overrides=(), kind: str = "torch"
) -> dict:
    """Stream the song in blocks of ``block`` samples through the ``kind`` engine on
    ``threads`` threads, in this process; the step times, the total and the largest
    difference from offline."""
    from xslicq.stream import Streamer

    torch.set_num_threads(threads)
    system = build_system(checkpoint, overrides)
    x = song(seconds)
    engine = make_engine(system, kind, threads)
    steps = []
    step = engine.step

    def timed(frame, state):
        t0 = time.perf_counter()
        out = step(frame, state)
        steps.append(time.perf_counter() - t0)
        return out

    engine.step = timed
    warm = Streamer(engine)  # one warm-up second (first calls allocate)
    warm.push(x[:, :SR])
    warm.finish()
    steps.clear()
    streamer = Streamer(engine)
    parts = []
    t0 = time.perf_counter()
    for a in range(0, x.shape[1], block):
        parts.append(streamer.push(x[:, a : a + block]))
    parts.append(streamer.finish())
    total = time.perf_counter() - t0
    with torch.no_grad():
        reference = system(torch.from_numpy(x)[None])[0].numpy()
    out = np.concatenate(parts, axis=-1)
    return {
        "engine": kind,
        "threads": threads,
        "total": total,
        "steps": steps,
        "error": float(np.abs(out - reference).max() / np.abs(reference).max()),
    }


def describe(checkpoint, overrides=()) -> dict:
    """The configuration's numbers for the report."""
    from xslicq.models import count_parameters
    from xslicq.stream import Streamer, TorchEngine

    system = build_system(checkpoint, overrides)
    t, model = system.transform, system.model
    streamer = Streamer(TorchEngine(system))
    return {
        "scale": t.scale_name,
        "rows": t.nb_bins,
        "sllen": t.sllen,
        "trlen": t.trlen,
        "hop": streamer.hop,
        "latency": streamer.latency,
        "network": type(model).__name__,
        "hidden": model.hidden,
        "layers": model.layers,
        "parameters": count_parameters(model),
        "T": system.r2m.T,
    }


def run_child(args, threads: int, policy: str, kind: str = "torch") -> dict:
    """One row, measured in a fresh process (the OpenMP wait policy is read at start)."""
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    cmd = [sys.executable, __file__, "--child", str(threads), "--seconds", str(args.seconds)]
    cmd += ["--block", str(args.block), "--engines", kind]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.override:
        cmd += ["--override", *args.override]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return {**json.loads(r.stdout.splitlines()[-1]), "policy": policy}


def rows_to_measure(args) -> list[tuple[int, str, str]]:
    """(threads, OMP_WAIT_POLICY, engine) of every row: torch under every policy,
    onnxruntime (whose own threads do not read it) under the first."""
    rows = []
    for kind in args.engines:
        policies = args.policies if kind == "torch" else args.policies[:1]
        rows += [(n, policy, kind) for n in args.threads for policy in policies]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--policies", nargs="+", default=["PASSIVE", "ACTIVE"])
    parser.add_argument(
        "--engines", nargs="+", choices=("torch", "onnx"), default=["torch", "onnx"]
    )
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument(
        "--override", nargs="+", default=[], help="Hydra overrides after experiment=stream"
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parse_args(parser, argv)
    if args.child is not None:
        run = measure(
            args.checkpoint, args.seconds, args.block, args.child, args.override, args.engines[0]
        )
        print(json.dumps(run))
        return 0

    info = describe(args.checkpoint, args.override)
    rows = [run_child(args, n, policy, kind) for n, policy, kind in rows_to_measure(args)]
    hop_ms = 1000 * info["hop"] / SR
    config = " ".join(["experiment=stream", *args.override])
    latency = info["latency"]
    command = "python experiments/bench_stream.py " + " ".join(measured_args(argv or sys.argv[1:]))
    lines = [
        "# Streaming separation: latency and real-time factor",
        "",
        f"Produced by `{command.strip()}` on {platform.machine()} with {os.cpu_count()} CPU "
        f"cores, torch {torch.__version__}, every row in a fresh process.",
        "",
        f"Configuration `{config}`: {info['scale']} sliCQT, {info['rows']} rows, sllen "
        f"{info['sllen']}, trlen {info['trlen']} (hop {info['hop']} samples = {hop_ms:.1f} ms), "
        f"network {info['network']} (unidirectional, hidden {info['hidden']}, "
        f"{info['layers']} LSTM layers, {info['parameters'] / 1e6:.2f} M parameters), "
        f"{info['T']} columns per slice, no Wiener-EM; "
        + (f"weights of `{args.checkpoint}`." if args.checkpoint else "untrained weights.")
        + f" Song: {args.seconds:g} s of stereo at {SR} Hz (tones, a chirp, noise), fed in "
        f"blocks of {args.block} samples.",
        "",
        "## Latency",
        "",
        f"Algorithmic latency: **{latency} samples = {1000 * latency / SR:.1f} ms** "
        "(sllen - (sllen / 4 - trlen / 2): a hop of output is final when the next slice is "
        "complete but for its zero-window margin; the causal network adds no look-ahead). "
        f"Reading the input in blocks of {args.block} samples adds up to "
        f"{1000 * (args.block - 1) / SR:.1f} ms, and a slice's processing time (below) comes "
        "on top. Target: at most 200 ms.",
        "",
        "## Speed",
        "",
        "Real-time factor = processing time / audio duration (below 1: faster than real "
        "time). A slice step (analysis, network, inverse of one slice) runs once per hop of "
        f"{hop_ms:.1f} ms and must finish within it. `OMP_WAIT_POLICY`: how torch's idle "
        "threads wait (`python -m xslicq.stream` sets PASSIVE unless the environment says "
        "otherwise; ACTIVE spins, the OpenMP default). Engine `torch`: the checkpoint "
        "(`--model model.ckpt`); `onnx`: the network exported as a stream step, with the "
        "sliCQT's NumPy backend and onnxruntime (`--model model.onnx`, no torch; threads = "
        "onnxruntime's intra-op threads, which do not spin; the policy is irrelevant to them).",
        "",
        "| engine | threads | OMP_WAIT_POLICY | processing time | real-time factor "
        "| step median | step p95 | step max | steps over the hop |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = 1000 * np.array(r["steps"])
        lines.append(
            f"| {r['engine']} | {r['threads']} | {r['policy']} | {r['total']:.2f} s "
            f"| {r['total'] / args.seconds:.3f} | {np.median(s):.1f} ms "
            f"| {np.percentile(s, 95):.1f} ms | {s.max():.1f} ms "
            f"| {int((s > hop_ms).sum())} of {len(s)} |"
        )
    err = max(r["error"] for r in rows)
    lines += [
        "",
        "Streamed stems vs the offline separation of the whole song by the same system: "
        f"max |difference| / max |stem| = {err:.1e} (tests/test_stream.py holds the torch "
        "engine to 1e-5, tests/test_stream_onnx.py the ONNX engine to 1e-4 of the torch "
        "stream).",
        "",
    ]
    write_results("stream.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
