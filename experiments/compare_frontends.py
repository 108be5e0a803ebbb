"""The verdict: sliCQT against STFT front ends, at equal training steps and equal wall-clock.

    .venv/bin/python experiments/compare_frontends.py [--study frontends] [--minutes 10]
        [--seeds 0 1] [--parallel 2] [--every 10] [--haaqi-seconds 8] [hydra overrides,
        e.g. data=musdb data.root=/path/MUSDB18-HQ trainer=gpu] [--out DIR | --record]

Trains, for every seed, the separators of the study below with the same data, batches,
optimiser and wall-clock budget (``--minutes`` of ``python -m xslicq.train`` each, ``--parallel``
runs at a time with the CPU threads split between them, a checkpoint every ``--every``
steps), then evaluates every run twice:

* at equal wall-clock: the model at the end of the budget (``last.ckpt``);
* at equal steps: the checkpoint at the largest step count that every run reached.

Each model separates the test split and is scored with museval (BSSEval v4) and with HAAQI
through the Cadenza CAD1 pipeline (two example listeners, the first ``--haaqi-seconds`` of
every song). Writes ``<study>.md`` (tables and the verdict) and ``<study>.png``
(validation SDR against steps and against time) to ``--out`` (default
outputs/experiments/), or with ``--record`` to experiments/results/. Finished runs and
evaluations are reused when the script is started again (``--fresh`` starts over).

``--study frontends`` (the verdict; xumx_matrix at ``model.hidden=32`` and 140 columns/s,
the network the verdict was measured with):

    (a) cqlog  the default sliCQT (cqlog, 262 bins) + xumx_matrix
    (b) tuned  the tuned sliCQT (conf/transform/tuned.yaml) + xumx_matrix
    (c) stft   the STFT 4096/1024 + xumx_matrix (the same network on the STFT)
    (d) umx    the STFT 4096/1024 + umx (Open-Unmix's BiLSTM)

``--study networks`` (the network's cost, on the default cqlog sliCQT):

    (a) h32    xumx_matrix, hidden=32 on the 140 columns/s grid
    (b) h16    a quarter of the width's cost: hidden=16 on the 140 columns/s grid
    (c) g70    hidden=32 on half the grid: system.columns_per_second=70
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchutil import parse_args, save_figure, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "outputs" / "compare_frontends"
# the xumx_matrix the front-end verdict was measured with (its width and grid then)
VERDICT_NET = ["model.hidden=32", "system.columns_per_second=140"]


class Study:
    """A set of runs (``configs``: name -> (label, overrides)), the two groups whose best
    members the verdict compares (``sides``: (what group A is called, its names), then B),
    what the groups differ in (``what``) and a sentence on the runs' settings (``note``)."""

    def __init__(self, title, what, configs, sides, note=""):
        self.title, self.what, self.configs, self.sides = title, what, configs, sides
        self.note = note


STUDIES = {
    "frontends": Study(
        "Front ends compared: sliCQT against STFT",
        "front end",
        {
            "cqlog": ("(a) sliCQT cqlog (default) + xumx_matrix", VERDICT_NET),
            "tuned": ("(b) tuned sliCQT + xumx_matrix", ["transform=tuned", *VERDICT_NET]),
            "stft": ("(c) STFT 4096/1024 + xumx_matrix", ["transform=stft", *VERDICT_NET]),
            "umx": ("(d) STFT 4096/1024 + umx", ["transform=stft", "model=umx"]),
        },
        (("sliCQT", ("cqlog", "tuned")), ("STFT", ("stft", "umx"))),
        note=" The xumx_matrix runs pin `model.hidden=32 system.columns_per_second=140`, the "
        "network this verdict was measured with (the STFT caps the grid at its 43 frames/s).",
    ),
    "networks": Study(
        "Default network: width and time grid of xumx_matrix on the cqlog sliCQT",
        "network",
        {
            "h32": (
                "(a) xumx_matrix hidden 32, 140 columns/s",
                ["model.hidden=32", "system.columns_per_second=140"],
            ),
            "h16": (
                "(b) xumx_matrix hidden 16, 140 columns/s",
                ["model.hidden=16", "system.columns_per_second=140"],
            ),
            "g70": (
                "(c) xumx_matrix hidden 32, 70 columns/s",
                ["model.hidden=32", "system.columns_per_second=70"],
            ),
        },
        (("cheaper", ("h16", "g70")), ("full-size", ("h32",))),
    ),
}
CONFIGS = {name: c for study in STUDIES.values() for name, c in study.configs.items()}
LISTENERS = ("example_mild", "example_moderate")


def run_dir(name: str, seed: int) -> Path:
    return OUT / name / f"seed{seed}"


