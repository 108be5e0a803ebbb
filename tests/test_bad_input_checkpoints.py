"""A damaged checkpoint given to evaluate or cadenza is one error line at once, before the data
set is read or generated (it was a CheckpointError traceback after the synthetic set's
generation, 44 s)."""

import pytest

from helpers import run_module


@pytest.mark.parametrize("command", ["xslicq.evaluate", "xslicq.cadenza"])
def test_a_damaged_checkpoint_is_one_error_line_before_any_data_work(tmp_path, command):
    if command == "xslicq.cadenza":
        pytest.importorskip("clarity", reason="pyclarity is not installed")
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    data = tmp_path / "synthetic"
    r = run_module(
        command,
        f"checkpoint={ckpt}",
        f"data.root={data}",
        "data.synthetic.tracks=3",
        "data.synthetic.seconds=2.0",
        "data.synthetic.valid_tracks=1",
        "data.synthetic.test_tracks=1",
        f"out={tmp_path / 'out'}",
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]  # a checkpoint is a setting: a usage error
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = [x for x in r.stderr.splitlines() if "error" in x]
    assert line.startswith(f"error: cannot read checkpoint {ckpt} (")
    assert "); it is damaged or not a checkpoint" in line
    assert not data.exists()  # the checkpoint was read first
