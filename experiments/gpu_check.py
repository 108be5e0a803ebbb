"""GPU check: the sliCQT on CuPy and torch CUDA against NumPy, a few bf16 training steps,
and DALI against the default loader.

    .venv/bin/python experiments/gpu_check.py [--seconds 3] [--steps 12] [--batches 10]
        [--out DIR | --record]

Writes gpu.md to ``--out`` (default outputs/experiments/), or with ``--record`` to
experiments/results/ (the section bench_bridge.py writes there is kept): a header naming
the command, the
machine, the GPU and the torch / CUDA / CuPy / DALI versions, then one section per check:

1. transform: forward coefficients and inverse of the default ``cqlog`` and ``bark``
   sliCQTs on ``--seconds`` of stereo noise plus tones, float64 and float32, with the
   ``cupy`` backend and with ``torch`` on CUDA, against the ``numpy`` backend in float64:
   the largest coefficient difference relative to the largest reference coefficient, and
   the relative reconstruction error ``||x - inverse(forward(x))|| / ||x||``.
2. training: ``xslicq.train.train`` on the tiny config of the tests with ``trainer=gpu``
   (bf16-mixed; XUMXMatrix keeps its convolutions channels_last), overfitting one
   batch for ``--steps`` steps: median step time, every loss finite, the loss falling.
3. loaders: training segments per second of the default loader (batches copied to the
   GPU) and of ``data.loader=dali``.

A check that cannot run here says "not run" and why. The exit status is 1 when a check
that ran missed its tolerance or raised, else 0; the same script is what
tests/test_gpu_check.py runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from benchutil import measured_args, parse_args, write_results
from pytorch_lightning import Callback

ROOT = Path(__file__).resolve().parents[1]
BRIDGE_HEADING = "## CuPy bridge vs torch-CUDA training step"  # bench_bridge.py's section
SR = 44100
SCALES = ("cqlog", "bark")
# largest coefficient difference / largest reference coefficient, and relative
# reconstruction error, per working precision (the float64 NumPy transform is the reference)
TOLERANCES = {
    "float64": {"forward": 1e-10, "inverse": 1e-12},
    "float32": {"forward": 1e-5, "inverse": 1e-5},
}
NO_CUDA = "not run: no CUDA GPU on this machine (torch.cuda.is_available() is False)"
NO_DALI = "not run: nvidia-dali not installed"
NO_CUPY = "not run: CuPy cannot use a CUDA GPU here (xslicq.transform.cupy_available() is False)"


# ------------------------------------------------------------------------ machine facts
def _version(module: str) -> str:
    try:
        mod = __import__(module, fromlist=["__version__"])
    except Exception as err:  # noqa: BLE001 - any import failure means "not installed"
        return f"not installed ({type(err).__name__})"
    return str(getattr(mod, "__version__", "unknown"))


def machine_facts() -> dict:
    """What the report's header names: machine, GPU, library versions."""
    cuda = torch.cuda.is_available()
    return {
        "machine": f"{platform.node()}: {platform.platform()}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores",
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0)
        if cuda
        else "none (torch.cuda.is_available() is False)",
        "torch": torch.__version__,
        "torch CUDA": torch.version.cuda or "none (a CPU-only build)",
        "cupy": _version("cupy"),
        "nvidia-dali": _version("nvidia.dali"),
    }


