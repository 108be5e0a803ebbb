"""Benchmark: the network alone on each inference engine (torch, onnxruntime, TensorRT), and
the whole separation with torch against the torch-free separator.

    .venv/bin/python experiments/bench_engines.py [--threads 2] [--repeats 5]
        [--song-seconds 30] [--out DIR | --record]

Writes engines.md to ``--out`` (default outputs/experiments/), or with ``--record`` to
experiments/results/. The network is the default one (cqlog sliCQT,
``xumx_matrix``, freshly initialised: speed does not depend on the weights), exported with
:func:`xslicq.export.onnx_bytes`. Input: the matrix magnitudes of 10 s chunks of stereo
song-like audio (the separator's chunk), batch 1 (latency) and 4 (throughput); then the
whole separation of a ``--song-seconds`` song. TensorRT
(fp32, fp16) and torch CUDA run only where tensorrt imports and a CUDA GPU is present; the
file says so when they did not.
"""

from __future__ import annotations

import argparse
import copy
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from benchutil import median_time, parse_args, write_results
from hydra import compose, initialize_config_dir

from xslicq import signals
from xslicq.export import onnx_bytes
from xslicq.inference import OnnxNetwork, OnnxSeparator
from xslicq.separator import Separator
from xslicq.system import SeparationSystem

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
CHUNK_SECONDS = 10.0


def default_system() -> SeparationSystem:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train")
    torch.manual_seed(0)
    return SeparationSystem.from_config(cfg, training=False).eval()


def chunk_matrix(system, batch: int) -> torch.Tensor:
    """Matrix magnitudes (batch, C, F, S, T) of ``batch`` 10 s chunks."""
    x = [signals.music_like(CHUNK_SECONDS, SR, 2, seed=i) for i in range(batch)]
    x = torch.from_numpy(np.stack(x)).float()
    with torch.no_grad():
        return system.r2m([c.abs() for c in system.transform(x)])


