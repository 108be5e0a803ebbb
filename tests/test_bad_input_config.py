"""Bad config values of the Hydra commands: each is one ``error:`` line naming the value
and what is allowed (exit status 2), never a traceback: ``trainer.max_steps=0``,
``model.hidden=0``, ``evaluate split=validation``, ``transform_demo seconds=0`` and
``dtype=int8``."""

import pytest

from xslicq.train import ConfigError, train

from helpers import TINY_DATA, TINY_MODEL, run_module, tiny_train_config


def one_error_line(err: str) -> str:
    """The last line of a Hydra command's stderr is its one error line (Hydra and the
    library may log before it), and no traceback came before."""
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    return last


@pytest.mark.parametrize(
    "override, message",
    [
        # Lightning trains nothing and validates nothing: 'val/sdr_best' was never logged
        ("trainer.max_steps=0", "trainer.max_steps must be an integer >= 1 (or -1: no limit)"),
        # the network refused it with a ValueError: a 34-line traceback from the entry point
        ("model.hidden=0", "model.hidden must be a positive integer, got 0"),
    ],
)
def test_bad_values_are_config_errors_before_training(override, message, tmp_path, tiny_musdb):
    cfg = tiny_train_config(tmp_path, tiny_musdb, [override])
    with pytest.raises(ConfigError) as raised:
        train(cfg)
    assert message in str(raised.value)
    assert not (tmp_path / "checkpoints").exists()


def test_a_bad_network_value_is_one_error_line_from_the_cli(tmp_path, tiny_musdb):
    r = run_module(
        "xslicq.train",
        "trainer=debug",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        "model.hidden=0",
        f"hydra.run.dir={tmp_path}",
        timeout=300,
    )
    assert r.returncode == 2
    assert one_error_line(r.stderr) == "error: model.hidden must be a positive integer, got 0"


def test_an_unknown_evaluation_split_is_one_error_line(tmp_path, tiny_musdb):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"the split is checked before the checkpoint is read")
    r = run_module(
        "xslicq.evaluate",
        f"checkpoint={checkpoint}",
        "data=musdb",
        f"data.root={tiny_musdb}",
        "split=validation",
        f"out={tmp_path / 'eval'}",
        timeout=300,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "unknown split 'validation'; choose one of train, valid, test" in r.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("seconds=0", "error: seconds must be positive and at most 120 "),
        ("dtype=int8", "error: dtype must be one of float32, float64, got 'int8'"),
    ],
)
def test_transform_demo_values_are_one_error_line(override, message, tmp_path):
    r = run_module("xslicq.transform_demo", override, f"hydra.run.dir={tmp_path}", timeout=300)
    assert r.returncode == 2
    assert one_error_line(r.stderr).startswith(message)
    assert not (tmp_path / "spectrogram.png").exists()
