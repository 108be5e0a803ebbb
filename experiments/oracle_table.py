"""Oracle SDR per transform: STFT 4096/1024 vs the sliCQT on every scale (synthetic test split).

    .venv/bin/python experiments/oracle_table.py [--metrics museval] [--workers 2]
        [--out DIR | --record] [hydra overrides of the data, e.g. data=musdb data.root=...]

Computes the mixture-phase and IRM oracles of every transform config in conf/transform
(stft, cqlog = the default sliCQT, oct, mel, bark, vqlog at their config defaults, and
tuned, the transform search's choice) and of the STFT 8192/2048 (the best STFT of the
transform search's family) on the test split of the data config (the default
synthetic set unless overridden; the transform search never sees it) with
:func:`xslicq.oracle.oracle_estimates`, scores them with
:func:`xslicq.evaluation.score_tracks` (each metric in ``--metrics``), and writes oracle.md
to ``--out`` (default outputs/experiments/), or with ``--record`` to experiments/results/.
The mixture used as every target's estimate is scored too,
as the floor.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from benchutil import parse_args, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRANSFORMS = ("stft", "stft 8192/2048", "cqlog", "oct", "mel", "bark", "vqlog", "tuned")
"""Configs in conf/transform, and the best STFT of the transform search's family."""
KINDS = ("mixphase", "irm")
KIND_TITLES = {
    "mixphase": "Mixture-phase oracle (true magnitude, mixture phase)",
    "irm": "Ideal ratio mask (|S_j| / sum_k |S_k|)",
}
METRIC_TITLES = {
    "museval": "museval BSSEval v4 SDR",
    "sdr": "BSSEval v4 SDR computed directly",
    "fast_bss_eval": "fast_bss_eval sources SDR (not museval's SDR)",
}
"""The metrics of xslicq.evaluation.METRICS and their table titles."""


