"""Bad input to the separation CLI and the Separator: each case is refused with one clear
message before any work, and separate never writes over a file it did not write."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from xslicq import Separator
from xslicq.audio import load_audio
from xslicq.separate import main
from xslicq.separator import SeparationInputError
from xslicq.train import train

from helpers import SR, run_module, tiny_train_config

STEMS = ("vocals.wav", "drums.wav", "bass.wav", "other.wav")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_musdb):
    out = tmp_path_factory.mktemp("run")
    train(tiny_train_config(out, tiny_musdb, ["log_media=false"]))
    return out / "checkpoints" / "last.ckpt"


def song(path, seconds=1.0, seed=0):
    """A stereo noise song of ``seconds`` at 44.1 kHz, as a float WAV."""
    audio = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * SR), 2))
    sf.write(path, audio, SR, subtype="FLOAT")
    return path


def separate(capsys, *args):
    """``python -m xslicq.separate *args`` in this process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def no_separation(monkeypatch):
    """Fail the test if a separation starts (the checks must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the separation started before the check")

    monkeypatch.setattr(Separator, "separate", refuse)
    monkeypatch.setattr(Separator, "separate_spans", refuse)  # what the CLI calls


# ------------------------------------------------------------------- the output folder
def test_force_never_overwrites_the_reference_stems_beside_the_mixture(
    checkpoint, tiny_musdb, tmp_path, capsys, no_separation
):
    track = shutil.copytree(tiny_musdb / "test" / "test_0", tmp_path / "trackcopy")
    before = {p.name: p.read_bytes() for p in track.iterdir()}
    for force in ((), ("--force",)):
        status, _, err = separate(
            capsys, track / "mixture.wav", "--checkpoint", checkpoint, "--out", track, *force
        )
        assert status == 2
        assert "would overwrite: vocals.wav, drums.wav, bass.wav, other.wav" in one_error_line(err)
    assert {p.name: p.read_bytes() for p in track.iterdir()} == before


def test_force_replaces_only_its_own_stems_and_removes_stale_ones(checkpoint, tmp_path, capsys):
    first, second = song(tmp_path / "a.wav", 1.0, 1), song(tmp_path / "b.wav", 1.5, 2)
    out = tmp_path / "stems"
    args = ("--checkpoint", checkpoint, "--out", out)
    assert separate(capsys, first, *args, "--accompaniment")[0] == 0
    (out / "notes.txt").write_text("mine")
    status, _, err = separate(capsys, second, *args)  # no --force: the folder is kept
    assert status == 2 and "use --force to replace the stems of a.wav" in one_error_line(err)
    assert sf.info(out / "vocals.wav").frames == SR

    assert separate(capsys, second, *args, "--force")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".xslicq-separate.json", "notes.txt", *STEMS]
    )  # accompaniment.wav of the earlier song is gone, notes.txt kept
    assert all(sf.info(out / name).frames == int(1.5 * SR) for name in STEMS)
    manifest = json.loads((out / ".xslicq-separate.json").read_text())
    assert sorted(manifest["files"]) == sorted(STEMS)
    assert manifest["input"] == str(second.resolve())
    assert manifest["checkpoint"] == str(checkpoint.resolve())

    song(out / "vocals.wav", 0.5, 3)  # the user replaced a stem: no longer separate's
    status, _, err = separate(capsys, first, *args, "--force")
    assert status == 2 and "would overwrite: vocals.wav;" in one_error_line(err)
    assert sf.info(out / "vocals.wav").frames == SR // 2


def test_an_output_path_that_is_a_file_fails_before_separating(
    checkpoint, tmp_path, capsys, no_separation
):
    mix, taken = song(tmp_path / "mix.wav"), tmp_path / "taken"
    taken.write_text("a file")
    status, _, err = separate(capsys, mix, "--checkpoint", checkpoint, "--out", taken)
    assert status == 2 and f"output folder {taken} is a file, not a folder" in one_error_line(err)
    status, _, err = separate(capsys, mix, "--checkpoint", checkpoint, "--out", taken / "sub")
    assert status == 2 and f"({taken} is a file, so it cannot be made)" in one_error_line(err)
    assert taken.read_text() == "a file"


def test_an_output_folder_that_cannot_be_written_fails_before_separating(
    checkpoint, tmp_path, capsys, no_separation
):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root ignores the mode: /proc takes no new files
        locked = Path("/proc")
    out = locked / "stems"
    status, _, err = separate(
        capsys, song(tmp_path / "mix.wav"), "--checkpoint", checkpoint, "--out", out
    )
    assert status == 2
    assert f"output folder {out} cannot be written: no new file can be made in {locked}" in (
        one_error_line(err)
    )


# -------------------------------------------------------------------------- the audio
@pytest.mark.parametrize("fmt, subtype", [("WAV", "FLOAT"), ("WAV", "PCM_16"), ("AIFF", "PCM_16")])
def test_a_truncated_file_is_refused_naming_both_durations(tmp_path, capsys, fmt, subtype):
    """The header says 3 s, the file holds 1.5 s: libsndfile reads the 1.5 s silently."""
    full = tmp_path / f"full.{fmt.lower()}"
    sf.write(full, 0.1 * np.ones((3 * SR, 2)), SR, subtype=subtype, format=fmt)
    assert load_audio(full)[0].shape == (2, 3 * SR)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    message = f"audio file {cut} is cut short: its header says 3.00 s but it holds 1.50 s"
    with pytest.raises(ValueError, match=message):
        load_audio(cut)
    status, _, err = separate(capsys, cut, "--checkpoint", "none.ckpt", "--out", tmp_path / "o")
    assert status == 1 and message in one_error_line(err)


def test_a_folder_given_as_audio_is_named_as_a_folder(tmp_path, capsys):
    status, _, err = separate(capsys, tmp_path, "--checkpoint", "x.ckpt", "--out", tmp_path / "o")
    assert status == 1 and f"error: {tmp_path} is a folder, not an audio file" in err
    one_error_line(err)


# --------------------------------------------------------------------- the sample rate
def test_sample_rates_that_are_no_audio_rate_are_refused(checkpoint):
    sep = Separator.from_checkpoint(checkpoint)
    x = 0.1 * np.random.default_rng(0).standard_normal((2, 2000)).astype(np.float32)
    with pytest.raises(SeparationInputError, match=r"sample_rate=400000 Hz is outside 8000"):
        sep.separate(x, 400_000)
    with pytest.raises(SeparationInputError, match=r"a rate in kHz\? 44 kHz is 44000 Hz"):
        sep.separate(x, 44)
    for rate in (True, np.bool_(True), 44100.5, float("nan"), "44100", None):
        with pytest.raises(SeparationInputError, match="must be a whole number of Hz"):
            sep.separate(x, rate)
    assert sep.separate(x, np.int64(8000))["vocals"].shape == (2, 2000)
    assert sep.separate(x, 44100.0)["vocals"].shape == (2, 2000)  # a whole number is fine
    slow = sep.separate(x[:, :400], 4000, any_rate=True)  # allowed when asked for
    assert slow["vocals"].shape == (2, 400)


# ---------------------------------------------------- checkpoint, device and values
def _foreign(path, good):
    torch.save([1, 2, 3], path)


def _garbage(path, good):
    path.write_bytes(b"not a checkpoint at all" * 10)


def _truncated(path, good):
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _other_weights(path, good):
    state = torch.load(good, map_location="cpu", weights_only=True)
    state["state_dict"] = {k: torch.zeros(1) for k in state["state_dict"]}  # wrong shapes
    torch.save(state, path)


@pytest.mark.parametrize(
    "make, message",
    [
        (_garbage, "cannot read checkpoint {path} (UnpicklingError"),
        (_truncated, "cannot read checkpoint {path} ("),
        (_foreign, "{path} is not an xslicq training checkpoint"),
        (_other_weights, "the weights in checkpoint {path} do not fit the model"),
        (None, "checkpoint {path} is a folder, not a checkpoint file"),
    ],
)
def test_an_unusable_checkpoint_is_one_error_line(checkpoint, tmp_path, capsys, make, message):
    path = tmp_path / "bad.ckpt"
    path.mkdir() if make is None else make(path, checkpoint)
    out = tmp_path / "stems"
    status, _, err = separate(
        capsys, song(tmp_path / "mix.wav"), "--checkpoint", path, "--out", out
    )
    assert status == 2 and message.format(path=path) in one_error_line(err)
    assert not out.exists()


def test_device_names(checkpoint, tmp_path, capsys):
    mix = song(tmp_path / "mix.wav")
    args = ("--checkpoint", checkpoint)
    status, _, err = separate(capsys, mix, *args, "--device", "bogus", "--out", tmp_path / "a")
    assert status == 2 and "unknown --device='bogus'" in one_error_line(err)
    # auto: CUDA when there is a GPU, else the CPU (torch itself knows no device "auto")
    status, _, err = separate(capsys, mix, *args, "--device", "auto", "--out", tmp_path / "b")
    assert status == 0, err
    assert sf.info(tmp_path / "b" / "vocals.wav").frames == SR


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-3"])
def test_chunk_seconds_out_of_range_is_one_error_line(checkpoint, tmp_path, capsys, value):
    status, _, err = separate(
        capsys,
        song(tmp_path / "mix.wav"),
        "--checkpoint",
        checkpoint,
        "--out",
        tmp_path / "o",
        "--chunk-seconds",
        value,
    )
    assert status == 2
    assert f"--chunk-seconds must be a finite number > 0, got {float(value)}" in (
        one_error_line(err)
    )
    with pytest.raises(ValueError, match="chunk_seconds must be a finite number of seconds"):
        Separator.from_checkpoint(checkpoint, chunk_seconds=float("inf"))


def test_the_cli_reports_a_damaged_checkpoint_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x80\x02garbage")
    r = run_module(
        "xslicq.separate",
        str(song(tmp_path / "mix.wav")),
        *("--checkpoint", str(bad), "--out", str(tmp_path / "o")),
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr  # a checkpoint: a usage error
    assert f"error: cannot read checkpoint {bad}" in r.stderr
