"""The console commands of ``pip install`` (pyproject's ``[project.scripts]``, xslicq/console.py):
one per ``python -m xslicq.*`` entry point, each installed in the venv's bin folder, each
answering ``--help`` from any folder, and ``xslicq-train`` and ``xslicq-separate`` giving what
their ``python -m`` forms give."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import xslicq.console as console
from xslicq.console import COMMANDS

from helpers import ROOT, SR, TINY_DATA, TINY_MODEL, fresh_checkpoint, noise_song

BIN = Path(sys.executable).parent
HYDRA = {  # commands whose module is a @hydra.main: their --help names the task
    "xslicq-train": "train",
    "xslicq-evaluate": "evaluate",
    "xslicq-oracle": "oracle",
    "xslicq-export": "export",
    "xslicq-cadenza": "cadenza",
    "xslicq-quickstart": "quickstart",
    "xslicq-transform-demo": "transform_demo",
}
ARGPARSE = sorted(set(COMMANDS) - set(HYDRA))


def command(name: str) -> str:
    path = BIN / name
    if not path.is_file():
        pytest.fail(f"{path} is not installed: run .venv/bin/pip install --no-deps -e .")
    return str(path)


def run(args, cwd, timeout=600):
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_every_entry_point_has_a_console_command(monkeypatch):
    """[project.scripts] lists xslicq/console.py's commands, each running its module, and
    those modules are every one with a ``__main__`` block (the ``python -m`` forms)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(COMMANDS)
    ran = []
    monkeypatch.setattr(console, "run", ran.append)
    for name, target in scripts.items():
        module, function = target.split(":")
        assert module == "xslicq.console"
        getattr(console, function)()
        assert ran[-1] == COMMANDS[name]
    mains = set()
    for path in (ROOT / "xslicq").rglob("*.py"):
        if 'if __name__ == "__main__":' in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            mains.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    assert mains == set(COMMANDS.values())
    for name in COMMANDS:  # installed (pip install -e . writes them)
        command(name)


@pytest.mark.parametrize("name", ARGPARSE)
def test_argparse_commands_answer_help(name, tmp_path):
    r = run([command(name), "--help"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"usage: python -m {COMMANDS[name]} ")


@pytest.mark.slow  # seven Hydra start-ups: 1-2 minutes on 2 cores (120 s loaded)
def test_hydra_commands_answer_help_from_any_folder(tmp_path):
    """Hydra finds the configs (conf/) from a folder other than the repository's."""
    for name, task in HYDRA.items():
        r = run([command(name), "--help"], cwd=tmp_path)
        assert r.returncode == 0, (name, r.stderr[-2000:])
        assert r.stdout.startswith(f"{task} is powered by Hydra."), (name, r.stdout[:200])
        assert "== Configuration groups ==" in r.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_separate_command_reports_errors_like_python_m(tmp_path):
    missing = tmp_path / "missing.wav"
    for args in ([command("xslicq-separate")], [sys.executable, "-m", "xslicq.separate"]):
        r = run([*args, str(missing), "--checkpoint", "x.ckpt", "--out", "o"], cwd=tmp_path)
        assert (r.returncode, r.stderr) == (1, f"error: audio file {missing} does not exist\n")


@pytest.mark.slow  # a tiny training run: 40-70 s on 2 cores
def test_train_command_trains(tmp_path, tiny_musdb):
    run_dir = tmp_path / "run"
    r = run(
        [
            command("xslicq-train"),
            "trainer=debug",
            f"data.root={tiny_musdb}",
            *TINY_DATA,
            *TINY_MODEL,
            "log_media=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert re.search(r"val/sdr_best = -?\d+\.\d{3}$", (run_dir / "train.log").read_text(), re.M)
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "transform=bark" in overrides  # the command line reached Hydra


@pytest.mark.slow  # two separations of one second: 30 s on 2 cores, 140 s loaded
def test_separate_command_equals_python_m(tmp_path):
    checkpoint = fresh_checkpoint(tmp_path / "tiny.ckpt")
    song = tmp_path / "song.wav"
    sf.write(song, noise_song(1.0).T, SR, subtype="FLOAT")
    stems = {}
    for form, args in (
        ("console", [command("xslicq-separate")]),
        ("module", [sys.executable, "-m", "xslicq.separate"]),
    ):
        out = tmp_path / form
        r = run([*args, str(song), "--checkpoint", str(checkpoint), "--out", str(out)], tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        stems[form] = {p.relative_to(out): sf.read(p)[0] for p in sorted(out.rglob("*.wav"))}
    assert sorted(stems["console"]) == sorted(stems["module"])
    assert {p.stem for p in stems["console"]} == {"vocals", "drums", "bass", "other"}
    for path, audio in stems["console"].items():
        assert audio.shape == (SR, 2)
        np.testing.assert_array_equal(audio, stems["module"][path])


@pytest.mark.slow  # a wheel build and two Hydra start-ups: about 30 s on 2 cores
def test_a_wheel_install_finds_its_configs(tmp_path):
    """Installed from a wheel (not editable, no repository beside it), the Hydra commands
    still compose their configs: the wheel carries conf/ as xslicq/conf (a link in the
    repository), and every entry point looks there."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    wheel = next(wheels.glob("xslicq-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    installed = target / "xslicq" / "conf"
    assert installed.is_dir() and not installed.is_symlink()
    assert sorted(p.relative_to(installed) for p in installed.rglob("*.yaml")) == sorted(
        p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml")
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    for module in ("xslicq.train", "xslicq.cadenza"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--cfg", "job"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "checkpoint" in proc.stdout or "task_name: train" in proc.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import xslicq; print(xslicq.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(target / "xslicq" / "__init__.py")
