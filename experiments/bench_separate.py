"""Benchmark: separation speed and memory on the CPU, next to Open-Unmix.

    .venv/bin/python experiments/bench_separate.py [--threads 2] [--seconds 30] [--minutes 10]
        [--repeats 3] [--transforms cqlog bark mel vqlog tuned stft] [--out DIR | --record]

Three tables, all in one run, written to separate.md in ``--out`` (default
outputs/experiments/), or with ``--record`` in experiments/results/:

1. Side by side on the same ``--seconds`` of stereo (a song-like mix,
   :func:`xslicq.signals.music_like`): the default xslicq model (cqlog sliCQT +
   xumx_matrix, untrained: speed does not depend on the weights) with Wiener-EM off and
   one iteration, run by torch on the CPU, by onnxruntime (an export of the same
   checkpoint, :mod:`xslicq.export`) and by the streaming mode (:mod:`xslicq.stream`, its
   causal ``experiment=stream`` model); and Open-Unmix ``umxhq`` (its sizes, random weights:
   no download) with ``niter`` 0 and 1. Time: the best of ``--repeats`` rounds after a
   warm-up, every system timed in turn in the same process. Peak memory: the peak RSS of
   a fresh process (``/usr/bin/time``) that builds the system and separates the song once.
2. The ``python -m xslicq.separate`` (and ``python -m xslicq.stream``) command on a
   ``--minutes`` song (the same mix tiled), whole-process peak RSS: target 2 GiB.
3. The default network on every transform of ``--transforms`` (median of three runs after a
   warm-up, each in a fresh process), against the default.

Rows for engines this checkout does not have (``xslicq.export``, ``xslicq.stream`` not
importable) say so; re-run the script where they are. Songs, checkpoints and exports go to
a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import median_time, parse_args, write_results

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
NOT_BUILT = "not built in this checkout"


# ---------------------------------------------------------------------- set-up
def compose(overrides=()):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


def build_system(overrides=()):
    from xslicq.system import SeparationSystem

    return SeparationSystem.from_config(compose(overrides), training=False)


def write_checkpoint(path: Path, overrides=()) -> int:
    """A checkpoint of an untrained system (what ``Separator.from_checkpoint`` reads);
    returns its parameter count."""
    import torch

    system = build_system(overrides)
    torch.save({"xslicq": {"config": system.config}, "state_dict": system.state_dict()}, path)
    return sum(p.numel() for p in system.parameters())


def write_songs(folder: Path, seconds: float, minutes: float) -> tuple[Path, Path]:
    import numpy as np
    import soundfile as sf

    from xslicq.signals import music_like

    audio = music_like(seconds, seed=0).astype("float32")  # (2, N)
    short, long = folder / "song.wav", folder / "long.wav"
    sf.write(short, audio.T, 44100, subtype="FLOAT")
    reps = int(np.ceil(minutes * 60 / seconds))
    tiled = np.tile(audio, reps)[:, : int(minutes * 60 * 44100)]
    sf.write(long, tiled.T, 44100, subtype="FLOAT")
    return short, long


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run(cmd, threads: int, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def measured(cmd, threads: int) -> tuple[float, float] | str:
    """(peak RSS in MiB, wall seconds) of the whole process ``cmd``, or its error."""
    with tempfile.NamedTemporaryFile(suffix=".time") as out:
        r = run(["/usr/bin/time", "-f", "%M %e", "-o", out.name, *cmd], threads)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            return f"failed: {tail[:200]}"
        kib, seconds = Path(out.name).read_text().split()[-2:]
    return int(kib) / 1024, float(seconds)


def export_onnx(checkpoint: Path, threads: int) -> Path | str:
    """``python -m xslicq.export checkpoint=... format=onnx``: the .onnx beside it."""
    if not available("xslicq.export"):
        return NOT_BUILT
    r = run(
        [sys.executable, "-m", "xslicq.export", f"checkpoint={checkpoint}", "format=onnx"], threads
    )
    model = checkpoint.with_suffix(".onnx")
    if r.returncode != 0 or not model.exists():
        tail = (r.stderr.strip().splitlines() or ["no .onnx written"])[-1]
        return f"export failed: {tail[:200]}"
    return model


def unavailable(path_or_reason: str) -> bool:
    """Whether a model path of ``paths`` is the reason there is none (not a file)."""
    return not Path(path_or_reason).is_file()


# ---------------------------------------------------------------------- the engines
def engines(paths: dict) -> dict:
    """name -> (build, separate) for every system of table 1; ``paths`` holds the song, the
    checkpoints and the exports (a string where one is missing)."""
    import soundfile as sf
    import torch

    audio = sf.read(paths["song"], dtype="float32", always_2d=True)[0].T.copy()

    def torch_engine(iterations):
        def build():
            from xslicq.separator import Separator

            sep = Separator.from_checkpoint(paths["checkpoint"])
            sep.system.wiener_iterations = iterations
            return sep

        return build, lambda sep: sep.separate(audio, 44100)

    def onnx_engine(key):
        def build():
            if unavailable(paths[key]):
                raise RuntimeError(paths[key])
            from xslicq.inference import OnnxSeparator

            return OnnxSeparator.from_file(paths[key])

        return build, lambda sep: sep.separate(audio, 44100)

    def stream_engine():
        def build():
            if unavailable(paths["stream"]):
                raise RuntimeError(paths["stream"])
            from xslicq.stream import stream_file

            return stream_file

        def go(stream_file):
            out = Path(tempfile.mkdtemp(prefix="xslicq-stream-"))
            try:
                stream_file(paths["stream"], paths["song"], out, force=True)
            finally:
                shutil.rmtree(out, ignore_errors=True)

        return build, go

    def umx_engine(niter):
        def build():
            import openunmix

            return openunmix.umxhq(pretrained=False, niter=niter, device="cpu").eval()

        mixture = torch.from_numpy(audio)[None]

        def go(sep):
            with torch.no_grad():
                return sep(mixture)

        return build, go

    return {
        "xslicq torch w0": torch_engine(0),
        "xslicq torch w1": torch_engine(1),
        "xslicq onnx w0": onnx_engine("onnx0"),
        "xslicq onnx w1": onnx_engine("onnx1"),
        "xslicq stream": stream_engine(),
        "umxhq n0": umx_engine(0),
        "umxhq n1": umx_engine(1),
    }


def time_side_by_side(paths: dict, repeats: int, threads: int) -> dict:
    """name -> (best, median) seconds, or the reason there is none: every engine built once,
    warmed up, then timed in ``repeats`` rounds that take each engine in turn."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    built, results = {}, {}
    for name, (build, go) in engines(paths).items():
        try:
            built[name] = (build(), go)
            go(built[name][0])  # warm-up
        except Exception as err:  # a missing engine: its row says why
            built.pop(name, None)
            results[name] = str(err) or type(err).__name__
    times = {name: [] for name in built}
    for _ in range(repeats):
        for name, (sep, go) in built.items():
            t0 = time.perf_counter()
            go(sep)
            times[name].append(time.perf_counter() - t0)
    results.update({n: (min(t), float(np.median(t))) for n, t in times.items()})
    return results


