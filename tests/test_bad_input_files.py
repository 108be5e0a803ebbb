"""Bad input files and what they are: a device or a data root that is a file is named as
what it is (not "does not exist"), a named pipe is read, the stream refuses a WAV cut
short as separate does, a data set of one's own in MUSDB18-HQ layout validates on its own
tracks, ``--accompaniment`` needs a vocals target, and an ONNX file whose metadata
disagrees with its graph is refused when it is loaded, naming the disagreement."""

import json
import os
import threading
import time

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import TensorProto, helper

from xslicq.audio import AudioFileError, load_audio
from xslicq.data.tracks import DatasetError, find_tracks
from xslicq.inference import METADATA_KEY, ModelFileError, OnnxSeparator
from xslicq.separate import main as separate_main
from xslicq.separate import separate_file
from xslicq.stream import StreamError, file_blocks

from helpers import SR, noise_song, onnx_meta, write_tone_track

TARGETS = ["vocals", "drums", "bass", "other"]
META = onnx_meta(targets=TARGETS)


def one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def wav(path, seconds=1.0):
    sf.write(path, noise_song(seconds).T, SR, subtype="FLOAT")
    return path


def feed(fifo, data: bytes, timeout: float = 30.0) -> threading.Thread:
    """Write ``data`` into the named pipe ``fifo`` from a thread, once a reader opens it
    (gives up after ``timeout`` seconds without one, so a test that never reads ends)."""

    def run():
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # ENXIO: no reader yet
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        os.set_blocking(fd, True)
        with open(fd, "wb") as f:
            try:
                f.write(data)
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------ devices and pipes
def test_a_device_is_named_as_one_not_as_missing(tmp_path, capsys):
    """``/dev/zero`` "does not exist" before; reading it would never end."""
    with pytest.raises(AudioFileError, match="audio file /dev/zero is a character device, not a"):
        load_audio("/dev/zero")
    status = separate_main(["/dev/zero", "--model", "m.onnx", "--out", str(tmp_path / "o")])
    err = one_error_line(capsys.readouterr().err)
    assert status == 1 and "/dev/zero is a character device, not a regular file" in err
    with pytest.raises(StreamError, match="/dev/zero is a character device, not a regular"):
        file_blocks("/dev/zero", 1024)


def test_a_named_pipe_is_read_as_the_file_it_carries(tmp_path):
    """bash's ``<(cat song.wav)`` is a named pipe: separate reads it whole, the stream as
    it comes; both give the file's samples ("does not exist" before)."""
    song = wav(tmp_path / "song.wav")
    audio, rate = load_audio(song)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    feeder = feed(fifo, song.read_bytes())
    got, got_rate = load_audio(fifo)
    feeder.join(5)
    assert got_rate == rate == SR and np.array_equal(got, audio)
    feeder = feed(fifo, song.read_bytes())
    rate, channels, blocks = file_blocks(fifo, 1000)
    streamed = np.concatenate(list(blocks), axis=1)
    feeder.join(5)
    assert (rate, channels) == (SR, 2) and np.array_equal(streamed, audio)


