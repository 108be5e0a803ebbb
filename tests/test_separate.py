"""Separator and the separation CLI, on a checkpoint of a tiny training run."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from xslicq import Separator
from xslicq.separator import SeparationInputError
from xslicq.train import train

from helpers import ROOT, SR, TINY_MODEL, tiny_train_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_musdb):
    out = tmp_path_factory.mktemp("run")
    train(tiny_train_config(out, tiny_musdb, ["log_media=false", "system.mask_sum_to_one=true"]))
    return out / "checkpoints" / "last.ckpt"


def test_separator_shapes_rates_and_mixture_sum(checkpoint):
    sep = Separator.from_checkpoint(checkpoint, chunk_seconds=3.0, overlap_seconds=0.5)
    assert sep.targets == ("vocals", "drums", "bass", "other")
    rng = np.random.default_rng(0)
    audio = 0.1 * rng.standard_normal((2, 7 * SR + 123)).astype(np.float32)
    stems = sep.separate(audio, SR)  # three cross-faded chunks
    assert set(stems) == set(sep.targets)
    assert all(s.shape == audio.shape and s.dtype == np.float32 for s in stems.values())
    # mask-sum mode: the stems add up to the input
    np.testing.assert_allclose(sum(stems.values()), audio, atol=1e-4)
    mono = sep.separate(audio[0], 22050)  # mono, another sample rate
    assert all(s.shape == (1, audio.shape[1]) for s in mono.values())
    torch_in = sep.separate(torch.from_numpy(audio[:, :SR]), SR)
    assert torch_in["vocals"].shape == (2, SR)


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.zeros((2, 0), np.float32), "empty"),
        (np.zeros((2, 1000), np.float32), "silent"),
        (np.full((2, 1000), np.nan, np.float32), "NaN"),
        (np.ones((1000, 2), np.float32), "expected mono or stereo audio, got 1000 channels"),
        (np.ones((1, 2, 3), np.float32), "expected audio of shape"),
    ],
)
def test_bad_audio(checkpoint, audio, match):
    sep = Separator.from_checkpoint(checkpoint)
    with pytest.raises(SeparationInputError, match=match):
        sep.separate(audio, SR)


def test_cli(checkpoint, tmp_path):
    song = tmp_path / "song.flac"
    audio = 0.1 * np.random.default_rng(1).standard_normal((SR * 2, 2))
    sf.write(song, audio, SR)
    out = tmp_path / "stems"
    cmd = [
        sys.executable,
        "-m",
        "xslicq.separate",
        str(song),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--accompaniment",
        "--wiener",
        "1",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("vocals", "drums", "bass", "other", "accompaniment"):
        data, rate = sf.read(out / f"{name}.wav")
        assert rate == SR and data.shape == audio.shape
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 1 and "exists and is not empty; use --force" in again.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "xslicq.separate",
            str(tmp_path / "no.wav"),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert missing.returncode == 1 and "no.wav does not exist" in missing.stderr


@pytest.mark.slow
def test_quickstart_trains_and_separates_a_held_out_song(tmp_path):
    """`make demo`'s job, shrunk: synthetic data generated offline, brief training, then the
    held-out song separated with SDRs printed."""
    import shutil

    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "xslicq.quickstart",
            "trainer=debug",
            f"paths.data_dir={tmp_path / 'data'}",
            "data.num_workers=0",
            "data.synthetic.tracks=3",
            "data.synthetic.seconds=4.0",
            "data.val_seq_dur=2.0",
            *TINY_MODEL,
            "log_media=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "separated held-out song synth_002" in r.stdout
    for stem in ("vocals", "drums", "bass", "other", "mean"):
        assert any(line.startswith(stem) for line in r.stdout.splitlines()), stem
    assert len(list((tmp_path / "run" / "separated").glob("*/*.wav"))) == 4
