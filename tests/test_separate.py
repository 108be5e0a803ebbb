"""Separator and the separation CLI, on a checkpoint of a tiny training run."""

import types

import numpy as np
import pytest
import soundfile as sf
import torch

from xslicq import Separator
from xslicq.cli import error_line
from xslicq.separate import main, write_outputs
from xslicq.separator import SeparationInputError
from xslicq.train import train

from helpers import SR, TINY_MODEL, run_module, tiny_train_config


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
    spans = list(sep.separate_spans(audio, SR))  # the same stems, one chunk at a time
    assert [s["vocals"].shape[-1] for s in spans] == [int(2.5 * SR)] * 2 + [2 * SR + 123]
    for t in sep.targets:
        np.testing.assert_array_equal(np.concatenate([s[t] for s in spans], -1), stems[t])


class Scaling(torch.nn.Module):
    """A stand-in trained system: target ``j`` is ``j + 1`` times the mixture."""

    targets = ("vocals", "drums")
    transform = types.SimpleNamespace(sample_rate=SR)

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # the separator reads its device

    def forward(self, x):  # (B, C, L) -> (B, J, C, L)
        return x[:, None] * torch.tensor([1.0, 2.0])[None, :, None, None]


@pytest.mark.parametrize("channels", [2, 1])
def test_cross_faded_chunks_add_up_to_the_whole_and_stream_in_order(channels):
    """The fades of neighbouring chunks sum to one: a system that scales its input gives
    the scaled input back, stretch by stretch (each final up to the next chunk's start)."""
    sep = Separator(Scaling(), chunk_seconds=3.0, overlap_seconds=0.5)
    audio = np.random.default_rng(2).standard_normal((channels, 7 * SR + 123)).astype(np.float32)
    spans = list(sep.separate_spans(audio, SR))
    step = int(2.5 * SR)  # chunks start every chunk - overlap
    assert [s["vocals"].shape for s in spans] == [
        (channels, step),
        (channels, step),
        (channels, audio.shape[1] - 2 * step),
    ]
    for j, t in enumerate(sep.targets):
        whole = np.concatenate([s[t] for s in spans], -1)
        np.testing.assert_allclose(whole, (j + 1) * audio, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(whole, sep.separate(audio, SR)[t])
    short = list(sep.separate_spans(audio[:, : 3 * SR], SR))  # one chunk: one stretch
    assert len(short) == 1 and short[0]["drums"].shape == (channels, 3 * SR)
    resampled = list(sep.separate_spans(audio, 22050))  # another rate: resampled whole
    assert len(resampled) == 1 and resampled[0]["drums"].shape == audio.shape


def test_stems_are_written_as_they_are_separated(tmp_path):
    """write_outputs takes the stems stretch by stretch: each is on disk before the next is
    asked for, and a separation that fails midway leaves no stem and no partial file."""
    out = tmp_path / "stems"
    on_disk = []

    def spans(folder, fail=False):
        for k in range(3):
            yield {"vocals": np.full((2, 1000), k, np.float32), "bass": np.ones((2, 1000))}
            partial = sorted(folder.glob(".vocals-*.wav.partial"))
            on_disk.append(partial[0].stat().st_size - 2 * 1000 * 4 * (k + 1))
            if fail and k == 1:
                raise RuntimeError("the separation broke")

    write_outputs(out, spans(out), SR, [], {"input": "song.wav"})
    assert len(on_disk) == 3 and all(0 < header < 200 for header in on_disk)
    vocals, rate = sf.read(out / "vocals.wav", dtype="float32", always_2d=True)
    assert rate == SR and vocals.shape == (3000, 2)
    np.testing.assert_array_equal(vocals[:, 0], np.repeat(np.arange(3, dtype=np.float32), 1000))
    assert sf.read(out / "bass.wav")[0].shape == (3000, 2)

    again = tmp_path / "again"
    with pytest.raises(RuntimeError, match="the separation broke"):
        write_outputs(again, spans(again, fail=True), SR, [], {"input": "song.wav"})
    assert sorted(p.name for p in again.iterdir()) == [".xslicq-separate.json"]


def test_cli_writes_what_the_separator_separates(checkpoint, tmp_path, capsys):
    """The CLI streams the stems into the WAVs; they are the Separator's to the bit."""
    song = tmp_path / "song.wav"
    audio = 0.1 * np.random.default_rng(3).standard_normal((2, 5 * SR + 7)).astype(np.float32)
    sf.write(song, audio.T, SR, subtype="FLOAT")
    out = tmp_path / "stems"
    args = ["--out", str(out), "--chunk-seconds", "2.5", "--wiener", "1", "--accompaniment"]
    assert main([str(song), "--checkpoint", str(checkpoint), *args]) == 0, capsys.readouterr()
    sep = Separator.from_checkpoint(checkpoint, chunk_seconds=2.5)
    sep.system.wiener_iterations = 1
    stems = sep.separate(audio, SR)
    stems["accompaniment"] = stems["drums"] + stems["bass"] + stems["other"]
    for name, stem in stems.items():
        data, rate = sf.read(out / f"{name}.wav", dtype="float32", always_2d=True)
        assert rate == SR
        np.testing.assert_array_equal(data.T, stem)


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
    args = [str(song), "--checkpoint", str(checkpoint), "--out", str(out)]
    args += ["--accompaniment", "--wiener", "1"]
    r = run_module("xslicq.separate", *args, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("vocals", "drums", "bass", "other", "accompaniment"):
        data, rate = sf.read(out / f"{name}.wav")
        assert rate == SR and data.shape == audio.shape
    again = run_module("xslicq.separate", *args, timeout=300)
    assert again.returncode == 2 and "exists and is not empty; use --force" in again.stderr
    missing = run_module(
        "xslicq.separate",
        str(tmp_path / "no.wav"),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(tmp_path / "x"),
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
    r = run_module(
        "xslicq.quickstart",
        "trainer=debug",
        "trainer.max_steps=2",  # the demo's own 368 steps would be 184 epochs of debug's 2
        f"paths.data_dir={tmp_path / 'data'}",
        "data.num_workers=0",
        "data.synthetic.tracks=3",
        "data.synthetic.seconds=4.0",
        "data.val_seq_dur=2.0",
        *TINY_MODEL,
        "log_media=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "separated held-out song synth_002" in r.stdout
    for stem in ("vocals", "drums", "bass", "other", "mean"):
        assert any(line.startswith(stem) for line in r.stdout.splitlines()), stem
    assert len(list((tmp_path / "run" / "separated").glob("*/*.wav"))) == 4


def test_error_line_is_one_line_and_names_a_systems_path():
    """The commands' one ``error: ...`` line (xslicq.cli, shared by separate, stream and
    the synthetic data generator)."""
    assert error_line(ValueError("bad\n  value\there")) == "error: bad value here"
    system = FileNotFoundError(2, "No such file or directory", "/no/song.wav")
    assert error_line(system) == "error: /no/song.wav: No such file or directory"
    ours = FileNotFoundError("audio file /no/song.wav does not exist")  # no file name
    assert error_line(ours) == "error: audio file /no/song.wav does not exist"
