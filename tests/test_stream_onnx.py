"""Streaming with an exported causal network (``--model model.onnx``): the export of a
causal checkpoint is a stream step (magnitudes and recurrent state in, masks and state out),
the ONNX engine streams the torch engine's stems within 1e-4 with the state carried from
slice to slice, the command runs where torch cannot be imported, and a whole-song export is
one clear error."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import soundfile as sf

from xslicq import Separator
from xslicq.export import run
from xslicq.inference import METADATA_KEY, STATE_INPUTS, STATE_OUTPUTS, OnnxSeparator
from xslicq.stream import OnnxStreamEngine, Streamer, StreamError, TorchEngine, main

from helpers import (
    NO_TORCH,
    ROOT,
    SR,
    fresh_checkpoint,
    perturbed_system,
    rel_err,
    save_checkpoint,
    stream_blocks,
    tones_and_noise,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARITY = 1e-4  # max |ONNX stem - torch stem| / max |torch stem|, over the whole signal
# the causal configuration with a tiny network (hidden 8, 3 LSTM layers), 4 columns per slice
SMALL = ("experiment=stream", "model.hidden=8", "system.columns_per_second=55")


def causal_checkpoint(path, overrides=()):
    """A checkpoint (the layout training writes) of the experiment=stream system with a tiny
    network whose weights are perturbed away from the initialisation, so that every stage,
    the carried LSTM state included, matters."""
    return save_checkpoint(perturbed_system([*SMALL, *overrides]), path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A causal checkpoint and its ONNX export (next to it)."""
    folder = tmp_path_factory.mktemp("stream_onnx")
    ckpt = causal_checkpoint(folder / "stream.ckpt")
    (path,) = run({"checkpoint": str(ckpt), "format": "onnx"})
    assert path == folder / "stream.onnx"
    return ckpt, path


def offline(system, x):
    """``system`` on the whole of ``x`` (channels, samples) at once: (J, C, samples)."""
    import torch

    with torch.no_grad():
        return system(torch.from_numpy(x)[None])[0].numpy()


def read_stems(folder, targets):
    return np.stack([sf.read(folder / f"{t}.wav", dtype="float32")[0].T for t in targets])


def rel_max(got, ref) -> float:
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max() / np.abs(ref).max())


# ------------------------------------------------------------------------ the file
def test_a_causal_checkpoint_exports_a_stream_step(exported):
    ckpt, path = exported
    system = Separator.from_checkpoint(ckpt).system
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    f, t, j = system.r2m.nb_bins, system.r2m.T, len(system.targets)
    assert t == 4
    state = [j, 3, "batch", 8]  # (targets, LSTM layers, batch, hidden)
    inputs = {v.name: dims(v) for v in model.graph.input}
    outputs = {v.name: dims(v) for v in model.graph.output}
    assert inputs == {
        "magnitudes": ["batch", 2, f, "slices", t],
        **dict.fromkeys(STATE_INPUTS, state),
    }
    assert outputs == {
        "masks": ["batch", j, 2, f, "slices", t],
        **dict.fromkeys(STATE_OUTPUTS, state),
    }
    meta = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert meta["stream"] == {
        "causal": True,
        "sllen": 6400,
        "trlen": 1600,
        "columns_per_slice": 4,
        "lookahead": 0,
        "state": {"inputs": list(STATE_INPUTS), "outputs": list(STATE_OUTPUTS), "shape": state},
    }
    assert meta["network"]["class"] == "OpenUnmix" and meta["wiener_iterations"] == 0
    assert meta["targets"] == list(system.targets) and meta["transform"]["scale"] == "bark"


# ------------------------------------------------------------------------ parity
def test_onnx_stream_gives_the_torch_streams_stems_with_the_state_carried(exported):
    ckpt, path = exported
    torch_engine = TorchEngine(Separator.from_checkpoint(ckpt).system)
    engine = OnnxStreamEngine.from_file(path, threads=1)
    for name in ("sample_rate", "channels", "targets", "sllen", "trlen", "lookahead"):
        assert getattr(engine, name) == getattr(torch_engine, name), name
    assert Streamer(engine).latency == 5600
    x = tones_and_noise(2.0)
    reference = stream_blocks(torch_engine, x, 1000)
    assert np.abs(reference).max() > 0.05
    assert rel_max(stream_blocks(engine, x, 1000), reference) <= PARITY
    short = x[:, :4000]  # shorter than a slice
    got = stream_blocks(engine, short, 333)
    assert rel_max(got, stream_blocks(torch_engine, short, 333)) <= PARITY
    # the same engine with its LSTM state reset at every slice: far from the reference
    step = engine.step
    engine.step = lambda frames, state: step(frames, engine.initial_state())
    assert rel_max(stream_blocks(engine, x, 1000), reference) > 100 * PARITY


