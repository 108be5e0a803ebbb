"""One way to fail (issue 23): every entry point prints one ``error: <message>`` line and
exits 2 for a usage or configuration error, 1 for a runtime failure, 130 for SIGINT and 143
for SIGTERM (:func:`xslicq.cli.exit_status`, :func:`xslicq.cli.run_command`)."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

from xslicq import cli, errors

from helpers import ROOT, compose_config, run_module


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def one_error_line(stderr: str) -> str:
    (line,) = error_lines(stderr)
    assert line.startswith("error: "), stderr
    return line


# --------------------------------------------------------------------- the mapping
@pytest.mark.parametrize(
    "error, status",
    [
        (errors.ConfigError("x"), 2),
        (errors.CheckpointError("x"), 2),
        (errors.ModelFileError("x"), 2),
        (errors.DeviceError("x"), 2),
        (errors.DataConfigError("x"), 2),
        (errors.DatasetError("x"), 2),
        (errors.OutputRefused("x"), 2),
        (errors.EvaluationConfigError("x"), 2),
        (errors.CadenzaConfigError("x"), 2),
        (errors.ExportConfigError("x"), 2),
        (errors.StreamConfigError("x"), 2),
        (errors.OutputError("x"), 1),  # a write that fails: a full disk
        (errors.AudioFileError("x"), 1),
        (errors.StreamError("x"), 1),
        (errors.EvaluationError("x"), 1),
        (errors.CadenzaError("x"), 1),
        (errors.ExportError("x"), 1),
        (errors.ResourceError("x"), 1),
        (OSError(28, "No space left on device"), 1),
        (ValueError("x"), 1),
        (KeyboardInterrupt(), 130),
        (cli.Interrupted(signal.SIGTERM), 143),
        (cli.Interrupted(signal.SIGINT), 130),
    ],
)
def test_exit_status_of_each_family(error, status):
    assert cli.exit_status(error) == status


def test_a_training_interrupt_keeps_its_signal_status():
    from xslicq.callbacks import TrainingInterrupted

    stop = TrainingInterrupted(signal.SIGTERM, "run/checkpoints/last.ckpt", 3, 40)
    assert cli.exit_status(stop) == 143


def test_run_command_returns_the_result_or_the_status_after_one_line(capsys):
    assert cli.run_command(lambda: 7) == (0, 7)

    def refuse():
        raise errors.ConfigError("optimizer.lr must be a positive number,\n   got 0")

    assert cli.run_command(refuse) == (2, None)
    assert capsys.readouterr().err == "error: optimizer.lr must be a positive number, got 0\n"

    def full_disk():
        raise OSError(28, "No space left on device", "out/vocals.wav")

    assert cli.run_command(full_disk) == (1, None)
    assert capsys.readouterr().err == "error: out/vocals.wav: No space left on device\n"

    def bug():
        raise TypeError("a bug keeps its traceback")

    with pytest.raises(TypeError):
        cli.run_command(bug)
    with pytest.raises(ValueError):  # not among the handled kinds
        cli.run_command(lambda: int("x"), handled=(OSError,))


def test_run_command_turns_sigint_and_sigterm_into_130_and_143(capsys):
    def interrupted():
        raise KeyboardInterrupt

    assert cli.run_command(interrupted) == (130, None)
    assert capsys.readouterr().err == "error: interrupted by SIGINT\n"

    cleaned = []

    def terminated():
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            cleaned.append(True)  # the work's cleanups run

    before = signal.getsignal(signal.SIGTERM)
    assert cli.run_command(terminated) == (143, None)
    assert capsys.readouterr().err == "error: interrupted by SIGTERM\n"
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before  # put back


def test_a_command_stopped_by_sigterm_exits_143():
    """In a real process: SIGTERM during the work is one line and status 143 (Python's own
    default would end the process by the signal, status -15)."""
    code = (
        "import signal, sys; from xslicq.cli import run_command; "
        "sys.exit(run_command(lambda: signal.raise_signal(signal.SIGTERM))[0])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert r.returncode == 143, r.stderr
    assert one_error_line(r.stderr) == "error: interrupted by SIGTERM"


def test_argparse_usage_errors_are_one_error_line_and_status_2(capsys):
    parser = cli.ArgumentParser(prog="python -m xslicq.x")
    parser.add_argument("--tracks", type=int, required=True)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--tracks", "many"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m xslicq.x")
    assert one_error_line(err) == "error: argument --tracks: invalid int value: 'many'"


# --------------------------------------------------- every entry point, a usage error
@pytest.mark.parametrize(
    "module, args, message",
    [
        ("xslicq.train", ["optimizer.lr=0"], "optimizer.lr must be a positive number, got 0"),
        ("xslicq.evaluate", [], "no checkpoint given: pass checkpoint=/path/to/model.ckpt"),
        ("xslicq.oracle", ["metric=bogus"], "unknown metric 'bogus'"),
        ("xslicq.cadenza", [], "no checkpoint given: pass checkpoint=/path/to/model.ckpt"),
        ("xslicq.export", [], "no checkpoint given: pass checkpoint=/path/to/model.ckpt"),
        ("xslicq.transform_demo", ["seconds=0"], "seconds must be positive and at most 120"),
        ("xslicq.quickstart", ["optimizer.lr=0"], "optimizer.lr must be a positive number"),
        ("xslicq.separate", ["a.wav", "--model", "m.onnx"], "the following arguments are"),
        ("xslicq.stream", ["a.wav", "o", "--model", "m.onnx", "--block", "0"], "--block must"),
        ("xslicq.data.synthetic", ["--out", "x", "--tracks", "many"], "invalid int value"),
    ],
)
def test_a_usage_error_is_one_line_and_status_2(tmp_path, module, args, message):
    hydra = module not in ("xslicq.separate", "xslicq.stream", "xslicq.data.synthetic")
    if hydra:
        args = [*args, f"hydra.run.dir={tmp_path / 'run'}"]
    r = run_module(module, *args, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert message in one_error_line(r.stderr)


# ------------------------------------------------- every entry point, a runtime failure
def test_separate_a_damaged_song_is_one_line_and_status_1(tmp_path):
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF" + b"\0" * 40)
    r = run_module(
        "xslicq.separate",
        str(song),
        *("--model", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "o")),
        timeout=120,
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert str(song) in one_error_line(r.stderr)


def test_synthetic_into_a_file_is_one_line_and_status_1(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    r = run_module(
        "xslicq.data.synthetic", "--out", str(taken), "--tracks", "2", "--seconds", "2", timeout=120
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert "exists and is not a folder" in one_error_line(r.stderr)


def hydra_config(name: str, tmp_path, overrides=()):
    """``conf/<name>.yaml`` composed as a single run would see it (HydraConfig set)."""
    cfg = compose_config(name, list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


RUNTIME = [  # (module, config, the function its main hands the work to)
    ("xslicq.train", "train", "train"),
    ("xslicq.evaluate", "evaluate", "run"),
    ("xslicq.oracle", "oracle", "run"),
    ("xslicq.cadenza.__main__", "cadenza", "run"),
    ("xslicq.export", "export", "run"),
    ("xslicq.transform_demo", "transform_demo", "run_demo"),
    ("xslicq.quickstart", "quickstart", "quickstart"),
]


@pytest.mark.parametrize("module, config, work", RUNTIME)
@pytest.mark.parametrize(
    "error, status",
    [
        (errors.AudioFileError("audio file song.wav is damaged or cut short"), 1),
        (OSError(5, "Input/output error", "out/summary.md"), 1),
        (errors.DeviceError("device cuda: no GPU here; use cpu"), 2),
    ],
)
def test_hydra_entry_points_map_failures_to_one_line(
    monkeypatch, capsys, tmp_path, module, config, work, error, status
):
    """Each Hydra entry point's ``main`` with its work failing: one ``error:`` line, status 1
    for a runtime failure (a damaged song, an I/O error), 2 for a setting."""
    mod = importlib.import_module(module)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(mod, work, fail)
    cfg = hydra_config(config, tmp_path)
    with pytest.raises(SystemExit) as stop:
        mod.main.__wrapped__(cfg)
    assert stop.value.code == status
    line = one_error_line(capsys.readouterr().err)
    assert line == cli.error_line(error)


@pytest.mark.parametrize("module, work", [("xslicq.stream", "stream_file")])
def test_stream_a_runtime_failure_is_one_line_and_status_1(monkeypatch, capsys, module, work):
    mod = importlib.import_module(module)

    def fail(*args, **kwargs):
        raise errors.StreamError("the input holds NaN or inf samples (at 0.500 s)")

    monkeypatch.setattr(mod, work, fail)
    assert mod.main(["a.wav", "out", "--model", "m.onnx"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        "error: the input holds NaN or inf samples (at 0.500 s)"
    )