def test_a_pipe_cut_short_is_refused_as_a_file_cut_short_is(tmp_path):
    song = wav(tmp_path / "song.wav", 2.0)
    data = song.read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    feeder = feed(fifo, data[: len(data) // 2])
    with pytest.raises(AudioFileError, match="is cut short: its header says 2.00 s but it holds"):
        load_audio(fifo)
    feeder.join(5)
    feeder = feed(fifo, data[: len(data) // 2])
    _, _, blocks = file_blocks(fifo, 4096)
    with pytest.raises(StreamError, match="is cut short: its header says 2.00 s but it holds"):
        list(blocks)
    feeder.join(5)


# ------------------------------------------------------------------ the stream's input
@pytest.mark.parametrize("fmt, subtype", [("WAV", "FLOAT"), ("WAV", "PCM_16"), ("AIFF", "PCM_16")])
def test_the_stream_refuses_a_file_cut_short_as_separate_does(tmp_path, fmt, subtype):
    """The header says 3 s, the file holds 1.5 s: the stream wrote 1.5 s of stems and exited
    0; separate refused it. Now both refuse it with the same message, before any block."""
    full = tmp_path / f"full.{fmt.lower()}"
    sf.write(full, 0.1 * np.ones((3 * SR, 2)), SR, subtype=subtype, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    message = f"audio file {cut} is cut short: its header says 3.00 s but it holds 1.50 s"
    with pytest.raises(AudioFileError, match=message):
        load_audio(cut)
    with pytest.raises(AudioFileError, match=message):
        file_blocks(cut, 1024)
    rate, _, blocks = file_blocks(full, 1024)  # the whole file streams
    assert sum(b.shape[1] for b in blocks) == 3 * SR


def test_a_flac_cut_short_is_refused_where_it_stops(tmp_path):
    """FLAC states its length in STREAMINFO; where the frames stop shows only when the
    stream gets there (libsndfile's error there was a traceback)."""
    full = tmp_path / "full.flac"
    sf.write(full, 0.1 * noise_song(3.0).T, SR, format="FLAC")
    data = full.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    _, _, blocks = file_blocks(cut, 4096)
    with pytest.raises(StreamError, match=f"audio file {cut} is damaged or cut short: sou"):
        list(blocks)


# ------------------------------------------------------------------ data sets
def test_a_data_root_that_is_a_file_is_named_as_a_file(tmp_path):
    root = tmp_path / "data.zip"
    root.write_bytes(b"PK")
    with pytest.raises(DatasetError, match=f"dataset folder {root} is a file, not a folder"):
        find_tracks(root, "train")
    from xslicq.data.datamodule import MusdbDataModule

    module = MusdbDataModule(root=str(root), synthetic=None)
    with pytest.raises(DatasetError, match=f"data.root={root} is a file, not a folder"):
        module.prepare_data()


def test_an_unknown_split_is_a_dataset_error(tmp_path):
    """``evaluate split=validation`` ended in a ValueError traceback (not a DatasetError)."""
    with pytest.raises(DatasetError, match="unknown split 'validation'; choose one of train"):
        find_tracks(tmp_path, "validation")


@pytest.mark.parametrize("tracks, valid", [(2, 1), (9, 1), (16, 2)])
def test_a_data_set_of_ones_own_validates_on_the_last_eighth_of_train(tmp_path, tracks, valid):
    """A folder in MUSDB18-HQ layout whose tracks are not MUSDB18's had no validation
    split ("split 'valid' ... has no tracks"); now its last eighth of train/ validates."""
    names = [f"Song {i:02d}" for i in range(tracks)]
    for name in names:
        write_tone_track(tmp_path / "train" / name, 0.5)
    write_tone_track(tmp_path / "test" / "Song T", 0.5)
    assert [t.name for t in find_tracks(tmp_path, "valid")] == names[-valid:]
    assert [t.name for t in find_tracks(tmp_path, "train")] == names[:-valid]
    assert [t.name for t in find_tracks(tmp_path, "test")] == ["Song T"]


def test_a_single_training_track_says_how_to_get_a_validation_split(tmp_path):
    write_tone_track(tmp_path / "train" / "Only Song", 0.5)
    assert [t.name for t in find_tracks(tmp_path, "train")] == ["Only Song"]
    with pytest.raises(DatasetError, match="holds a single track, which trains; add a second"):
        find_tracks(tmp_path, "valid")


# ------------------------------------------------------------------ --accompaniment
def test_accompaniment_without_a_vocals_target_is_an_error(tmp_path, monkeypatch):
    """It was silently ignored: the run wrote the stems and no accompaniment.wav."""
    import xslicq.separate

    meta = dict(META, targets=["drums", "bass"])

    class TwoMasks:
        def __call__(self, matrix):
            b, c, f, s, t = matrix.shape
            return np.full((b, 2, c, f, s, t), 0.5, np.float32)

    sep = OnnxSeparator(TwoMasks(), meta)
    monkeypatch.setattr(xslicq.separate, "load_separator", lambda *a, **k: sep)
    out = tmp_path / "o"
    with pytest.raises(ValueError, match="this model has no vocals target .its targets: drums, "):
        separate_file(wav(tmp_path / "song.wav"), model="m.onnx", out=out, accompaniment=True)
    assert not out.exists()


# ------------------------------------------------------------------ ONNX metadata
def tiny_onnx(path, bins, columns, targets=4, channels=2, meta=META):
    """An ONNX network (batch, C, F, slices, T) -> (batch, J, C, F, slices, T) that copies
    its input to every target, with ``meta`` as its xslicq metadata."""
    x = helper.make_tensor_value_info(
        "magnitudes", TensorProto.FLOAT, ["batch", channels, bins, "slices", columns]
    )
    y = helper.make_tensor_value_info(
        "masks", TensorProto.FLOAT, ["batch", targets, channels, bins, "slices", columns]
    )
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    shape = helper.make_tensor("shape", TensorProto.INT64, [6], [1, targets, 1, 1, 1, 1])
    graph = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["magnitudes", "axes"], ["one"]),
            helper.make_node("Expand", ["one", "shape"], ["masks"]),
        ],
        "tiny",
        [x],
        [y],
        initializer=[axes, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def grid():
    """(F, T): the matrix the metadata's transform gives the network."""
    sep = OnnxSeparator(lambda m: m, META)
    return sep.r2m.nb_bins, sep.r2m.T


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bins": 1}, "the metadata gives {F} frequency bins, the network's 'magnitudes' {F1}"),
        ({"columns": 1}, "the metadata gives {T} columns per slice, the network's 'magnitudes'"),
        ({"targets": -2}, "the metadata gives 4 targets, the network's 'masks' 2 .axis 1."),
        ({"channels": 1}, "the metadata gives 2 channels, the network's 'magnitudes' 3"),
    ],
)
def test_onnx_metadata_that_disagrees_with_the_graph_is_refused_at_load(
    tmp_path, capsys, grid, change, message
):
    """Before, the file loaded and the first chunk failed inside onnxruntime
    (InvalidArgument: Got invalid dimensions for input), a traceback from separate."""
    bins, columns = grid
    fits = OnnxSeparator.from_file(tiny_onnx(tmp_path / "ok.onnx", bins, columns))
    stems = fits.separate(noise_song(0.5), SR)  # the unedited graph separates
    assert list(stems) == TARGETS and stems["vocals"].shape == (2, SR // 2)
    dims = {"bins": bins, "columns": columns, "targets": 4, "channels": 2}
    dims.update({k: dims[k] + v for k, v in change.items()})
    path = tiny_onnx(tmp_path / "edited.onnx", **dims)
    message = message.format(F=bins, F1=bins + 1, T=columns)
    with pytest.raises(
        ModelFileError, match=f"its metadata disagrees with its network: .*{message}"
    ):
        OnnxSeparator.from_file(path)
    status = separate_main(
        [str(wav(tmp_path / "song.wav")), "--model", str(path), "--out", str(tmp_path / "o")]
    )
    err = one_error_line(capsys.readouterr().err)
    assert status == 2 and "its metadata disagrees with its network" in err
    assert not (tmp_path / "o").exists()
