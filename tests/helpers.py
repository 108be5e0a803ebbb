"""Plain helpers and constants shared by the test modules; the fixtures are in conftest.py.

Imported as ``import helpers`` / ``from helpers import ...``: pytest's default ``prepend``
import mode puts this folder (``tests/``, which has no ``__init__.py``) on ``sys.path`` before
it imports ``conftest.py`` and the test modules, so no test edits ``sys.path`` and no test
module imports another one.
"""

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from xslicq.data import SOURCES
from xslicq.data.tracks import SYNTHETIC_MANIFEST
from xslicq.transform import SCALES, SliCQT, cupy_available

ROOT = Path(__file__).resolve().parents[1]  # the repository (cwd of the CLI subprocesses)
CONF = ROOT / "conf"  # the Hydra config root
SR = 44100

# ------------------------------------------------------------------------ transforms
# the default scales at their documented defaults (oct takes bins per octave)
SCALE_KWARGS = {
    "cqlog": dict(bins=262, fmin=32.9, fmax=22050.0),
    "oct": dict(bins=24, fmin=32.9, fmax=22050.0),
    "mel": dict(bins=262, fmin=32.9, fmax=22050.0),
    "bark": dict(bins=262, fmin=32.9, fmax=22050.0),
    "vqlog": dict(bins=262, fmin=32.9, fmax=22050.0),
}
assert set(SCALE_KWARGS) == set(SCALES)

_TRANSFORMS = {}


def transform(scale="cqlog", backend="torch", **kwargs):
    """A cached transform (building the default tables takes ~0.1 s)."""
    key = (scale, backend, tuple(sorted(kwargs.items())))
    if key not in _TRANSFORMS:
        kw = {**SCALE_KWARGS[scale], **kwargs}
        _TRANSFORMS[key] = SliCQT(scale=scale, sample_rate=SR, backend=backend, **kw)
    return _TRANSFORMS[key]


def onnx_meta(**changes) -> dict:
    """The metadata of an exported separator on a small bark sliCQT (60 bins), stereo, the
    four targets, no Wiener-EM: what an :class:`xslicq.inference.OnnxSeparator` is built
    from in tests with a stand-in network; ``changes`` replace top-level keys."""
    from xslicq.inference import FORMAT_VERSION

    meta = {
        "format_version": FORMAT_VERSION,
        "transform": {
            "scale": "bark",
            "bins": 60,
            "fmin": 32.9,
            "fmax": 22050.0,
            "sample_rate": SR,
        },
        "matrix": {"mode": "interpolate", "T": None},
        "targets": ["vocals", "drums", "bass", "other"],
        "channels": 2,
    }
    return {**meta, **changes}


def peak_bytes(run) -> int:
    """The most memory NumPy and Python held at once while ``run()`` ran (tracemalloc)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def rel_err(x, y):
    x, y = np.asarray(x), np.asarray(y)
    return float(np.linalg.norm(x - y) / np.linalg.norm(x))


def _soundfont_available() -> bool:
    from xslicq.data.synthetic import find_soundfont

    try:
        find_soundfont()
        return True
    except FileNotFoundError:
        return False


needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not _soundfont_available(),
    reason="needs fluidsynth and a GM SoundFont (apt-get install fluidsynth fluid-soundfont-gm)",
)
requires_cupy = pytest.mark.skipif(not cupy_available(), reason="CuPy with a CUDA GPU not usable")
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch CUDA not available")

# a meta-path finder that makes the training stack unimportable, as in a torch-free install
NO_TORCH = """
import sys
class _NoTrainingStack:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio", "pytorch_lightning", "hydra", "omegaconf"):
            raise ImportError(f"{name} is blocked (a torch-free install)")