def row(engine: str, device: str, batch: int, seconds: float, gap: float | None) -> tuple:
    audio = batch * CHUNK_SECONDS
    return (engine, device, batch, seconds * 1000, audio / seconds, gap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--song-seconds", type=float, default=30.0, help="the separated song")
    args = parse_args(parser)
    song_seconds = args.song_seconds
    torch.set_num_threads(args.threads)

    system = default_system()
    model = onnx_bytes(system)
    network = OnnxNetwork(model, threads=args.threads)
    session = network.session
    matrices = {batch: chunk_matrix(system, batch) for batch in (1, 4)}
    rows = []
    for batch, matrix in matrices.items():
        with torch.no_grad():
            ref = system.model(matrix).numpy()
            t_torch = median_time(lambda m=matrix: system.model(m), args.repeats)
        feed = {"magnitudes": matrix.numpy()}
        got = session.run(None, feed)[0]
        t_ort = median_time(lambda f=feed: session.run(None, f), args.repeats)
        rows.append(row("torch", "CPU", batch, t_torch, None))
        rows.append(row("onnxruntime", "CPU", batch, t_ort, float(np.abs(got - ref).max())))
        print(rows[-2:], flush=True)
    shape = tuple(matrices[1].shape)

    gpu_rows, gpu_note = [], None
    try:
        from xslicq.tensorrt import TensorRTNetwork, check_tensorrt

        check_tensorrt()
    except RuntimeError as err:
        gpu_note = str(err)
    if gpu_note is None:
        cuda_model = copy.deepcopy(system.model).cuda()
        cuda_matrices = {batch: matrix.cuda() for batch, matrix in matrices.items()}
        refs = {}
        for batch, matrix in cuda_matrices.items():

            def torch_cuda(m=matrix):
                with torch.no_grad():
                    out = cuda_model(m)
                torch.cuda.synchronize()
                return out

            refs[batch] = torch_cuda()
            gpu_rows.append(
                row("torch", "CUDA", batch, median_time(torch_cuda, args.repeats), None)
            )
        for precision in ("fp32", "fp16"):
            net = TensorRTNetwork.from_onnx(
                model, precision=precision, max_slices=shape[3], max_batch=4
            )
            for batch, matrix in cuda_matrices.items():
                gap = float((net(matrix) - refs[batch]).abs().max())
                t_trt = median_time(lambda m=matrix, net=net: net(m), args.repeats)
                gpu_rows.append(row(f"TensorRT {precision}", "CUDA", batch, t_trt, gap))

    # the whole separation of a song: torch Separator against the torch-free one (medians
    # of 3 calls after a warm-up, fewer with --repeats below 3)
    audio = signals.music_like(song_seconds, SR, 2, seed=7).astype(np.float32)
    torch_sep = Separator(system)
    numpy_sep = OnnxSeparator(network, network.metadata)
    t_sep_torch = median_time(lambda: torch_sep.separate(audio, SR), min(args.repeats, 3))
    t_sep_numpy = median_time(lambda: numpy_sep.separate(audio, SR), min(args.repeats, 3))
    a, b = torch_sep.separate(audio, SR), numpy_sep.separate(audio, SR)
    worst = max(float(np.linalg.norm(b[k] - a[k]) / np.linalg.norm(a[k])) for k in a)

    def table(rows):
        out = [
            "| engine | device | batch (10 s chunks) | latency (ms) | throughput (s of audio / s) "
            "| max abs mask difference to torch |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for engine, device, batch, ms, rate, gap in rows:
            gap_s = "reference" if gap is None else f"{gap:.1e}"
            out.append(f"| {engine} | {device} | {batch} | {ms:.0f} | {rate:.0f} | {gap_s} |")
        return out

    lines = [
        "# Inference engines: the network alone, and the whole separation",
        "",
        f"Produced by `.venv/bin/python experiments/bench_engines.py --threads {args.threads} "
        f"--repeats {args.repeats} --song-seconds {song_seconds:g}` ({platform.machine()}, "
        f"{platform.processor() or 'CPU'}, {args.threads} threads for torch and for "
        f"onnxruntime, torch {torch.__version__}, onnxruntime {ort.__version__}). Medians of "
        f"{args.repeats} calls after a warm-up.",
        "",
        f"Network: the default `xumx_matrix` on the default cqlog sliCQT (untrained; speed "
        f"does not depend on the weights), exported with `xslicq.export.onnx_bytes` "
        f"(TorchScript exporter, opset 17). Input: matrix magnitudes of 10 s stereo chunks, "
        f"{shape[1:]} (channels, bins, slices, columns) per chunk.",
        "",
        "## CPU: torch and onnxruntime",
        "",
        *table(rows),
        "",
        "## GPU: torch CUDA and TensorRT",
        "",
    ]
    if gpu_note is None:
        lines += table(gpu_rows)
    else:
        lines += [
            f"Not run: this machine has no usable GPU or TensorRT. The check said: *{gpu_note}*",
            "",
            '`format=tensorrt` and `engine="tensorrt"` (xslicq/tensorrt.py) are written '
            "against TensorRT 10's Python API but have not been built or run here; their "
            "test (`tests/test_export.py::test_tensorrt_engine_gives_the_torch_engines_stems`, "
            "marker `gpu`) skips without a GPU. Re-run this script on a GPU machine with "
            "`pip install '.[gpu]'` to fill this section.",
        ]
    lines += [
        "",
        f"## Whole separation of {song_seconds:g} s of stereo (10 s chunks, 1 s cross-fades)",
        "",
        "| separator | time | real-time factor |",
        "|---|---:|---:|",
        f"| `Separator` (torch: sliCQT, network, masks, inverse) | {t_sep_torch:.2f} s | "
        f"{t_sep_torch / song_seconds:.3f} |",
        f"| `OnnxSeparator` (NumPy sliCQT, onnxruntime network; no torch) | {t_sep_numpy:.2f} s "
        f"| {t_sep_numpy / song_seconds:.3f} |",
        "",
        f"Largest relative L2 difference of a stem between the two: {worst:.1e} (the parity "
        "bound the tests hold is 1e-4).",
        "",
    ]
    write_results("engines.md", lines)


if __name__ == "__main__":
    main()