def test_the_stream_step_from_zero_state_is_the_whole_song_network(exported):
    """The stream step fed zero state is the whole-song network: OnnxSeparator's
    separate_mixture of the whole song gives the torch system's stems of the causal
    checkpoint; and OnnxSeparator.separate, which streams it 2.5 s at a time, the torch
    Separator's (which streams it too)."""
    ckpt, path = exported
    kw = dict(chunk_seconds=2.5, overlap_seconds=0.5)
    x = tones_and_noise(6.0, seed=1)
    torch_sep = Separator.from_checkpoint(ckpt, **kw)
    whole = offline(torch_sep.system, x)
    onnx_sep = OnnxSeparator.from_file(path, **kw)
    assert rel_max(onnx_sep.separate_mixture(x[None])[0], whole) <= PARITY
    ref, got = torch_sep.separate(x, SR), onnx_sep.separate(x, SR)
    for j, name in enumerate(ref):
        assert rel_err(ref[name], got[name]) < PARITY, name
        assert rel_max(got[name], whole[j]) <= PARITY, name


def test_separate_streams_an_exported_causal_model_as_the_stream_does(exported, tmp_path, capsys):
    """``python -m xslicq.separate --model model.onnx`` streams the exported step 2.5 s of
    input at a time, the LSTM state carried across the chunk borders: the stems of
    ``python -m xslicq.stream --model model.onnx`` to 1e-5 (cross-faded chunks were 1% of
    the peak off), and the torch Separator's, on either engine, to the ONNX tolerance."""
    from xslicq.separate import main as separate

    ckpt, path = exported
    x = tones_and_noise(6.6, seed=4)
    wav = tmp_path / "song.wav"
    sf.write(wav, x.T, SR, subtype="FLOAT")
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        separate([str(wav), "--model", str(path), "--out", str(a), "--chunk-seconds", "2.5"]) == 0
    )
    assert main(["--model", str(path), str(wav), str(b), "--threads", "1"]) == 0
    capsys.readouterr()
    system = Separator.from_checkpoint(ckpt).system
    separated, streamed = read_stems(a, system.targets), read_stems(b, system.targets)
    assert rel_max(separated, streamed) <= 1e-5
    assert rel_err(streamed, separated) <= 1e-5
    for engine in ("torch", "onnx"):
        sep = Separator(system, chunk_seconds=2.5, overlap_seconds=0.5, engine=engine)
        assert sep._stream_engine() is not None, engine
        stems = sep.separate(x, SR)
        assert rel_max(np.stack([stems[t] for t in system.targets]), separated) <= PARITY


# ------------------------------------------------------------------------ the command
def test_cli_with_an_onnx_model_streams_without_torch(exported, tmp_path):
    """``python -m xslicq.stream --model model.onnx in.wav out/`` where torch, Lightning and
    Hydra cannot be imported writes the torch stream's stems."""
    ckpt, path = exported
    x = tones_and_noise(1.5, seed=2)
    wav = tmp_path / "in.wav"
    sf.write(wav, x.T, SR, subtype="FLOAT")
    argv = ["xslicq.stream", "--model", str(path), str(wav), str(tmp_path / "out")]
    code = NO_TORCH + (
        "import runpy\n"
        f"sys.argv = {argv + ['--threads', '1', '--block', '999']!r}\n"
        "runpy.run_module('xslicq.stream', run_name='__main__')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "algorithmic latency 5600 samples (127.0 ms)" in r.stderr
    engine = TorchEngine(Separator.from_checkpoint(ckpt).system)
    reference = stream_blocks(engine, x, 999)
    got = np.stack(
        [sf.read(tmp_path / "out" / f"{t}.wav", dtype="float32")[0].T for t in engine.targets]
    )
    assert rel_max(got, reference) <= PARITY


def test_a_whole_song_onnx_model_is_refused_with_what_to_do(tmp_path, capsys):
    ckpt = fresh_checkpoint(tmp_path / "song.ckpt", ["model.depth=1"])  # xumx_matrix
    (path,) = run({"checkpoint": str(ckpt), "format": "onnx"})
    with pytest.raises(StreamError) as info:
        OnnxStreamEngine.from_file(path)
    assert str(info.value) == (
        f"{path} was exported from a non-causal model (XUMXMatrix): its masks depend on the "
        "whole song, so it cannot stream; separate whole files with python -m xslicq.separate "
        "--model model.onnx, or train a causal model (python -m xslicq.train experiment=stream) "
        "and export its checkpoint (python -m xslicq.export checkpoint=last.ckpt format=onnx)"
    )
    wav = tmp_path / "in.wav"
    sf.write(wav, tones_and_noise(0.2).T, SR)
    for model, message in [
        (path, f"error: {info.value}"),
        (tmp_path / "none.onnx", f"error: model {tmp_path / 'none.onnx'} does not exist"),
    ]:
        status = main(["--model", str(model), str(wav), str(tmp_path / "out")])
        assert (status, capsys.readouterr().err) == (2, message + "\n")  # the model: usage
    assert not (tmp_path / "out").exists()
