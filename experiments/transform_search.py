"""The transform search, end to end: sweep, Pareto front, tuned transform, test-split check.

    .venv/bin/python experiments/transform_search.py [--trials 400] [--workers 2]
        [--report-only] [--fresh] [--out DIR | --record]
        [hydra overrides for the data, e.g. data=musdb data.root=...]

1. Runs ``python -m xslicq.oracle -m hparams_search=transform_oracle`` in ``--workers``
   processes that share one SQLite study (``outputs/transform_search/study.sqlite``; an
   existing study is continued up to ``--trials``, ``--fresh`` starts again), scoring the
   oracles on the validation tracks.
2. Scores the STFT family (n_fft 1024-8192, hop n_fft/4 and n_fft/2) and the default
   sliCQT of every scale the same way, on the validation and the test tracks.
3. Chooses the tuned point: the best validation mixture-phase oracle SDR at no more than
   2x the coefficients per second of the STFT 4096/1024, and writes it to ``tuned.yaml``
   in ``--out``, or with ``--record`` to ``conf/transform/tuned.yaml`` (the ``transform=tuned``
   option).
4. Scores every Pareto-optimal point and the tuned one on the test tracks (which the search
   never saw) and runs museval (SDR, SIR, SAR, ISR) on the tuned transform and the two
   baselines there.
5. Writes ``transform_search.md`` (tables, Optuna's parameter importances, the verdict) and
   ``transform_search.png`` (the front with the STFT family on the same axes) to ``--out``
   (default outputs/experiments/), or with ``--record`` to experiments/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

from benchutil import parse_args, save_figure, shown, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "outputs" / "transform_search"
KINDS = ("mixphase", "irm")
DIRECTIONS = ("maximize", "minimize")
STFT_FAMILY = [(n, n // d) for n in (1024, 2048, 4096, 8192) for d in (4, 2)]
BASELINE = (4096, 1024)
SCALE_CONFIGS = ("cqlog", "oct", "mel", "bark", "vqlog")
BUDGET = 2.0  # coefficients per second, relative to the STFT 4096/1024


def run_sweep(trials: int, workers: int, storage: str, overrides: list[str]) -> float:
    """The search through the real CLI, ``workers`` processes on one study; returns seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    started = time.perf_counter()
    procs = []
    for w in range(workers):
        cmd = [
            sys.executable,
            "-m",
            "xslicq.oracle",
            "-m",
            "hparams_search=transform_oracle",
            f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweep.dir={OUT / f'sweep-{w}'}",
            "threads=1",
            *overrides,
        ]
        log = open(OUT / f"worker-{w}.log", "w")
        procs.append(
            (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        )
        time.sleep(2.0)  # the first worker creates the study
    for proc, log in procs:
        proc.wait()
        log.close()
        if proc.returncode:
            raise SystemExit(f"a search worker failed (exit {proc.returncode}); see {log.name}")
    return time.perf_counter() - started


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("oracle", overrides=overrides, return_hydra_config=True)


def score(transform, tracks, metric="sdr", workers=0):
    from xslicq.oracle import run_oracles

    return run_oracles(transform, tracks, KINDS, metric, workers, name="search")


def fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def describe(cfg: dict) -> str:
    per = "/oct" if cfg["scale"] == "oct" else ""
    gamma = f", gamma {cfg['gamma']:.0f} Hz" if cfg["scale"] == "vqlog" else ""
    return (
        f"{cfg['scale']} {cfg['bins']}{per} bins, {cfg['fmin']:.1f}-{cfg['fmax']:.0f} Hz, "
        f"sllen {cfg['sllen']} ({cfg['sllen'] / cfg['sample_rate']:.2f} s), "
        f"trlen {cfg['trlen']}{gamma}"
    )


def plot(name: str, trials, front, stft_points, scale_points, tuned, budget_cps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(SCALE_CONFIGS, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for scale in SCALE_CONFIGS:
        pts = [
            (t.values[1], t.values[0])
            for t in trials
            if t.user_attrs["transform"]["scale"] == scale
        ]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=12, alpha=0.45, color=colours[scale], label=f"trials: {scale}")
    fx, fy = zip(*sorted((t.values[1], t.values[0]) for t in front))
    ax.step(fx, fy, where="post", color="black", lw=1.2, label="Pareto front (validation)")
    for (n, h), (cps, sdr) in stft_points.items():
        ax.scatter(
            [cps],
            [sdr],
            marker="s",
            s=40,
            color="black" if (n, h) == BASELINE else "grey",
            zorder=3,
        )
        ax.annotate(
            f"STFT {n}/{h}", (cps, sdr), fontsize=7, xytext=(4, -9), textcoords="offset points"
        )
    for scale, (cps, sdr) in scale_points.items():
        ax.scatter(
            [cps], [sdr], marker="D", s=36, edgecolor="black", color=colours[scale], zorder=3
        )
        ax.annotate(
            f"{scale} default", (cps, sdr), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    ax.scatter(
        [tuned[0]],
        [tuned[1]],
        marker="*",
        s=260,
        color="gold",
        edgecolor="black",
        zorder=4,
        label="the tuned point (tuned.yaml)",
    )
    ax.axvline(
        budget_cps,
        color="red",
        ls="--",
        lw=1,
        label=f"{BUDGET:g}x the coefficients of STFT {BASELINE[0]}/{BASELINE[1]}",
    )
    ax.set_xscale("log")
    ax.set_xlabel("complex coefficients per second of audio (per channel)")
    ax.set_ylabel("mixture-phase oracle SDR, validation tracks (dB)")
    ax.set_title("Transform search: oracle SDR against size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, name, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report-only", action="store_true", help="use the stored study")
    parser.add_argument("--fresh", action="store_true", help="start a new study")
    parser.add_argument("--museval-workers", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="hydra overrides (data=..., data.root=...)")
    args = parse_args(parser)
    # the tuned transform: a config option only when recording
    tuned_path = (ROOT / "conf" / "transform" if args.record else args.out) / "tuned.yaml"

    import hydra
    import optuna
    import torch
    from omegaconf import OmegaConf

    from xslicq.evaluation import load_split
    from xslicq.search import tuned_yaml, write_text_atomic
    from xslicq.transform import STFT

    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / "study.sqlite"
    if args.fresh and not args.report_only:
        for f in (db, Path(str(db) + ".lock")):
            f.unlink(missing_ok=True)
    storage = f"sqlite:///{db}"
    started = time.perf_counter()
    record = OUT / "sweep.json"  # what the search cost, for later reports
    if not args.report_only:
        seconds = run_sweep(args.trials, args.workers, storage, args.overrides)
        record.write_text(
            json.dumps({"seconds": seconds, "trials": args.trials, "workers": args.workers})
        )
    sweep = json.loads(record.read_text()) if record.is_file() else None

    cfg = compose(["hparams_search=transform_oracle", *args.overrides])
    from xslicq.sweeper import latest_study_name

    study_name = latest_study_name(storage, cfg.hydra.sweeper.study_name)  # + space digest
    if study_name is None:
        raise SystemExit(f"no study {cfg.hydra.sweeper.study_name}-<digest> in {storage}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    all_trials = study.get_trials(deepcopy=False)
    trials = [t for t in all_trials if t.state.name == "COMPLETE"]
    failed = [t for t in all_trials if t.state.name == "FAIL"]
    front = study.best_trials
    torch.set_num_threads(2)
    valid = load_split(cfg.data, "valid")
    test = load_split(cfg.data, "test")

    # ------------------------------------------------------------ references
    stft = {}
    for n, h in STFT_FAMILY:
        t = STFT(n_fft=n, hop_length=h, sample_rate=int(cfg.data.sample_rate))
        stft[(n, h)] = {"cps": t.coefs_per_second, "valid": score(t, valid), "test": score(t, test)}
    scales = {}
    for name in SCALE_CONFIGS:
        t = hydra.utils.instantiate(OmegaConf.load(ROOT / "conf" / "transform" / f"{name}.yaml"))
        scales[name] = {
            "cps": t.coefs_per_second,
            "sllen": t.sllen,
            "bins": t.bins,
            "valid": score(t, valid),
            "test": score(t, test),
        }
    base_cps = stft[BASELINE]["cps"]
    budget_cps = BUDGET * base_cps

    # ------------------------------------------------------------ the choice
    eligible = [t for t in trials if t.values[1] <= budget_cps]
    chosen = max(eligible, key=lambda t: t.values[0])
    tuned_cfg = dict(chosen.user_attrs["transform"])
    tuned = hydra.utils.instantiate(tuned_cfg)
    tuned_test = score(tuned, test)
    gain_valid = chosen.values[0] - stft[BASELINE]["valid"]["mixphase"]["mean"]["SDR"]
    gain_test = (
        tuned_test["mixphase"]["mean"]["SDR"] - stft[BASELINE]["test"]["mixphase"]["mean"]["SDR"]
    )
    tuned_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        tuned_path,
        tuned_yaml(
            tuned_cfg,
            [
                "The tuned sliCQT: written by experiments/transform_search.py "
                "(do not edit by hand).",
                f"Trial {chosen.number} of the Optuna study {study_name!r} "
                f"({len(all_trials)} trials):",
                "the best mixture-phase oracle SDR on the validation tracks at no more than "
                f"{BUDGET:g}x",
                f"the coefficients per second of the STFT {BASELINE[0]}/{BASELINE[1]}.",
                f"Validation: {chosen.values[0]:.2f} dB ({gain_valid:+.2f} dB over that STFT); "
                "test tracks, unseen by the search:",
                f"{tuned_test['mixphase']['mean']['SDR']:.2f} dB ({gain_test:+.2f} dB). "
                f"{chosen.values[1]:,.0f} coefficients per second "
                f"({chosen.values[1] / base_cps:.2f}x that STFT).",
                "Details: experiments/results/transform_search.md",
            ],
        ),
    )

    # ------------------------------------------------------- front on the test split
    front_rows = []
    for t in sorted(front, key=lambda t: t.values[1]):
        tr = hydra.utils.instantiate(t.user_attrs["transform"])
        front_rows.append((t, score(tr, test) if t.number != chosen.number else tuned_test))

    # ------------------------------------------------------------ museval on test
    museval_rows = []
    museval_seconds = time.perf_counter()
    for label, transform in [
        ("tuned", tuned),
        (
            "sliCQT cqlog (default)",
            hydra.utils.instantiate(OmegaConf.load(ROOT / "conf/transform/cqlog.yaml")),
        ),
        (
            f"STFT {BASELINE[0]}/{BASELINE[1]}",
            STFT(*BASELINE, sample_rate=int(cfg.data.sample_rate)),
        ),
    ]:
        museval_rows.append((label, score(transform, test, "museval", args.museval_workers)))
    museval_seconds = time.perf_counter() - museval_seconds

    # ------------------------------------------------------------ importances
    importances = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, objective in enumerate(("oracle SDR", "coefficients per second")):
            # optuna 2.10's fANOVA evaluator breaks on scikit-learn 1.9's tree layout
            importances[objective] = optuna.importance.get_param_importances(
                study,
                target=lambda t, k=k: t.values[k],
                evaluator=optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0),
            )

    # ------------------------------------------------------------ picture
    plot(
        "transform_search.png",
        trials,
        front,
        {k: (v["cps"], v["valid"]["mixphase"]["mean"]["SDR"]) for k, v in stft.items()},
        {k: (v["cps"], v["valid"]["mixphase"]["mean"]["SDR"]) for k, v in scales.items()},
        (chosen.values[1], chosen.values[0]),
        budget_cps,
    )

    # ------------------------------------------------------------ the report
    total = time.perf_counter() - started
    checkpoints = sorted(
        {n for n in (25, 50, 100, 200, 400, 800) if n < len(all_trials)} | {len(all_trials)}
    )
    reasons: dict[str, int] = {}
    for t in failed:
        key = t.user_attrs.get("fail_reason", "no reason recorded").split(" needs slices")[0]
        key = (
            "InvalidTransform: suggested slice longer than a training segment"
            if "InvalidTransform" in key
            else key
        )
        reasons[key] = reasons.get(key, 0) + 1
    sources = list(next(iter(stft.values()))["test"]["mixphase"]["targets"])

    def row(label, cps, s_valid, s_test):
        return (
            f"| {label} | {cps:,.0f} | {cps / base_cps:.2f} | "
            + (
                f"{fmt(s_valid['mixphase']['mean']['SDR'])} | "
                f"{fmt(s_valid['irm']['mean']['SDR'])} | "
                if s_valid
                else "- | - | "
            )
            + f"**{fmt(s_test['mixphase']['mean']['SDR'])}** | "
            + f"{fmt(s_test['irm']['mean']['SDR'])} | "
            + " | ".join(fmt(s_test["mixphase"]["per_target"][s]["SDR"]) for s in sources)
            + " |"
        )

    head = (
        "| transform | coefs/s | x STFT 4096/1024 | mixphase valid | IRM valid | "
        "**mixphase test** | IRM test | "
        + " | ".join(f"{s} (mixphase test)" for s in sources)
        + " |"
    )
    sep = "|---|" + "---:|" * (6 + len(sources))
    base_test = stft[BASELINE]["test"]["mixphase"]["mean"]["SDR"]
    best_stft = max(stft.items(), key=lambda kv: kv[1]["test"]["mixphase"]["mean"]["SDR"])
    n_tracks = (len(valid), len(test))
    tuned_vs_best = (
        tuned_test["mixphase"]["mean"]["SDR"] - best_stft[1]["test"]["mixphase"]["mean"]["SDR"]
    )
    verdict = (
        f"**Verdict on the test tracks (unseen by the search):** the tuned sliCQT reaches "
        f"{tuned_test['mixphase']['mean']['SDR']:.2f} dB mixture-phase oracle SDR against "
        f"{base_test:.2f} dB for the STFT {BASELINE[0]}/{BASELINE[1]}: **{gain_test:+.2f} dB** "
        f"(target: at least +0.5 dB; {'met' if gain_test >= 0.5 else 'NOT met'}), with "
        f"{chosen.values[1] / base_cps:.2f}x its coefficients per second. The best STFT of the "
        f"family on the test tracks is {best_stft[0][0]}/{best_stft[0][1]} with "
        f"{best_stft[1]['test']['mixphase']['mean']['SDR']:.2f} dB "
        f"({tuned_vs_best:+.2f}"
        f" dB for the tuned sliCQT). The default cqlog sliCQT scores "
        f"{scales['cqlog']['test']['mixphase']['mean']['SDR']:.2f} dB "
        f"({scales['cqlog']['test']['mixphase']['mean']['SDR'] - base_test:+.2f} dB against "
        f"that STFT)."
    )
    lines = [
        "# Transform search: oracle SDR against coefficients per second",
        "",
        f"Produced by `.venv/bin/python experiments/transform_search.py --trials "
        f"{sweep['trials'] if sweep else args.trials} --workers "
        f"{sweep['workers'] if sweep else args.workers}"
        f"{' ' + ' '.join(args.overrides) if args.overrides else ''}` "
        f"on {platform.machine()} ({os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"optuna {optuna.__version__}); the report took {total / 60:.1f} minutes"
        + (
            f"; the search ran {sweep['trials']} trials in {sweep['seconds'] / 60:.1f} minutes "
            f"in {sweep['workers']} worker processes sharing one SQLite study"
            if sweep
            else ""
        )
        + ".",
        "",
        f"Data: `{cfg.data.name}` ({n_tracks[0]} validation tracks for the search, "
        f"{n_tracks[1]} test tracks for the check; the data config's splits). Search: "
        f"`python -m xslicq.oracle -m hparams_search=transform_oracle` (Optuna "
        f"{str(cfg.hydra.sweeper.sampler._target_).rsplit('.', 1)[-1]}, two objectives: the "
        "mean mixture-phase oracle SDR "
        "over the four targets, maximised, and the complex coefficients per second of audio "
        "and channel, minimised). Space: scale (cqlog, oct, mel, bark, vqlog), bins 32-2048 "
        "(log; for oct spread over the band; capped at the most that fit the longest slice), "
        "fmin 10-130 Hz (log), fmax 1-22.05 kHz (log), slice "
        "length from the scale's suggested one up to a 2 s training segment (log), transition "
        "5-45% of the slice, vqlog gamma 0-100 Hz. SDR is museval's BSSEval v4 SDR (computed "
        "directly, `metric=sdr`, identical to museval's to float precision): median over 1 s "
        "frames, median over tracks, mean of the four targets, dB.",
        "",
        f"Trials: {len(all_trials)} in all, {len(trials)} complete, {len(failed)} failed"
        + (
            " (" + "; ".join(f"{n}x {r}" for r, n in sorted(reasons.items())) + ")"
            if reasons
            else ""
        )
        + f"; {len(front)} on the Pareto front.",
        "",
        verdict,
        "",
        "![Pareto front](transform_search.png)",
        "",
        f"## The tuned point (`{shown(tuned_path)}`, trial {chosen.number})",
        "",
        f"Rule: the best validation mixture-phase SDR among the trials with at most {BUDGET:g}x "
        f"the coefficients per second of the STFT {BASELINE[0]}/{BASELINE[1]} "
        f"({budget_cps:,.0f}).",
        "",
        f"`{describe(tuned_cfg)}`",
        "",
        "## Baselines and the tuned point (validation and test tracks)",
        "",
        head,
        sep,
    ]
    lines.append(
        row(
            "**tuned**",
            chosen.values[1],
            {
                "mixphase": {"mean": {"SDR": chosen.values[0]}},
                "irm": {"mean": {"SDR": chosen.user_attrs["sdr"]["irm"]["mean"]}},
            },
            tuned_test,
        )
    )
    for (n, h), v in stft.items():
        lines.append(row(f"STFT {n}/{h}", v["cps"], v["valid"], v["test"]))
    for name, v in scales.items():
        lines.append(
            row(
                f"sliCQT {name} default ({v['bins']} bins, sllen {v['sllen']})",
                v["cps"],
                v["valid"],
                v["test"],
            )
        )
    lines += [
        "",
        "## The Pareto front (validation objectives; test scores of the same points)",
        "",
        "| trial | transform | coefs/s | x STFT | mixphase valid | mixphase test | IRM test |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for t, s in front_rows:
        lines.append(
            f"| {t.number}{' (tuned)' if t.number == chosen.number else ''} | "
            f"{describe(t.user_attrs['transform'])} | {t.values[1]:,.0f} | "
            f"{t.values[1] / base_cps:.2f} | {t.values[0]:.2f} | "
            f"{fmt(s['mixphase']['mean']['SDR'])} | {fmt(s['irm']['mean']['SDR'])} |"
        )
    lines += [
        "",
        "## museval on the test tracks (BSSEval v4: SDR, SIR, SAR, ISR)",
        "",
        f"museval ran in {args.museval_workers} processes ({museval_seconds / 60:.1f} "
        "minutes); its SDR equals the `sdr` metric above.",
        "",
        "| transform | oracle | SDR | SIR | SAR | ISR |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, summaries in museval_rows:
        for kind in KINDS:
            m = summaries[kind]["mean"]
            lines.append(
                f"| {label} | {kind} | {fmt(m['SDR'])} | {fmt(m['SIR'])} | "
                f"{fmt(m['SAR'])} | {fmt(m['ISR'])} |"
            )
    lines += [
        "",
        "## Parameter importances",
        "",
        "Optuna's mean-decrease-impurity importances (a random forest fitted to the "
        "complete trials; its fANOVA evaluator does not run with scikit-learn 1.9). "
        "Each column sums to 1.",
        "",
        "| parameter | for oracle SDR | for coefficients per second |",
        "|---|---:|---:|",
    ]
    names = sorted(importances["oracle SDR"], key=lambda p: -importances["oracle SDR"][p])
    for p in names:
        lines.append(
            f"| {p} | {importances['oracle SDR'][p]:.3f} | "
            f"{importances['coefficients per second'].get(p, float('nan')):.3f} |"
        )
    lines += [
        "",
        "## Convergence (best validation SDR within the budget after n trials)",
        "",
        "| trials | " + " | ".join(str(n) for n in checkpoints) + " |",
        "|---|" + "---:|" * len(checkpoints),
        "| best mixphase valid (dB) | "
        + " | ".join(
            fmt(
                max(
                    (
                        t.values[0]
                        for t in all_trials[:n]
                        if t.state.name == "COMPLETE" and t.values[1] <= budget_cps
                    ),
                    default=float("nan"),
                )
            )
            for n in checkpoints
        )
        + " |",
    ]
    lines += [
        "",
        "## By scale (best complete trial within the budget)",
        "",
        "| scale | trials | best mixphase valid | its transform |",
        "|---|---:|---:|---|",
    ]
    for scale in SCALE_CONFIGS:
        mine = [t for t in eligible if t.user_attrs["transform"]["scale"] == scale]
        if mine:
            best = max(mine, key=lambda t: t.values[0])
            lines.append(
                f"| {scale} | {sum(t.user_attrs['transform']['scale'] == scale for t in trials)} "
                f"| {best.values[0]:.2f} | {describe(best.user_attrs['transform'])} |"
            )
    lines.append("")
    write_results("transform_search.md", lines)


if __name__ == "__main__":
    main()