sys.meta_path.insert(0, _NoTrainingStack())
"""


# ------------------------------------------------------------------------ command lines
def run_module(module: str, *args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in a subprocess from the repository root, stdout and
    stderr captured as text; ``kwargs`` go to :func:`subprocess.run` (``env``, ``input``)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        **kwargs,
    )


def stand_in_separator(monkeypatch, path, separator) -> list:
    """Replace ``xslicq.separator`` (as the entry points import it lazily) by a stand-in whose
    ``Separator.from_checkpoint`` returns ``separator`` and reads nothing, and write a
    placeholder checkpoint file at ``path``; returns the list of ``(path, device)`` it is
    called with."""
    import types

    calls = []

    class StandIn:
        @staticmethod
        def from_checkpoint(path, device="cpu"):
            calls.append((path, device))
            return separator

    monkeypatch.setitem(sys.modules, "xslicq.separator", types.SimpleNamespace(Separator=StandIn))
    Path(path).write_bytes(b"not read by the stand-in")
    return calls


# ------------------------------------------------------------------ MUSDB18-HQ layout
def write_musdb_track(folder: Path, stems: dict, sample_rate: int = SR) -> None:
    """One track in MUSDB18-HQ layout: ``stems`` maps some of vocals, drums, bass, other to
    ``(channels, samples)`` arrays; the missing ones are written silent, ``mixture`` is the
    sum; float32 WAV files."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = np.shape(next(iter(stems.values())))
    audio = {
        s: np.asarray(stems[s], np.float32) if s in stems else np.zeros(shape, np.float32)
        for s in SOURCES
    }
    audio["mixture"] = sum(audio[s] for s in SOURCES)
    for name, x in audio.items():
        sf.write(folder / f"{name}.wav", x.T, sample_rate, subtype="FLOAT")


def write_tone_track(folder, seconds=3.0, seed=0, channels=2, sample_rate=SR, silent=()):
    """Stems: vocals a tone (0.2 peak, 300 + 50 seed Hz), drums clicks, bass a 55 Hz tone,
    other noise; the right channel is 0.8 x the left; stems named in ``silent`` are zeros."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    stems = {
        "vocals": 0.2 * np.sin(2 * np.pi * (300 + 50 * seed) * t),
        "drums": 0.3 * (np.arange(n) % (sample_rate // 4) < 200) * rng.standard_normal(n),
        "bass": 0.3 * np.sin(2 * np.pi * 55 * t),
        "other": 0.05 * rng.standard_normal(n),
    }
    for s in silent:
        stems[s] = np.zeros(n)
    write_musdb_track(
        folder, {k: np.stack([v, 0.8 * v][:channels]) for k, v in stems.items()}, sample_rate
    )


def make_dataset(root, train=4, test=2, valid=1, seconds=3.0):
    """A MUSDB18-HQ-layout folder of tone tracks with a manifest naming the splits:
    ``train_0 .. train_{valid-1}`` are the validation tracks, the rest of train/ the
    training ones, ``test_*`` the test split."""
    names = {
        "train": [f"train_{i}" for i in range(train)],
        "test": [f"test_{i}" for i in range(test)],
    }
    for subset, tracks in names.items():
        for i, name in enumerate(tracks):
            write_tone_track(
                root / subset / name, seconds, seed=i + (10 if subset == "test" else 0)
            )
    split = {
        "train": names["train"][valid:],
        "valid": names["train"][:valid],
        "test": names["test"],
    }
    (root / SYNTHETIC_MANIFEST).write_text(json.dumps({"version": 1, "split": split}))
    return root


# ------------------------------------------------------------------------ Hydra configs
def compose_config(config_name=None, overrides=(), return_hydra_config=False):
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` (Hydra's global state cleared
    first, so a test may run after any other)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name, overrides=list(overrides), return_hydra_config=return_hydra_config
        )


# The train config shrunk to seconds on the tiny dataset: a small transform (bark, 16 matrix
# columns per slice), a tiny network and two training batches of two 2 s excerpts.
TINY_DATA = (
    "data.synthetic=null",
    "data.seq_dur=2.0",
    "data.samples_per_track=2",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.val_seq_dur=2.0",
)
TINY_MODEL = ("transform=bark", "model.hidden=8", "system.columns_per_second=220")


def train_run_config(overrides=()):
    """The train config with ``overrides`` (``hydra.runtime.output_dir=...`` among them for
    a run's folder), registered as the current Hydra run (as ``python -m xslicq.train``
    would) and without its ``hydra`` node: what :func:`xslicq.train.train` takes."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = compose_config("train", overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def tiny_train_config(out_dir, data_root, overrides=()):
    """The real train config, shrunk (``trainer=debug``, :data:`TINY_DATA`,
    :data:`TINY_MODEL`), writing into ``out_dir``, registered as the current Hydra run
    (:func:`train_run_config`)."""
    return train_run_config(
        [
            "trainer=debug",
            f"data.root={data_root}",
            *TINY_DATA,
            *TINY_MODEL,
            "system.init_stats_batches=1",
            f"hydra.runtime.output_dir={out_dir}",
            "log_media=true",
            *overrides,
        ]
    )


