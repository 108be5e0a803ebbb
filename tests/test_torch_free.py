"""The inference-only install: ``pip install "xslicq[infer]"`` into a fresh virtual
environment without torch, then ``python -m xslicq.separate --model model.onnx`` there gives
the torch engine's stems (slow: builds the environment from PyPI or the pip cache, minutes);
and which of the training stack's modules ``separate --model`` imports where it is
installed (fast)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from xslicq import Separator
from xslicq.export import run

from helpers import ROOT, SR, fresh_checkpoint, rel_err

PARITY = 1e-4  # relative L2 error of every stem


def _source_copy(dest):
    """The files a build of the package reads, copied (a build in the repository would leave
    build/ and *.egg-info there)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("xslicq", "hydra_plugins"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    return dest


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_separate_with_an_exported_model_in_a_venv_without_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    source = _source_copy(tmp_path / "src")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["-c", str(ROOT / "constraints.txt"), f"{source}[infer]"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode == 1 and "No module named 'torch'" in no_torch.stderr

    ckpt = fresh_checkpoint(tmp_path / "model.ckpt", ["system.wiener_iterations=1"])
    (model,) = run({"checkpoint": str(ckpt), "format": "onnx"})
    audio = (0.1 * np.random.default_rng(0).standard_normal((2, int(4.5 * SR)))).astype(np.float32)
    sf.write(tmp_path / "song.wav", audio.T, SR, subtype="FLOAT")
    separate = subprocess.run(
        [python, "-m", "xslicq.separate", str(tmp_path / "song.wav"), "--model", str(model)]
        + ["--out", str(tmp_path / "stems"), "--chunk-seconds", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: the venv's own copy of xslicq is imported
        timeout=600,
    )
    assert separate.returncode == 0, separate.stderr[-3000:]
    ref = Separator.from_checkpoint(ckpt, chunk_seconds=3.0).separate(audio, SR)
    for name, stem in ref.items():
        got, rate = sf.read(tmp_path / "stems" / f"{name}.wav", dtype="float32")
        assert rate == SR and got.T.shape == stem.shape
        assert rel_err(stem, got.T) < PARITY, name
    refused = subprocess.run(
        [python, "-m", "xslicq.separate", str(tmp_path / "song.wav"), "--checkpoint", str(ckpt)]
        + ["--out", str(tmp_path / "other")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: --checkpoint needs the training stack, and torch")


# the training stack: none of it is imported by separate --model
TRAINING_STACK = ("torch", "torchaudio", "lightning", "pytorch_lightning", "hydra", "omegaconf")
SEPARATE_MODEL = """
import json, sys
from xslicq.separate import main
status = main(sys.argv[1:])
print(json.dumps([status, sorted(m for m in sys.modules if m.split(".")[0] in {stack!r})]))
"""


@pytest.fixture(scope="module")
def imported_by_separate_model(tmp_path_factory):
    """(exit status, the training stack's top-level modules in sys.modules) after
    ``separate --model`` in a fresh process of this environment (where the stack is
    installed)."""
    tmp_path = tmp_path_factory.mktemp("imports")
    ckpt = fresh_checkpoint(tmp_path / "model.ckpt")
    (model,) = run({"checkpoint": str(ckpt), "format": "onnx"})
    audio = (0.1 * np.random.default_rng(0).standard_normal((2, SR))).astype(np.float32)
    sf.write(tmp_path / "song.wav", audio.T, SR, subtype="FLOAT")
    code = SEPARATE_MODEL.format(stack=TRAINING_STACK)
    argv = [str(tmp_path / "song.wav"), "--model", str(model), "--out", str(tmp_path / "stems")]
    r = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    status, modules = json.loads(r.stdout.splitlines()[-1])
    return status, {m.split(".")[0] for m in modules}


def test_separate_model_imports_no_lightning_hydra_or_torchaudio(imported_by_separate_model):
    status, stack = imported_by_separate_model
    assert status == 0
    assert stack.isdisjoint({"torchaudio", "lightning", "pytorch_lightning", "hydra"}), stack


@pytest.mark.xfail(
    strict=True,
    reason="xslicq.transform.module makes the transforms torch.nn.Modules whenever torch is "
    "installed, and xslicq/__init__.py imports xslicq.config (OmegaConf): the NumPy path "
    "imports torch and OmegaConf where they are installed",
)
def test_separate_model_imports_none_of_the_training_stack(imported_by_separate_model):
    assert imported_by_separate_model[1] == set()