def separate_once(paths: dict, name: str, threads: int) -> None:
    """Build engine ``name`` and separate the song once (a fresh process: peak RSS)."""
    import torch

    torch.set_num_threads(threads)
    build, go = engines(paths)[name]
    go(build())


# ---------------------------------------------------------------------- the tables
def side_by_side_table(paths, timings, peaks, params, seconds, threads) -> list[str]:
    rows = [
        ("xslicq torch w0", "xslicq, torch CPU", "default (cqlog + xumx_matrix)", "0"),
        ("xslicq torch w1", "xslicq, torch CPU", "default (cqlog + xumx_matrix)", "1"),
        ("xslicq onnx w0", "xslicq, onnxruntime CPU", "default, exported", "0"),
        ("xslicq onnx w1", "xslicq, onnxruntime CPU", "default, exported", "1"),
        ("xslicq stream", "xslicq, streaming", "experiment=stream (causal)", "0"),
        ("umxhq n0", "Open-Unmix", "umxhq sizes, random weights", "0"),
        ("umxhq n1", "Open-Unmix", "umxhq sizes, random weights", "1"),
    ]
    lines = [
        "| system | model | parameters | Wiener-EM iterations | time (best / median) | "
        "real-time factor | peak RSS of a process separating it once |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, system, model, iterations in rows:
        timing, peak = timings.get(key), peaks.get(key)
        if isinstance(timing, tuple):
            best, median = timing
            cells = f"{best:.2f} s / {median:.2f} s | {best / seconds:.3f}"
        else:
            cells = f"{timing or NOT_BUILT} | -"
        peak_cell = f"{peak[0]:.0f} MiB" if isinstance(peak, tuple) else (peak or "-")
        count = params.get(key)
        count_cell = f"{count / 1e6:.2f} M" if count else "-"
        lines.append(
            f"| {system} | {model} | {count_cell} | {iterations} | {cells} | {peak_cell} |"
        )
    wiener = []
    for a, b, label in [
        ("xslicq torch w1", "xslicq torch w0", "xslicq (torch)"),
        ("umxhq n1", "umxhq n0", "Open-Unmix"),
    ]:
        if isinstance(timings.get(a), tuple) and isinstance(timings.get(b), tuple):
            wiener.append(f"{label} {timings[a][0] - timings[b][0]:.2f} s")
    if wiener:
        lines += ["", "One Wiener-EM iteration costs (best times, 1 minus 0): " + ", ".join(wiener)]
    return lines


def long_song_table(paths, minutes, threads) -> list[str]:
    seconds = minutes * 60
    py = sys.executable
    long, ck, stream_ck = paths["long"], paths["checkpoint"], paths["stream"]
    commands = [
        (
            "separate --checkpoint (torch), Wiener 0",
            [py, "-m", "xslicq.separate", long, "--checkpoint", ck, "--wiener", "0"],
        ),
        (
            "separate --checkpoint (torch), Wiener 1",
            [py, "-m", "xslicq.separate", long, "--checkpoint", ck, "--wiener", "1"],
        ),
    ]
    for key, label in [("onnx0", "Wiener 0"), ("onnx1", "Wiener 1")]:
        model = paths[key]
        commands.append(
            (
                f"separate --model (onnxruntime), {label}",
                model
                if unavailable(model)
                else [py, "-m", "xslicq.separate", long, "--model", model],
            )
        )
    commands.append(
        (
            "stream (experiment=stream model)",
            stream_ck
            if unavailable(stream_ck)
            else [py, "-m", "xslicq.stream", "--model", stream_ck, long],
        )
    )
    lines = [
        "| command | wall time | real-time factor | whole-process peak RSS | within 2 GiB |",
        "|---|---:|---:|---:|:---:|",
    ]
    for label, cmd in commands:
        if isinstance(cmd, str):
            lines.append(f"| {label} | {cmd} | - | - | - |")
            continue
        out = Path(tempfile.mkdtemp(prefix="xslicq-stems-"))
        try:
            where = ["--out", out / "stems"] if "xslicq.separate" in cmd else [out / "stems"]
            result = measured([*cmd, *where], threads)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(result, str):
            lines.append(f"| {label} | {result} | - | - | - |")
            continue
        peak, wall = result
        ok = "yes" if peak < 2048 else "**no**"
        lines.append(f"| {label} | {wall:.1f} s | {wall / seconds:.3f} | {peak:.0f} MiB | {ok} |")
    return lines


def measure_transform(name: str, seconds: float, threads: int) -> str:
    """One row of the per-transform table: separating ``seconds`` of song-like stereo."""
    import torch

    from xslicq.separator import Separator
    from xslicq.signals import music_like

    torch.set_num_threads(threads)
    system = build_system([f"transform={name}"])
    sep = Separator(system)
    audio = music_like(seconds, seed=0).astype("float32")
    elapsed = median_time(lambda: sep.separate(audio, 44100), repeats=3)
    t = system.transform
    return (
        f"| {name} | {t.sllen} | {system.r2m.T} | {system.columns_per_second:.0f} | "
        f"{elapsed:.2f} s |"
    )


def main() -> None:
    from xslicq.models import XUMXMatrix

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--transforms", nargs="*", default=["cqlog", "bark", "mel", "vqlog", "tuned", "stft"]
    )
    parser.add_argument("--child-timings", help=argparse.SUPPRESS)  # paths JSON
    parser.add_argument("--child-once", nargs=2, help=argparse.SUPPRESS)  # paths JSON, name
    parser.add_argument("--child-transform", help=argparse.SUPPRESS)
    args = parse_args(parser)
    if args.child_timings:
        paths = json.loads(args.child_timings)
        print(json.dumps(time_side_by_side(paths, args.repeats, args.threads)))
        return
    if args.child_once:
        separate_once(json.loads(args.child_once[0]), args.child_once[1], args.threads)
        return
    if args.child_transform:
        print(measure_transform(args.child_transform, args.seconds, args.threads))
        return

    me = [sys.executable, __file__, "--threads", str(args.threads), "--seconds", str(args.seconds)]
    tmp = Path(tempfile.mkdtemp(prefix="xslicq-bench-"))
    try:
        song, long = write_songs(tmp, args.seconds, args.minutes)
        params = {}
        ck0, ck1 = tmp / "default.ckpt", tmp / "wiener1.ckpt"
        params["xslicq torch w0"] = params["xslicq torch w1"] = write_checkpoint(ck0)
        write_checkpoint(ck1, ["system.wiener_iterations=1"])
        params["xslicq onnx w0"] = params["xslicq onnx w1"] = params["xslicq torch w0"]
        paths = {"song": str(song), "long": str(long), "checkpoint": str(ck0)}
        for key, ck in [("onnx0", ck0), ("onnx1", ck1)]:
            model = export_onnx(ck, args.threads)
            paths[key] = str(model) if isinstance(model, Path) else model
        if available("xslicq.stream"):
            stream_ck = tmp / "stream.ckpt"
            params["xslicq stream"] = write_checkpoint(stream_ck, ["experiment=stream"])
            paths["stream"] = str(stream_ck)
        else:
            paths["stream"] = NOT_BUILT
        import openunmix

        params["umxhq n0"] = params["umxhq n1"] = sum(
            p.numel() for p in openunmix.umxhq(pretrained=False).parameters()
        )
        r = run(
            [*me, "--repeats", str(args.repeats), "--child-timings", json.dumps(paths)],
            args.threads,
        )
        if r.returncode != 0:
            raise SystemExit(f"the timing process failed:\n{r.stderr[-3000:]}")
        timings = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in json.loads(r.stdout.splitlines()[-1]).items()
        }
        peaks = {}
        for name, timing in timings.items():
            if isinstance(timing, tuple):
                peaks[name] = measured([*me, "--child-once", json.dumps(paths), name], args.threads)
        table1 = side_by_side_table(paths, timings, peaks, params, args.seconds, args.threads)
        table2 = long_song_table(paths, args.minutes, args.threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    by_transform = []
    for name in args.transforms:
        r = run([*me, "--child-transform", name], args.threads)
        if r.returncode != 0:
            raise SystemExit(f"transform {name} failed:\n{r.stderr[-3000:]}")
        by_transform.append(r.stdout.strip().splitlines()[-1])
    base, table3 = None, []
    for row in by_transform:
        seconds = float(row.rsplit("|", 2)[-2].strip().rstrip(" s"))
        base = seconds if base is None else base
        table3.append(f"{row} {seconds / base:.2f}x |")

    command = (
        f"`.venv/bin/python experiments/bench_separate.py --threads {args.threads} --seconds "
        f"{args.seconds:g} --minutes {args.minutes:g} --repeats {args.repeats} --transforms "
        f"{' '.join(args.transforms)}`"
    )
    lines = [
        "# Separation speed and memory",
        "",
        f"Produced by {command} on {platform.machine()} ({os.cpu_count()} CPUs, "
        f"{args.threads} threads: torch threads and OMP_NUM_THREADS). All numbers come from "
        "one run.",
        "",
        f"## Side by side: {args.seconds:g} s of stereo, the same song, the same process",
        "",
        "Every system is built once and warmed up, then timed in turn in each of "
        f"{args.repeats} rounds (the best and the median round). xslicq cuts the song into "
        "cross-faded 10 s chunks; Open-Unmix separates it whole and runs Wiener-EM on "
        "windows of 300 frames (its default). Real-time factor: best time / song length. "
        "Peak RSS: a fresh process that imports, builds and separates the song once "
        "(`/usr/bin/time`), the libraries included (torch alone is about 500 MiB).",
        "",
        *table1,
        "",
        f"## A {args.minutes:g}-minute song through the command line",
        "",
        "The song above tiled to the length; the whole process measured by `/usr/bin/time` "
        "(imports, the checkpoint, the song, the separation and the writing). `separate` "
        "writes the stems as their chunks are separated (`separate_spans`, shared by the "
        "torch `Separator` and the torch-free `OnnxSeparator`), so it never holds a whole "
        "stem. Target: within 2 GiB.",
        "",
        *table2,
        "",
        f"## By transform: {args.seconds:g} s of stereo, the default network "
        "(xumx_matrix, untrained)",
        "",
        "The network's time grid is `system.columns_per_second` (by default xumx_matrix's "
        f"own {XUMXMatrix.columns_per_second:g}): each "
        "transform gets the power of two of columns per slice nearest to it, so short-slice "
        "transforms no longer give the network many times more frames. Median of three runs "
        "after a warm-up, each transform in a fresh process.",
        "",
        "| transform | sllen | columns per slice | columns per second | time | vs "
        f"{args.transforms[0] if args.transforms else '-'} |",
        "|---|---:|---:|---:|---:|---:|",
        *table3,
        "",
    ]
    write_results("separate.md", lines)


if __name__ == "__main__":
    main()