def describe(name: str, transform) -> str:
    if name == "stft":
        return f"STFT {transform.n_fft}/{transform.hop_length}"
    if name == "tuned":
        return (
            f"**tuned**: sliCQT {transform.scale_name}, {transform.bins} bins"
            f"{' per octave' if transform.scale_name == 'oct' else ''}, "
            f"{transform.fmin:.1f}-{transform.fmax:.0f} Hz, sllen {transform.sllen}"
        )
    default = " (default)" if name == "cqlog" else ""
    per = " per octave" if name == "oct" else ""
    return f"sliCQT {name}{default}, {transform.bins} bins{per}, sllen {transform.sllen}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=["museval"], choices=list(METRIC_TITLES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="hydra overrides of the data config")
    args = parse_args(parser)

    import hydra
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from xslicq.data import SOURCES
    from xslicq.data.tracks import read
    from xslicq.evaluation import load_split, score_tracks, summarize
    from xslicq.oracle import oracle_estimates
    from xslicq.transform import STFT

    started = time.perf_counter()
    rows = {}  # (metric, kind) -> [(label, summary)]
    timing = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("oracle", overrides=args.overrides)
    names = [
        n
        for n in TRANSFORMS
        if n.startswith("stft ") or (ROOT / "conf" / "transform" / f"{n}.yaml").is_file()
    ]
    tracks = load_split(cfg.data, "test")
    audio = {t.name: {s: read(t, s) for s in ("mixture",) + SOURCES} for t in tracks}

    def score(label, estimates):
        """Score ``{kind: {track: {target: estimate}}}``: one worker pool per metric."""
        for metric in args.metrics:
            jobs = ((kind, t, estimates[kind][t.name]) for kind in KINDS for t in tracks)
            t0 = time.perf_counter()
            result = score_tracks(
                jobs, len(KINDS) * len(tracks), metric, args.workers, desc=f"{label} ({metric})"
            )
            timing[(label, metric)] = time.perf_counter() - t0
            for kind in KINDS:
                rows.setdefault((metric, kind), []).append(
                    (label, summarize(result[kind], metric, SOURCES))
                )

    mixture = {t.name: {s: audio[t.name]["mixture"] for s in SOURCES} for t in tracks}
    score("mixture as estimate", {kind: mixture for kind in KINDS})
    for name in names:
        if name.startswith("stft "):
            n_fft, hop = map(int, name.split()[1].split("/"))
            transform = STFT(n_fft=n_fft, hop_length=hop, sample_rate=int(cfg.data.sample_rate))
            name = "stft"
        else:
            transform = hydra.utils.instantiate(
                OmegaConf.load(ROOT / "conf" / "transform" / f"{name}.yaml")
            )
        label = describe(name, transform)
        t0 = time.perf_counter()
        estimates = {
            t.name: oracle_estimates(
                transform,
                audio[t.name]["mixture"],
                {s: audio[t.name][s] for s in SOURCES},
                KINDS,
                SOURCES,
            )
            for t in tracks
        }
        timing[(label, "transform")] = time.perf_counter() - t0
        score(label, {kind: {k: v[kind] for k, v in estimates.items()} for kind in KINDS})
        print(
            f"{label}: "
            + ", ".join(
                f"{m}/{k} mean SDR {rows[(m, k)][-1][1]['mean']['SDR']:.2f}"
                for m in args.metrics
                for k in KINDS
            ),
            flush=True,
        )
    track_names = [t.name for t in tracks]

    total = time.perf_counter() - started
    lines = [
        "# Oracle SDR per transform (synthetic test split)",
        "",
        f"Produced by `.venv/bin/python experiments/oracle_table.py --metrics "
        f"{' '.join(args.metrics)} --workers {args.workers}` on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}) in {total / 60:.1f} minutes.",
        "",
        f"Data: the test split of `{cfg.data.name}` ({len(track_names)} tracks: "
        f"{', '.join(track_names)}). Transforms: the configs in `conf/transform/` at their "
        "defaults; **tuned** is `conf/transform/tuned.yaml`, chosen by the transform search "
        "on the validation split (experiments/results/transform_search.md). Oracles "
        "(`xslicq.oracle`): *mixture phase* = the true magnitude |S_j| of each source with "
        "the mixture's phase; *IRM* = the mask |S_j| / sum_k |S_k| applied to the mixture's "
        "coefficients; both inverted with the transform's exact inverse. "
        "*Mixture as estimate* scores the unprocessed mixture for every target (the floor). "
        "SDR in dB: median over 1 s frames per track, then median over the tracks; `mean` is "
        "the mean of the four targets.",
        "",
    ]
    if "museval" in args.metrics:
        lines += [
            "The museval tables are BSSEval v4 as reported in SiSEC 2018 and the sliCQT papers.",
            "",
        ]
    if "fast_bss_eval" in args.metrics:
        lines += [
            "The fast_bss_eval tables use fast_bss_eval's sources SDR (512-tap filter), "
            "a different quantity from museval's SDR: it reads higher when the error is "
            "correlated with the source and lower when the estimate's gain is off "
            "(compare the two; see `xslicq.evaluation.bsseval`).",
            "",
        ]
    lines += [
        "Reference points from the field, given as context and **not our results** "
        "(MUSDB18-HQ, museval, mixture-phase oracle, mean of the four targets): 6.15 dB for "
        "the STFT with a 4096-sample window and 7.93 dB for a Bark-scale sliCQT with 262 "
        "bins. The synthetic songs are simpler than real recordings (General MIDI renders, "
        f"no reverb, {len(track_names)} tracks), so absolute values are not comparable with "
        "those.",
        "",
        "Findings (computed from the tables below):",
        "",
    ]
    for metric in args.metrics:
        for kind in KINDS:
            ranked = sorted(rows[(metric, kind)][1:], key=lambda r: -r[1]["mean"]["SDR"])
            lines.append(
                f"- {kind}, {metric}: best mean SDR {ranked[0][0]} "
                f"({ranked[0][1]['mean']['SDR']:.2f} dB), worst {ranked[-1][0]} "
                f"({ranked[-1][1]['mean']['SDR']:.2f} dB)."
            )
    if {"museval", "fast_bss_eval"} <= set(args.metrics):
        diffs = [
            f[1]["mean"]["SDR"] - m[1]["mean"]["SDR"]
            for kind in KINDS
            for m, f in zip(rows[("museval", kind)][1:], rows[("fast_bss_eval", kind)][1:])
        ]
        lines.append(
            f"- fast_bss_eval - museval mean SDR of the oracle estimates: "
            f"{min(diffs):+.2f} to {max(diffs):+.2f} dB: masked estimates are "
            "filtered versions of the sources, which fast_bss_eval's distortion filter "
            "partly forgives (see `xslicq.evaluation.bsseval`). Use museval for "
            "numbers to compare."
        )
    lines.append("")
    for metric in args.metrics:
        for kind in KINDS:
            lines += [
                f"## {KIND_TITLES[kind]}: {METRIC_TITLES[metric]}",
                "",
                "| transform | " + " | ".join(SOURCES) + " | mean |",
                "|---|" + "---:|" * (len(SOURCES) + 1),
            ]
            for label, s in rows[(metric, kind)]:
                lines.append(
                    f"| {label} | "
                    + " | ".join(f"{s['per_target'][t]['SDR']:.2f}" for t in SOURCES)
                    + f" | **{s['mean']['SDR']:.2f}** |"
                )
            lines.append("")
    lines += [
        "## Time",
        "",
        "| transform | oracle estimates (s) | "
        + " | ".join(f"{m} scoring (s)" for m in args.metrics)
        + " |",
        "|---|---:|" + "---:|" * len(args.metrics),
    ]
    labels = [label for label, _ in rows[(args.metrics[0], KINDS[0])]]
    for label in labels:
        est = timing.get((label, "transform"))
        lines.append(
            f"| {label} | {'-' if est is None else f'{est:.1f}'} | "
            + " | ".join(f"{timing[(label, m)]:.1f}" for m in args.metrics)
            + " |"
        )
    lines += [
        "",
        f"Scoring ran in {args.workers} worker processes; the oracle estimates "
        "(forward of the mixture and the four sources, eight inverses per track) in the "
        "main process.",
        "",
    ]
    write_results("oracle.md", lines)


if __name__ == "__main__":
    main()