def train_command(name, seed, minutes, every, threads, overrides):
    mm, ss = divmod(int(round(minutes * 60)), 60)
    hh, mm = divmod(mm, 60)
    return [
        sys.executable,
        "-m",
        "xslicq.train",
        *CONFIGS[name][1],
        f"seed={seed}",
        f"data.seed={seed}",
        f"threads={threads}",
        "data.num_workers=1",
        "data.persistent_workers=false",
        "data.samples_per_track=16",
        f"trainer.max_time=00:{hh:02d}:{mm:02d}:{ss:02d}",
        "trainer.max_epochs=100000",
        "trainer.enable_progress_bar=false",
        "callbacks=step_checkpoints",
        "~callbacks.progress_bar",
        f"callbacks.step_checkpoint.every_n_train_steps={every}",
        "log_media=false",
        f"hydra.run.dir={run_dir(name, seed)}",
        *overrides,
    ]


def train_all(jobs, minutes, every, parallel, overrides) -> None:
    """Train every (name, seed) not trained yet, ``parallel`` at a time."""
    threads = max(1, (os.cpu_count() or 2) // parallel)
    todo = [(n, s) for n, s in jobs if not (run_dir(n, s) / "done.json").is_file()]
    running = []
    while todo or running:
        while todo and len(running) < parallel:
            name, seed = todo.pop(0)
            folder = run_dir(name, seed)
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            cmd = train_command(name, seed, minutes, every, threads, overrides)
            log = open(folder / "train.stdout", "w")
            print(f"training {name} seed {seed}: {' '.join(cmd[2:])}", flush=True)
            running.append(
                (
                    name,
                    seed,
                    time.time(),
                    subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT),
                    log,
                )
            )
        time.sleep(2.0)
        for item in list(running):
            name, seed, start, proc, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            if proc.returncode:
                raise SystemExit(f"training {name} seed {seed} failed; see {log.name}")
            steps = sorted(
                {int(p.stem[4:9]) for p in (run_dir(name, seed) / "checkpoints").glob("step*.ckpt")}
            )
            (run_dir(name, seed) / "done.json").write_text(
                json.dumps(
                    {
                        "seconds": time.time() - start,
                        "start_wall": start,
                        "threads": threads,
                        "step_checkpoints": steps,
                    }
                )
            )


def final_step(folder: Path) -> int:
    import torch

    state = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return int(state["global_step"])


def evaluate_checkpoint(ckpt: Path, out: Path, tracks, listeners, haaqi_seconds) -> dict:
    """museval and HAAQI of one checkpoint (cached in ``out/result.json``)."""
    cached = out / "result.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    from xslicq.cadenza import evaluate_cadenza
    from xslicq.evaluation import evaluate
    from xslicq.separator import Separator

    sep = Separator.from_checkpoint(str(ckpt))
    t0 = time.perf_counter()
    bss = evaluate(sep.separate, tracks, out / "museval", metric="museval", workers=2)
    t1 = time.perf_counter()
    haaqi = evaluate_cadenza(
        sep.separate, tracks, listeners, out / "haaqi", workers=2, seconds=haaqi_seconds
    )
    result = {
        "sdr": bss["mean"]["SDR"],
        "sdr_targets": {t: v["SDR"] for t, v in bss["per_target"].items()},
        "sir": bss["mean"]["SIR"],
        "sar": bss["mean"]["SAR"],
        "haaqi": haaqi["mean"],
        "museval_seconds": t1 - t0,
        "haaqi_seconds": time.perf_counter() - t1,
    }
    out.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result, indent=1))
    return result