# ------------------------------------------------------------------------ test material
def stereo_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """(1, 2, samples) float64: noise plus three tones, the right channel a different mix."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    tones = sum(np.sin(2 * np.pi * f * t) for f in (55.0, 440.0, 3520.0)) / 3
    left = 0.5 * tones + 0.1 * rng.standard_normal(n)
    right = 0.3 * tones + 0.2 * rng.standard_normal(n)
    return np.stack([left, right])[None]


def write_dataset(root: Path, train: int = 4, seconds: float = 8.0) -> Path:
    """A MUSDB18-HQ-layout folder of stereo tone tracks: ``train`` training tracks, one
    validation and one test track, and the manifest naming the splits."""
    names = {"train": [f"train_{i}" for i in range(train + 1)], "test": ["test_0"]}
    n = int(seconds * SR)
    t = np.arange(n) / SR
    for subset, tracks in names.items():
        for i, name in enumerate(tracks):
            rng = np.random.default_rng(i + (100 if subset == "test" else 0))
            stems = {
                "vocals": 0.2 * np.sin(2 * np.pi * (300 + 50 * i) * t),
                "drums": 0.3 * (np.arange(n) % (SR // 4) < 200) * rng.standard_normal(n),
                "bass": 0.3 * np.sin(2 * np.pi * 55 * t),
                "other": 0.05 * rng.standard_normal(n),
            }
            folder = root / subset / name
            folder.mkdir(parents=True)
            stereo = {
                k: np.stack([v, 0.8 * v], axis=1).astype(np.float32) for k, v in stems.items()
            }
            stereo["mixture"] = sum(stereo.values())
            for stem, audio in stereo.items():
                sf.write(folder / f"{stem}.wav", audio, SR, subtype="FLOAT")
    from xslicq.data.tracks import SYNTHETIC_MANIFEST

    split = {"train": names["train"][1:], "valid": names["train"][:1], "test": names["test"]}
    (root / SYNTHETIC_MANIFEST).write_text(json.dumps({"version": 1, "split": split}))
    return root


# ------------------------------------------------------------------------ 1. transform
def _max_rel_diff(coefs: list, reference: list) -> float:
    """Largest |difference| over all blocks / largest |reference coefficient|."""
    diff = max(float(np.max(np.abs(c - r))) for c, r in zip(coefs, reference))
    return diff / max(float(np.max(np.abs(r))) for r in reference)


def _rel_err(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x - y) / np.linalg.norm(x))


def transform_check(seconds: float, device: str = "cuda") -> tuple[list[str], bool]:
    """Rows of the transform table and whether every row is within its tolerance
    (``device``: where the torch transform runs; "cpu" only to try the script)."""
    from xslicq.transform import SliCQT, cupy_available
    from xslicq.transform.backend import to_numpy

    x = stereo_signal(seconds)
    length = x.shape[-1]
    use_cupy = cupy_available()
    rows, ok = [], True
    for scale in SCALES:
        reference_t = SliCQT(scale, sample_rate=SR, backend="numpy")
        reference = reference_t.forward(x)
        torch_t = SliCQT(scale, sample_rate=SR, backend="torch").to(device)
        cupy_t = SliCQT(scale, sample_rate=SR, backend="cupy") if use_cupy else None
        for dtype in ("float64", "float32"):
            tol = TOLERANCES[dtype]
            runs = {}
            xt = torch.as_tensor(x, dtype=getattr(torch, dtype), device=device)
            runs["torch CUDA"] = (torch_t(xt), lambda c, t=torch_t: t.inverse(c, length))
            if cupy_t is not None:
                import cupy

                xc = cupy.asarray(x, dtype=dtype)
                runs["cupy"] = (cupy_t.forward(xc), lambda c, t=cupy_t: t.inverse(c, length))
            host = {}
            for name, (coefs, inverse) in runs.items():
                host[name] = [to_numpy(c) for c in coefs]
                fwd = _max_rel_diff(host[name], reference)
                rec = _rel_err(x, to_numpy(inverse(coefs)))
                good = fwd <= tol["forward"] and rec <= tol["inverse"]
                ok &= good
                rows.append(
                    f"| {scale} | {dtype} | {name} vs numpy float64 | {fwd:.2e} "
                    f"(<= {tol['forward']:.0e}) | {rec:.2e} (<= {tol['inverse']:.0e}) | "
                    f"{'pass' if good else 'FAIL'} |"
                )
            if "cupy" in host:
                between = _max_rel_diff(host["cupy"], host["torch CUDA"])
                good = between <= tol["forward"]
                ok &= good
                rows.append(
                    f"| {scale} | {dtype} | cupy vs torch CUDA | {between:.2e} "
                    f"(<= {tol['forward']:.0e}) | - | {'pass' if good else 'FAIL'} |"
                )
            else:
                rows.append(f"| {scale} | {dtype} | cupy | {NO_CUPY} | - | - |")
    return rows, ok


# ------------------------------------------------------------------------ 2. training
class StepRecorder(Callback):
    """Wall time (CUDA synchronised) and loss of every training step."""

    def __init__(self):
        super().__init__()
        self.times, self.losses, self._t0 = [], [], 0.0

    @staticmethod
    def _sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._sync()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._sync()
        self.times.append(time.perf_counter() - self._t0)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def training_config(out_dir: Path, data_root: Path, steps: int, trainer: str = "gpu"):
    """The real train config shrunk like the tests' tiny one, on ``trainer``, training on one
    batch for ``steps`` steps (one step an epoch; 2 s tracks, 2 s excerpts, no random mix,
    gain or channel swap: the same two excerpts every time), with no logger and
    only a :class:`StepRecorder` as callback; registered as the current Hydra run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            return_hydra_config=True,
            overrides=[
                f"trainer={trainer}",
                f"data.root={data_root}",
                "data.synthetic=null",
                "data.seq_dur=2.0",
                "data.samples_per_track=2",
                "data.batch_size=2",
                "data.num_workers=0",
                "data.val_seq_dur=2.0",
                "transform=bark",
                "model.hidden=8",
                "system.columns_per_second=220",
                "system.init_stats_batches=1",
                "data.random_mix=false",
                "data.gain=[1.0,1.0]",
                "data.channel_swap=false",
                "trainer.limit_train_batches=1",
                "trainer.limit_val_batches=1",
                f"trainer.max_epochs={steps}",
                "trainer.num_sanity_val_steps=0",
                "trainer.log_every_n_steps=1",
                "trainer.enable_progress_bar=false",
                "log_media=false",
                "~logger",
                "~callbacks",
                f"+callbacks.step_recorder._target_={__name__}.StepRecorder",
                f"hydra.runtime.output_dir={out_dir}",
            ],
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def training_check(work: Path, steps: int, trainer: str = "gpu") -> tuple[list[str], bool]:
    """Rows of the training table and whether the loss stayed finite and fell."""
    from xslicq.train import train

    data = write_dataset(work / "data", train=2, seconds=2.0)  # one 2 s segment a track
    cfg = training_config(work / "run", data, steps, trainer)
    _, objects = train(cfg)
    recorder = next(c for c in objects["trainer"].callbacks if isinstance(c, StepRecorder))
    losses, times = recorder.losses, recorder.times
    system = objects["system"]
    finite = all(math.isfinite(v) for v in losses)
    k = max(1, len(losses) // 4)
    first, last = statistics.mean(losses[:k]), statistics.mean(losses[-k:])
    falls = last < first
    warm = times[2:] or times
    conv = next((m for m in system.model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    layout = (
        "channels_last"
        if conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last)
        else "contiguous (no Conv2d or not channels_last)"
    )
    rows = [
        f"| trainer | `trainer={trainer}`: precision {cfg.trainer.precision}, "
        f"accelerator {cfg.trainer.accelerator} |",
        f"| steps run | {len(losses)} (one overfitted batch of 2 x 2 s stereo) |",
        f"| median step time (steps 3..) | {1000 * statistics.median(warm):.1f} ms |",
        f"| first step time (warm-up) | {1000 * times[0]:.1f} ms |",
        f"| every loss finite | {'yes' if finite else 'NO'} |",
        f"| loss: mean of first {k} / last {k} steps | {first:.4f} / {last:.4f} "
        f"({'falls' if falls else 'DOES NOT FALL'}) |",
        f"| network memory format | {layout} |",
        f"| losses | {', '.join(f'{v:.4f}' for v in losses)} |",
    ]
    return rows, finite and falls


# ------------------------------------------------------------------------ 3. loaders
def _segments_per_second(loader, batches: int, to_gpu: bool) -> float:
    it = iter(loader)
    next(it)  # start-up (workers, pipeline build) is not counted
    count = 0
    StepRecorder._sync()
    t0 = time.perf_counter()
    for _ in range(batches):
        mixture, targets = next(it)
        if to_gpu:
            mixture, targets = mixture.cuda(non_blocking=True), targets.cuda(non_blocking=True)
        count += mixture.shape[0]
    StepRecorder._sync()
    return count / (time.perf_counter() - t0)


def loader_check(work: Path, batches: int) -> tuple[list[str], bool]:
    """Rows of the loader table (segments per second); fails only when a loader raises."""
    from xslicq.data.datamodule import MusdbDataModule

    root = write_dataset(work / "loader-data", train=4)
    batch_size = 16
    per_track = math.ceil((batches + 2) * batch_size / 4)

    def loader(kind):
        dm = MusdbDataModule(
            str(root),
            seq_dur=2.0,
            samples_per_track=per_track,
            batch_size=batch_size,
            num_workers=2,
            val_seq_dur=2.0,
            loader=kind,
        )
        dm.setup("fit")
        return dm.train_dataloader()

    rows = [
        f"| default (PyTorch DataLoader, 2 workers, batches copied to the GPU) | "
        f"{_segments_per_second(loader('default'), batches, torch.cuda.is_available()):.1f} |"
    ]
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        rows.append(f"| dali | {NO_DALI} |")
    else:
        rows.append(
            f"| dali (2 CPU threads, on the GPU) | "
            f"{_segments_per_second(loader('dali'), batches, False):.1f} |"
        )
    return rows, True


# ------------------------------------------------------------------------ the report
def run_check(name: str, fn, *args) -> tuple[list[str], bool]:
    """``fn(*args)`` timed; an exception becomes a FAIL line with its message."""
    t0 = time.perf_counter()
    try:
        rows, ok = fn(*args)
    except Exception as err:  # noqa: BLE001 - reported, and the exit status says it
        traceback.print_exc()
        return [f"FAIL: {name} raised {type(err).__name__}: {err}"], False
    return rows + [
        "",
        f"Result: {'pass' if ok else 'FAIL'} ({time.perf_counter() - t0:.1f} s).",
    ], ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="signal of the transform check")
    parser.add_argument("--steps", type=int, default=12, help="training steps")
    parser.add_argument("--batches", type=int, default=10, help="loader batches timed")
    args = parse_args(parser, argv)

    facts = machine_facts()
    cuda = torch.cuda.is_available()
    command = " ".join(["python", "experiments/gpu_check.py", *measured_args(argv or sys.argv[1:])])
    lines = [
        "# GPU check: transform backends, bf16 training steps, loaders",
        "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()}.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "Ran on the GPU above."
        if cuda
        else "**Not run on a GPU**: this machine has none, so every check below says why "
        "it did not run. Run this script where `torch.cuda.is_available()` is True.",
        "",
    ]
    ok = True
    work = Path(tempfile.mkdtemp(prefix="xslicq-gpu-check-"))
    try:
        sections = [
            (
                "1. sliCQT: CuPy and torch CUDA against NumPy",
                f"{args.seconds:g} s of stereo noise and tones, default `cqlog` and `bark`; "
                "forward: largest coefficient difference / largest reference coefficient; "
                "inverse: ||x - inverse(forward(x))|| / ||x||.",
                "| scale | precision | backend | forward | inverse | |\n|---|---|---|---|---|---|",
                transform_check,
                (args.seconds,),
            ),
            (
                "2. Training steps with `trainer=gpu` (bf16-mixed, channels_last)",
                f"`xslicq.train.train` on the tests' tiny config (bark, hidden 8), one batch "
                f"overfitted for {args.steps} steps.",
                "| | |\n|---|---|",
                training_check,
                (work, args.steps),
            ),
            (
                "3. Loaders: DALI against the default",
                f"Training segments (2 s stereo, batch 16) per second over {args.batches} "
                "batches after the first, from tone tracks on local disk.",
                "| loader | segments / s |\n|---|---:|",
                loader_check,
                (work, args.batches),
            ),
        ]
        for title, what, table, fn, fn_args in sections:
            lines += [f"## {title}", "", what, ""]
            if not cuda:
                lines += [NO_CUDA + ".", ""]
                continue
            rows, good = run_check(title, fn, *fn_args)
            ok &= good
            lines += [table, *rows, ""]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # the section experiments/bench_bridge.py owns stays as it was
    old = args.out / "gpu.md"
    old = old.read_text() if old.is_file() else ""
    if BRIDGE_HEADING in old:
        lines.append(BRIDGE_HEADING + old.partition(BRIDGE_HEADING)[2])
    write_results("gpu.md", lines)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