def save_checkpoint(system, path):
    """``system``'s weights and config in the layout training writes and
    :meth:`xslicq.Separator.from_checkpoint` reads; returns ``path`` as a :class:`Path`."""
    path = Path(path)
    torch.save({"state_dict": system.state_dict(), "xslicq": {"config": system.config}}, path)
    return path


def fresh_checkpoint(path, overrides=()):
    """An untrained checkpoint of the shrunk model (:data:`TINY_MODEL`, ``overrides`` on
    the train config) in the layout :meth:`xslicq.Separator.from_checkpoint` reads (weights
    and the config, as training writes them): seconds to make, no training run. The weights
    are torch's seeded initialisation (seed 0)."""
    from xslicq.system import SeparationSystem

    cfg = compose_config("train", [*TINY_MODEL, *overrides])
    torch.manual_seed(0)
    system = SeparationSystem.from_config(cfg, training=False)
    return save_checkpoint(system, path)


# ------------------------------------------------------------------------ streaming
def perturbed_system(overrides=(), seed=0):
    """The system of the train config with ``overrides``, in eval mode, its weights moved
    away from torch's initialisation (seeded with ``seed``) by 0.3 x a standard normal, so
    that every stage (a carried LSTM state included) matters."""
    from xslicq.system import SeparationSystem

    torch.manual_seed(seed)
    system = SeparationSystem.from_config(compose_config("train", overrides), training=False)
    with torch.no_grad():
        for p in system.model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return system.eval()


def noise_song(seconds, channels=2, seed=0) -> np.ndarray:
    """(channels, seconds * SR) float32 white noise at 0.1 amplitude: a song for tests
    whose stems are compared with another engine's or a known answer."""
    from xslicq.signals import noise

    return (0.1 * noise(int(seconds * SR), channels, seed)).astype(np.float32)


def tones_and_noise(seconds, seed=0, channels=2):
    """(channels, samples) float32 at :data:`SR`: two tones (one gliding up) and noise, a
    different mix per channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1760 * t * (1 + t / 10))
    x = x + 0.05 * rng.standard_normal((channels, n))
    return (x * np.linspace(0.6, 1.0, channels)[:, None]).astype(np.float32)


def stream_blocks(engine, x, block):
    """``x`` (channels, samples) pushed through a :class:`xslicq.stream.Streamer` on
    ``engine`` in blocks of ``block`` samples, then finished: the streamed stems."""
    from xslicq.stream import Streamer

    streamer = Streamer(engine)
    parts = [streamer.push(x[:, a : a + block]) for a in range(0, x.shape[1], block)]
    return np.concatenate(parts + [streamer.finish()], axis=-1)


# ------------------------------------------------------------------------ outside the tree
def module_env() -> dict:
    """The environment of a ``python -m xslicq.*`` subprocess started in another folder than
    the repository (so that its ``outputs/`` and the run folders it names itself land
    there): the repository first on ``PYTHONPATH``, as an installed package would be."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def only_run_folder(cwd, task="train") -> Path:
    """The one run folder that a command started in ``cwd`` made (``outputs/<task>/*``)."""
    runs = sorted((Path(cwd) / "outputs" / task).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


# ------------------------------------------------------------------------ benchmarks
# arguments that make each `make bench` script finish in seconds (not minutes): short
# signals, one repeat, small batches
BENCH_TINY = {
    "bench_transform.py": ["--repeats", "1", "--seconds", "2", "--batch", "1", "--ops"]
    + ["slicqt_roundtrip", "stft_roundtrip"],
    "bench_matrix.py": ["--repeats", "1", "--seconds", "2"],
    "bench_training.py": ["--steps", "1", "--repeats", "1", "--batch-size", "1"],
    "bench_data.py": ["--tracks", "3", "--seconds", "3", "--batches", "1", "--workers", "1"],
}
