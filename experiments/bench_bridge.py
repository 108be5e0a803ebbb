"""Benchmark: a training step with the CuPy sliCQT (through the DLPack bridge) against the
torch-CUDA sliCQT, both on the GPU.

    .venv/bin/python experiments/bench_bridge.py [--steps 10] [--repeats 3] [--batch 4]
        [--seconds 2.0] [--transform cqlog] [--model xumx_matrix] [--out DIR | --record]

The same system (the composed train config with ``transform=<transform>`` and
``model=<model>``) is built twice, with ``transform.backend=torch`` and
``transform.backend=cupy``, from one seed, moved to the GPU and trained in float32 on the
same random batches (``batch`` x ``seconds`` s stereo, four targets): forward, loss,
backward and an AdamW step, ``torch.cuda.synchronize()`` around every timed step. It
reports the median seconds per step over ``steps x repeats`` steps, the forward + inverse
transform alone (inside autograd, with its backward), the peak GPU memory (torch's
allocator, plus CuPy's memory pool for the CuPy run) and the first step's loss of both
(equal within float32 rounding: the check that both computed the same thing).

Writes the section ``## CuPy bridge vs torch-CUDA training step`` of gpu.md in ``--out``
(default outputs/experiments/), or with ``--record`` of experiments/results/gpu.md
(created if absent; other sections are kept). On a machine
where torch sees no CUDA GPU or CuPy cannot run, it writes that section saying it has not
been run, and why, instead of numbers.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from benchutil import parse_args, write_section

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
HEADING = "## CuPy bridge vs torch-CUDA training step"


def command(args) -> str:
    return (
        f"`.venv/bin/python experiments/bench_bridge.py --steps {args.steps} --repeats "
        f"{args.repeats} --batch {args.batch} --seconds {args.seconds} --transform "
        f"{args.transform} --model {args.model}`"
    )


def why_not_run() -> str | None:
    """None when torch has a CUDA GPU and CuPy runs on it; else the reason, in words."""
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} finds no CUDA GPU on this machine "
            f"(CUDA build {torch.version.cuda})"
        )
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install '.[gpu]')"
    from xslicq.transform import cupy_available

    if not cupy_available():
        return "CuPy is installed but cannot run a kernel on this GPU (driver or CUDA mismatch)"
    return None


def build(backend: str, args):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from xslicq.system import SeparationSystem

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"transform={args.transform}",
                f"model={args.model}",
                f"transform.backend={backend}",
            ],
        )
    torch.manual_seed(0)
    system = SeparationSystem.from_config(cfg).cuda()
    system.train()
    return system, system.optimizer_factory(params=system.parameters())


def timed(fn) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(backend: str, batches, args) -> dict:
    system, opt = build(backend, args)
    pool = None
    if backend == "cupy":
        import cupy

        pool = cupy.get_default_memory_pool()

    def step(batch):
        opt.zero_grad()
        loss = system.compute_loss(batch)[0]
        loss.backward()
        opt.step()
        return loss

    mixture = batches[0][0]

    def transform_pair():
        x = mixture.detach().requires_grad_(True)
        y = system.transform.inverse(system.transform(x), length=x.shape[-1])
        y.square().sum().backward()

    first_loss = step(batches[0]).item()  # also the warm-up (cuFFT plans, kernels)
    step(batches[1])
    torch.cuda.reset_peak_memory_stats()
    steps, pairs = [], []
    for _ in range(args.repeats):
        for batch in batches[2:]:
            steps.append(timed(lambda b=batch: step(b)))
            pairs.append(timed(transform_pair))
    peak = torch.cuda.max_memory_allocated()
    extra = pool.total_bytes() if pool is not None else 0
    return {
        "step": statistics.median(steps),
        "pair": statistics.median(pairs),
        "torch_peak": peak,
        "cupy_pool": extra,
        "first_loss": first_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--transform", default="cqlog", help="a conf/transform option")
    parser.add_argument("--model", default="xumx_matrix", help="a conf/model option")
    args = parse_args(parser)

    reason = why_not_run()
    if reason is not None:
        section = "\n".join(
            [
                HEADING,
                "",
                f"**Not run yet**: {reason}. The benchmark needs a CUDA GPU with CuPy "
                "(`pip install '.[gpu]'`); run",
                command(args),
                "there to replace this paragraph with the seconds per training step of "
                "`transform.backend=cupy` (the DLPack bridge, xslicq/transform/bridge.py) "
                "against `transform.backend=torch` on CUDA. What the CPU can check of the "
                "bridge (gradcheck through forward and inverse, training losses equal to the "
                "torch backend's within 1e-6 in float64, with `transform.backend=numpy`) is "
                "in tests/test_bridge.py; its `gpu`-marked tests repeat them with CuPy.",
                "",
                f"(Written by experiments/bench_bridge.py on {time.strftime('%Y-%m-%d')}, "
                f"Python {platform.python_version()}, torch {torch.__version__}.)",
            ]
        )
        write_section("gpu.md", HEADING, section)
        return

    import cupy

    samples = int(round(args.seconds * 44100))
    gen = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(args.steps + 2):
        refs = 0.1 * torch.randn(args.batch, 4, 2, samples, generator=gen)
        batches.append((refs.sum(1).cuda(), refs.cuda()))
    results = {}
    for backend in ("torch", "cupy"):
        results[backend] = measure(backend, batches, args)
        torch.cuda.empty_cache()  # the system of this run is gone with measure()'s frame
        cupy.get_default_memory_pool().free_all_blocks()
    t, c = results["torch"], results["cupy"]
    name = torch.cuda.get_device_name()
    mib = 2.0**20
    rel = abs(c["first_loss"] - t["first_loss"]) / max(abs(t["first_loss"]), 1e-12)
    if rel > 1e-4:  # float32 rounding of two FFT libraries is far below this
        raise RuntimeError(
            f"first losses differ by {rel:.1e} (torch {t['first_loss']}, CuPy "
            f"{c['first_loss']}): the two backends did not compute the same step"
        )
    section = "\n".join(
        [
            HEADING,
            "",
            f"Produced by {command(args)} on {name} (torch {torch.__version__}, CuPy "
            f"{cupy.__version__}, CUDA {torch.version.cuda}), float32: the composed train "
            f"config (`transform={args.transform} model={args.model}`) built once per "
            f"backend from one seed, trained on the same random batches of {args.batch} x "
            f"{args.seconds:g} s stereo (four targets); forward, loss, backward and an AdamW "
            f"step; medians over {args.steps} x {args.repeats} steps, synchronised.",
            "",
            "| transform.backend | seconds per step | forward + inverse + backward (s) "
            "| peak torch GPU memory (MiB) | CuPy pool (MiB) | first loss |",
            "|---|---:|---:|---:|---:|---:|",
            *[
                f"| {b} | {r['step']:.4f} | {r['pair']:.4f} | {r['torch_peak'] / mib:.0f} | "
                f"{r['cupy_pool'] / mib:.0f} | {r['first_loss']:.6f} |"
                for b, r in results.items()
            ],
            "",
            f"CuPy / torch-CUDA time per step: **{c['step'] / t['step']:.2f}x**; the transform "
            f"pair alone: {c['pair'] / t['pair']:.2f}x. First losses differ by {rel:.1e} "
            "(relative; float32 rounding of two FFT libraries). The CuPy run hands tensors "
            "over through DLPack without copies and computes the backward pass as the frame's "
            "adjoint in CuPy (xslicq/transform/bridge.py); CuPy keeps its own memory pool "
            "next to torch's caching allocator.",
        ]
    )
    write_section("gpu.md", HEADING, section)


if __name__ == "__main__":
    main()
