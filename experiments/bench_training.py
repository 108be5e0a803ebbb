"""Benchmark: training throughput on the CPU, default config vs the Open-Unmix setting.

    .venv/bin/python experiments/bench_training.py [--steps 10] [--threads 2] [--repeats 3]
        [--batch-size 4] [--out DIR | --record]

Seconds of training audio processed per wall second (forward, loss, backward, AdamW
step) on the same batches (``--batch-size`` x 2 s stereo, 4 by default, from the synthetic
set) for the default
configuration (cqlog sliCQT + xumx_matrix + sdr_mix) and for `transform=stft model=umx`
(Open-Unmix's STFT 4096/1024 with its BiLSTM network), and where one step's time goes:
the stages of :meth:`SeparationSystem.compute_loss` timed one by one (:func:`staged_step`),
and the network alone (:func:`network_step`), medians over ``steps x repeats`` steps. Two
other networks on the default front end (``ALTERNATIVES``: the finer grid, a narrower
network) show what they cost. Writes the speed section of training.md in ``--out``
(default outputs/experiments/), or with ``--record`` of experiments/results/training.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchutil import parse_args, write_section

CONF = Path(__file__).resolve().parents[1] / "conf"

SETTINGS = {
    "default (cqlog + xumx_matrix + sdr_mix)": [],
    "Open-Unmix setting (transform=stft model=umx)": ["transform=stft", "model=umx"],
}
# other networks on the default front end (not defaults): what a finer grid or a narrower
# network costs (their separation quality: experiments/results/networks.md)
ALTERNATIVES = {
    "default, the finer 140 columns/s grid (system.columns_per_second=140)": [
        "system.columns_per_second=140"
    ],
    "default, a quarter of the network width (model.hidden=16)": ["model.hidden=16"],
}


def build(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from xslicq.models import count_parameters
    from xslicq.system import SeparationSystem

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    system = SeparationSystem.from_config(cfg)
    return system, count_parameters(system.model)


STAGES = (
    ("transform (mixture)", "forward transform of the mixture (B signals)"),
    ("transform (references)", "forward transform of the references (B x J signals)"),
    ("ragged -> matrix", "magnitudes and RaggedToMatrix (or the frames view)"),
    ("network", "network forward"),
    ("masks -> ragged, apply", "RaggedToMatrix.inverse of the masks and mask * mixture"),
    ("inverse transform", "estimates back to waveforms (B x J signals)"),
    ("loss", "sdr_mix on waveforms and coefficients"),
    ("backward", "loss.backward()"),
    ("optimiser step", "the AdamW step"),
)


def staged_step(system, opt, batch) -> tuple[list[float], torch.Tensor]:
    """One training step of ``system`` with a wall-clock timer around every stage.

    The stages are those of :meth:`SeparationSystem.compute_loss` (through ``separate``
    and ``masks``) called one by one, in the same order with the same arguments, so the
    loss is the one ``compute_loss`` returns (checked in :func:`main`). On the CPU every
    operation has finished when it returns, so the timers need no synchronisation.

    Returns:
        seconds per stage (in the order of ``STAGES``) and the loss.
    """
    from xslicq.system import apply_masks

    mixture, references = batch
    b, j = references.shape[:2]
    opt.zero_grad()
    times = []
    clock = [time.perf_counter()]

    def lap():
        now = time.perf_counter()
        times.append(now - clock[0])
        clock[0] = now

    coefs = system.transform(mixture)
    lap()
    ref_coefs = system.transform(references.reshape(b * j, *references.shape[2:]))
    ref_coefs = [r.reshape((b, j) + tuple(r.shape[1:])) for r in ref_coefs]
    lap()
    mags, net_in, shape = network_input(system, coefs)
    lap()
    if system.form == "ragged":
        masks = system.model(mags)
        lap()
    else:
        fb, c, f, s, t = shape
        out = system.model(net_in).reshape(fb, j, c, f, s, t)
        lap()
        ragged = system.r2m.inverse(out.reshape(fb * j, c, f, s, t))
        masks = [m.reshape((fb, j) + tuple(m.shape[1:])) for m in ragged]
    if system.mask_sum_to_one:
        masks = [m / m.sum(1, keepdim=True).clamp_min(1e-8) for m in masks]
    est = apply_masks(coefs, masks)
    if system.wiener_iterations:
        from xslicq.filtering import wiener

        est = wiener(est, coefs, system.wiener_iterations)
    lap()
    flat = [e.reshape((b * j,) + tuple(e.shape[2:])) for e in est]
    waves = system.transform.inverse(flat, length=mixture.shape[-1])
    estimates = waves.reshape(b, j, *mixture.shape[1:])
    lap()
    loss, _ = system.score(estimates, references, est, ref_coefs, masks, mags)
    lap()
    loss.backward()
    lap()
    opt.step()
    lap()
    return times, loss.detach()


def train_step(system, opt, batch) -> None:
    """One training step as Lightning runs it: loss, backward, optimiser step."""
    opt.zero_grad()
    loss, _, _ = system.compute_loss(batch)
    loss.backward()
    opt.step()


def network_input(system, coefs):
    """What :meth:`SeparationSystem.masks` feeds the network from the mixture coefficients:
    ``(magnitudes, network input, matrix shape)``; the input is the ragged magnitudes for
    a ragged network (shape ``None``), else the matrix (B, C, F, S, T) or its frames view."""
    from xslicq.transform.backend import magnitude

    mags = [magnitude(c) for c in coefs]
    if system.form == "ragged":
        return mags, mags, None
    matrix = system.r2m(mags)
    net_in = system.r2m.flatten(matrix) if system.form == "frames" else matrix
    return mags, net_in, tuple(matrix.shape)


def network_step(system, batch) -> float:
    """Seconds of the network alone, forward and backward (of the masks' sum), on the
    input the step gives it; the front end runs before the clock starts."""
    with torch.no_grad():
        net_in = network_input(system, system.transform(batch[0]))[1]
    system.model.zero_grad()
    t0 = time.perf_counter()
    system.model(net_in).sum().backward()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the batches")
    parser.add_argument("--batch-size", type=int, default=4, help="2 s segments per batch")
    parser.add_argument(
        "--plain-malloc",
        action="store_true",
        help="glibc's malloc as it comes (no keep_freed_memory): print the step medians of "
        "the two settings as JSON and write nothing (the main run starts this itself)",
    )
    args = parse_args(parser)
    torch.set_num_threads(args.threads)
    from xslicq.train import keep_freed_memory

    # as xslicq.train does with its default keep_freed_memory: true (False: no glibc here)
    kept = False if args.plain_malloc else keep_freed_memory()

    from xslicq.data.datamodule import MusdbDataModule
    from xslicq.data.synthetic import generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="xslicq-bench-"))
    try:
        generate_dataset(
            tmp / "syn",
            tracks=5,
            seconds=10.0,
            seed=0,
            test_tracks=1,
            valid_tracks=1,
            progress=False,
        )
        dm = MusdbDataModule(
            str(tmp / "syn"), seq_dur=2.0, batch_size=args.batch_size, num_workers=0
        )
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        batches = [next(it) for _ in range(args.steps + 2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    systems = {}
    configurations = SETTINGS if args.plain_malloc else {**SETTINGS, **ALTERNATIVES}
    for name, overrides in configurations.items():
        system, params = build(overrides)
        opt = system.optimizer_factory(params=system.parameters())
        system.train()
        for b in batches[:2]:  # warm-up
            train_step(system, opt, b)
        if name in SETTINGS and not args.plain_malloc:
            # the staged step computes the loss compute_loss computes (same parameters, seed)
            torch.manual_seed(0)
            with torch.no_grad():
                expected = system.compute_loss(batches[2])[0]
            torch.manual_seed(0)
            sgd = torch.optim.SGD(system.parameters(), lr=0.0)
            got = staged_step(system, sgd, batches[2])[1]
            if not torch.allclose(got, expected, rtol=1e-5, atol=1e-6):
                raise RuntimeError(f"{name}: staged loss {float(got)} != {float(expected)}")
        systems[name] = (system, opt, params)
    # the settings take turns within every pass, so a change of load on a shared machine
    # falls on all of them alike
    steps = {name: [] for name in systems}
    stages = {name: [] for name in SETTINGS}
    networks = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, (system, opt, _) in systems.items():
            for b in batches[2:]:
                t0 = time.perf_counter()
                train_step(system, opt, b)
                steps[name].append(time.perf_counter() - t0)
            if name in SETTINGS and not args.plain_malloc:
                for b in batches[2:]:
                    stages[name].append(staged_step(system, opt, b)[0])
                    networks[name].append(network_step(system, b))
    # medians of single steps: a pass over all batches would carry any stall of a
    # shared machine into the figure
    if args.plain_malloc:
        print(json.dumps({name: statistics.median(steps[name]) for name in SETTINGS}))
        return
    rows = []
    for name, (_, _, params) in systems.items():
        seconds = statistics.median(steps[name])
        rows.append((name, params, seconds, args.batch_size * 2.0 / seconds))
        print(rows[-1], flush=True)
    plain = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--plain-malloc"]
            + [f"--{k}={getattr(args, k)}" for k in ("steps", "threads", "repeats")]
            + [f"--batch-size={args.batch_size}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    plain = [plain[name] for name in SETTINGS]
    profiles = [[statistics.median(s) for s in zip(*stages[name])] for name in SETTINGS]
    network = [statistics.median(networks[name]) for name in SETTINGS]
    ratio = rows[0][3] / rows[1][3]
    short = ["default", "Open-Unmix setting"]
    totals = [sum(p) for p in profiles]
    section = "\n".join(
        [
            "## Training speed on the CPU",
            "",
            f"Produced by `.venv/bin/python experiments/bench_training.py --steps {args.steps} "
            f"--threads {args.threads} --repeats {args.repeats}"
            + ("" if args.batch_size == 4 else f" --batch-size {args.batch_size}")
            + "`: forward, loss, backward and an "
            f"AdamW step on the same {args.steps} batches of {args.batch_size} x 2 s stereo "
            "synthetic audio; "
            f"the median over {args.steps} x {args.repeats} single steps.",
            "",
            "| configuration | parameters | seconds per step | seconds of audio per second "
            "| vs the Open-Unmix setting |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {n} | {p:,} | {s:.2f} | {a:.2f} | {a / rows[1][3]:.2f}x |"
                for n, p, s, a in rows
            ],
            "",
            f"Default / Open-Unmix setting throughput: **{ratio:.2f}x** (target: at least 1x). "
            f"Default training step rate: {1 / rows[0][2]:.2f} steps/s "
            f"({args.batch_size / rows[0][2]:.1f} segments/s). The last {len(ALTERNATIVES)} "
            "rows are not defaults: the default front end with another network. How they "
            "separate at equal training time and at equal steps is measured in networks.md "
            "(the finer grid: as well at equal time, better at equal steps; the narrower "
            "network, measured there on the 140 columns/s grid: worse at both).",
            "",
            (
                ""
                if kept
                else "`keep_freed_memory` has no effect on this machine (no glibc malloc): "
                "both runs below use the allocator as it comes. "
            )
            + "Without `keep_freed_memory` (`--plain-malloc`: glibc's malloc as it comes, a "
            "fresh process on the same batches after this one): default "
            f"{plain[0]:.2f} s per step, Open-Unmix setting {plain[1]:.2f} s "
            f"({plain[1] / plain[0]:.2f}x); with it (the table) "
            f"{rows[0][2]:.2f} s and {rows[1][2]:.2f} s, "
            f"{100 * (1 - rows[0][2] / plain[0]):.0f} % and "
            f"{100 * (1 - rows[1][2] / plain[1]):.0f} % less.",
            "",
            "### Where a step's time goes",
            "",
            "The stages of `SeparationSystem.compute_loss` timed one by one "
            "(`staged_step`; its loss is checked equal to `compute_loss`'s), then backward and "
            f"the optimiser step: the median over {args.steps} x {args.repeats} steps per stage, "
            "in ms and as a share of the sum of the medians (the total row; the timers add a "
            "little to the step of the table above).",
            "",
            f"| stage | {short[0]} ms | share | {short[1]} ms | share |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {stage} | "
                + " | ".join(
                    f"{1e3 * p[k]:.0f} | {100 * p[k] / tot:.0f} %"
                    for p, tot in zip(profiles, totals)
                )
                + " |"
                for k, (stage, _) in enumerate(STAGES)
            ],
            "| total | " + " | ".join(f"{1e3 * t:.0f} | 100 %" for t in totals) + " |",
            "",
            "Stages: " + "; ".join(f"{stage}: {what}" for stage, what in STAGES) + ".",
            "",
            "The network alone (`network_step`: forward and backward on the input the step "
            "gives it, the front end excluded), median over the same steps: "
            f"default {1e3 * network[0]:.0f} ms, Open-Unmix setting {1e3 * network[1]:.0f} ms. "
            f"The default network alone takes {100 * network[0] / rows[1][2]:.0f} % of the "
            f"time of a whole Open-Unmix-setting step ({1e3 * rows[1][2]:.0f} ms); the rest of "
            f"a default step, the front end, loss and optimiser, takes "
            f"{1e3 * (rows[0][2] - network[0]):.0f} ms against "
            f"{1e3 * (rows[1][2] - network[1]):.0f} ms.",
            "",
        ]
    )
    write_section("training.md", "## Training speed on the CPU", section)


if __name__ == "__main__":
    main()