def read_curve(folder: Path) -> list[tuple[int, float, float]]:
    """(step, seconds since the first event, val/sdr) of a run's TensorBoard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((folder / "tensorboard").glob("events.out.tfevents.*"))
    points = []
    for path in events:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if "val/sdr" not in acc.Tags().get("scalars", []):
            continue
        points += [(e.step, e.wall_time, e.value) for e in acc.Scalars("val/sdr")]
    if not points:
        return []
    start = json.loads((folder / "done.json").read_text())["start_wall"]
    return [(s, w - start, v) for s, w, v in sorted(points)]


def mean(xs):
    return sum(xs) / len(xs)


def spread(xs):
    return max(xs) - min(xs)


def plot(name: str, curves: dict, seeds, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(curves, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for name, runs in curves.items():
        for k, seed in enumerate(seeds):
            pts = runs.get(seed) or []
            if not pts:
                continue
            steps, secs, vals = zip(*pts)
            label = CONFIGS[name][0] if k == 0 else None
            style = "-" if k == 0 else "--"
            axes[0].plot(steps, vals, style, color=colours[name], label=label, lw=1.2)
            axes[1].plot([s / 60 for s in secs], vals, style, color=colours[name], lw=1.2)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("wall-clock minutes (training and validation)")
    axes[0].set_ylabel("validation SDR (dB, mean of the targets)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}: validation SDR (solid: first seed, dashed: second)")
    fig.tight_layout()
    save_figure(fig, name, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=list(STUDIES), default="frontends")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--every", type=int, default=10, help="steps between checkpoints")
    parser.add_argument("--haaqi-seconds", type=float, default=8.0)
    parser.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), help="a subset of the study's runs"
    )
    parser.add_argument("--fresh", action="store_true", help="train and evaluate again")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for every run")
    args = parse_args(parser)
    study = STUDIES[args.study]
    args.configs = args.configs or list(study.configs)
    foreign = [n for n in args.configs if n not in study.configs]
    if foreign:
        parser.error(f"--configs {' '.join(foreign)}: not runs of --study {args.study}")

    jobs = [(n, s) for s in args.seeds for n in args.configs]
    if args.fresh:  # only this invocation's runs: the other studies' stay
        for n, s in jobs:
            shutil.rmtree(run_dir(n, s), ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    train_all(jobs, args.minutes, args.every, args.parallel, args.overrides)

    import torch
    from hydra import compose, initialize_config_dir

    from xslicq.cadenza import load_listeners
    from xslicq.evaluation import load_split
    from xslicq.models import count_parameters
    from xslicq.separator import Separator

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "evaluate", overrides=[o for o in args.overrides if o.startswith(("data", "paths"))]
        )
    tracks = load_split(cfg.data, "test")
    listeners = [x for x in load_listeners() if x.id in LISTENERS]
    torch.set_num_threads(2)

    steps = {(n, s): final_step(run_dir(n, s)) for n, s in jobs}
    common = min(steps.values()) // args.every * args.every
    if common < args.every:
        raise SystemExit(f"a run made fewer than {args.every} steps: {steps}")
    results, info = {}, {}
    for n, s in jobs:
        folder = run_dir(n, s)
        for point, ckpt in (
            ("time", folder / "checkpoints" / "last.ckpt"),
            ("steps", folder / "checkpoints" / f"step{common:05d}.ckpt"),
        ):
            print(f"evaluating {n} seed {s} at equal {point}: {ckpt.name}", flush=True)
            results[(n, s, point)] = evaluate_checkpoint(
                ckpt, folder / f"eval-{point}-{ckpt.stem}", tracks, listeners, args.haaqi_seconds
            )
        done = json.loads((folder / "done.json").read_text())
        system = Separator.from_checkpoint(str(folder / "checkpoints" / "last.ckpt")).system
        info[(n, s)] = {
            "steps": steps[(n, s)],
            "seconds": done["seconds"],
            "params": count_parameters(system.model),
            "grid": system.columns_per_second,
        }
    curves = {n: {s: read_curve(run_dir(n, s)) for s in args.seeds} for n in args.configs}
    plot(f"{args.study}.png", curves, args.seeds, study.title)

    # --------------------------------------------------------------- the report
    def agg(name, point, key):
        return [results[(name, s, point)][key] for s in args.seeds]

    def cell(values, digits=2):
        return (
            f"{mean(values):.{digits}f} ± {spread(values) / 2:.{digits}f}"
            if len(values) > 1
            else f"{values[0]:.{digits}f}"
        )

    def verdict(point: str) -> str:
        by = {n: mean(agg(n, point, "sdr")) for n in args.configs}
        (name_a, group_a), (name_b, group_b) = study.sides
        best_a = max((n for n in args.configs if n in group_a), key=by.get, default=None)
        best_b = max((n for n in args.configs if n in group_b), key=by.get, default=None)
        winner = max(by, key=by.get)
        text = (
            f"At equal {'wall-clock' if point == 'time' else 'training steps'}, "
            f"{CONFIGS[winner][0]} separates best ({by[winner]:.2f} dB mean museval SDR "
            f"over {len(args.seeds)} seeds)."
        )
        if best_a and best_b:
            diff = by[best_a] - by[best_b]
            noise = max(spread(agg(best_a, point, "sdr")), spread(agg(best_b, point, "sdr")))
            side = name_a if diff > 0 else name_b
            text += (
                f" The best {name_a} {study.what} ({CONFIGS[best_a][0]}) is "
                f"{diff:+.2f} dB against the best {name_b} one ({CONFIGS[best_b][0]}): "
                f"the {side} wins, "
            )
            if len(args.seeds) < 2:
                text += "with one seed only (no seed-to-seed spread measured)."
            else:
                text += (
                    ("by more" if abs(diff) > noise else "but by less")
                    + f" than the seed-to-seed spread ({noise:.2f} dB, the larger range "
                    "of the two over the seeds)."
                )
            hq = mean(agg(best_a, point, "haaqi")) - mean(agg(best_b, point, "haaqi"))
            text += f" HAAQI differs by {hq:+.3f} between the same two."
        return text

    # from the runs' records and the cached evaluations, so a rerun that reuses them reports
    # the same cost as the run that produced them
    records = [json.loads((run_dir(n, s) / "done.json").read_text()) for n, s in jobs]
    train_minutes = (
        max(r["start_wall"] + r["seconds"] for r in records) - min(r["start_wall"] for r in records)
    ) / 60
    eval_minutes = sum(r["museval_seconds"] + r["haaqi_seconds"] for r in results.values()) / 60
    lines = [
        f"# {study.title}",
        "",
        f"Produced by `.venv/bin/python experiments/compare_frontends.py --study {args.study} "
        f"--minutes "
        f"{args.minutes:g} --seeds {' '.join(map(str, args.seeds))} --parallel {args.parallel} "
        f"--every {args.every} --haaqi-seconds {args.haaqi_seconds:g}"
        f"{' ' + ' '.join(args.overrides) if args.overrides else ''}` on {platform.machine()} "
        f"({os.cpu_count()} CPU cores, torch {torch.__version__}): {train_minutes:.0f} minutes of "
        f"training ({args.parallel} runs at a time) and {eval_minutes:.0f} minutes of "
        "evaluation (museval and HAAQI, one checkpoint at a time).",
        "",
        f"Every run: `python -m xslicq.train` with the run's groups, the data config's defaults "
        f"(`{cfg.data.name}`, batches of {cfg.data.batch_size} x {cfg.data.seq_dur:g} s), "
        f"{args.minutes:g} minutes of wall-clock (`trainer.max_time`, validation included), "
        f"{args.parallel} runs at a time with the CPU threads split between them. "
        f"Equal wall-clock: the model at the end of the budget; equal steps: the checkpoint at "
        f"step {common}, the largest multiple of {args.every} that every run reached. Test "
        f"split: {len(tracks)} tracks ({', '.join(t.name for t in tracks)}). SDR: museval "
        f"BSSEval v4, median over 1 s frames and over tracks, mean of the four targets (dB). "
        f"HAAQI: the Cadenza CAD1 pipeline (NAL-R, soft-clipped remix) for the listeners "
        f"{', '.join(LISTENERS)}, on the first {args.haaqi_seconds:g} s of every song, mean "
        f"over songs, listeners, stems and ears (0-1). Values are mean ± half the range over "
        f"the seeds {', '.join(map(str, args.seeds))}.{study.note}",
        "",
        "**Verdict.** " + verdict("time") + " " + verdict("steps"),
        "",
        f"![validation curves]({args.study}.png)",
        "",
        "| front end + network | parameters | grid (columns/s) | steps in the budget | "
        "budget s per step | SDR, equal time | SDR, equal steps | HAAQI, equal time | "
        "HAAQI, equal steps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.configs:
        runs = [info[(n, s)] for s in args.seeds]
        lines.append(
            f"| {CONFIGS[n][0]} | {runs[0]['params']:,} | {runs[0]['grid']:.0f} | "
            f"{cell([r['steps'] for r in runs], 0)} | "
            f"{cell([args.minutes * 60 / r['steps'] for r in runs], 2)} | "
            f"**{cell(agg(n, 'time', 'sdr'))}** | {cell(agg(n, 'steps', 'sdr'))} | "
            f"{cell(agg(n, 'time', 'haaqi'), 3)} | {cell(agg(n, 'steps', 'haaqi'), 3)} |"
        )
    targets = list(results[(jobs[0][0], jobs[0][1], "time")]["sdr_targets"])
    lines += [
        "",
        "## SDR per target at equal wall-clock (museval, dB)",
        "",
        "| front end + network | " + " | ".join(targets) + " | SIR | SAR |",
        "|---|" + "---:|" * (len(targets) + 2),
    ]
    for n in args.configs:
        lines.append(
            f"| {CONFIGS[n][0]} | "
            + " | ".join(
                cell([results[(n, s, "time")]["sdr_targets"][t] for s in args.seeds])
                for t in targets
            )
            + f" | {cell(agg(n, 'time', 'sir'))} | "
            f"{cell(agg(n, 'time', 'sar'))} |"
        )
    lines += [
        "",
        "## Runs",
        "",
        "| run | steps | training s | SDR time | SDR steps | HAAQI time | HAAQI steps |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, s in jobs:
        r = info[(n, s)]
        lines.append(
            f"| {n} seed {s} | {r['steps']} | {r['seconds']:.0f} | "
            f"{results[(n, s, 'time')]['sdr']:.2f} | "
            f"{results[(n, s, 'steps')]['sdr']:.2f} | "
            f"{results[(n, s, 'time')]['haaqi']:.3f} | "
            f"{results[(n, s, 'steps')]['haaqi']:.3f} |"
        )
    lines.append("")
    write_results(f"{args.study}.md", lines)


if __name__ == "__main__":
    main()
