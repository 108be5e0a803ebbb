"""Exporting the network (ONNX, TensorRT) and separating with it: the exported model's
separators give the torch engine's stems within 1e-4 (relative), and every unsupported
request is one clear error."""

import json
import os
import re
import stat
import subprocess
import sys

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from xslicq import Separator
from xslicq.export import ExportError, onnx_bytes, run
from xslicq.inference import (
    FORMAT_VERSION,
    METADATA_KEY,
    ModelFileError,
    OnnxNetwork,
    OnnxSeparator,
)
from xslicq.separate import main as separate_main
from xslicq.system import SeparationSystem
from xslicq.tensorrt import TensorRTUnavailable

from helpers import (
    NO_TORCH,
    ROOT,
    SR,
    compose_config,
    fresh_checkpoint,
    noise_song,
    rel_err,
    requires_cuda,
    run_module,
)

PARITY = 1e-4  # relative L2 error of every stem, the bound


def assert_same_stems(got: dict, ref: dict):
    assert list(got) == list(ref)
    for name in ref:
        assert got[name].shape == ref[name].shape and got[name].dtype == np.float32
        assert rel_err(ref[name], got[name]) < PARITY, name


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained xumx_matrix checkpoint (bark, Wiener-EM on) and its ONNX export."""
    folder = tmp_path_factory.mktemp("export")
    ckpt = fresh_checkpoint(folder / "model.ckpt", ["system.wiener_iterations=1"])
    written = run({"checkpoint": str(ckpt), "format": "onnx"})
    assert written == [folder / "model.onnx"]  # next to the checkpoint by default
    return ckpt, written[0]


# ------------------------------------------------------------------------ the file
def test_onnx_file_is_valid_with_dynamic_batch_and_slices_and_metadata(exported):
    ckpt, path = exported
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    sep = Separator.from_checkpoint(ckpt)
    f, t = sep.system.r2m.nb_bins, sep.system.r2m.T
    assert dims(model.graph.input[0]) == ["batch", 2, f, "slices", t]
    assert dims(model.graph.output[0]) == ["batch", 4, 2, f, "slices", t]
    meta = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    tr = sep.system.transform
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["transform"] == {
        "scale": "bark",
        "bins": tr.bins,
        "fmin": tr.fmin,
        "fmax": tr.fmax,
        "sample_rate": SR,
        "sllen": tr.sllen,
        "trlen": tr.trlen,
        "gamma": tr.gamma,
    }
    assert meta["matrix"] == {"mode": "interpolate", "T": t}
    assert meta["targets"] == ["vocals", "drums", "bass", "other"]
    assert (meta["wiener_iterations"], meta["mask_sum_to_one"]) == (1, False)
    assert meta["network"]["exporter"] == "torchscript"


# ------------------------------------------------------------------------ parity
def test_torch_free_separator_gives_the_torch_engines_stems(exported):
    """OnnxSeparator (NumPy sliCQT, onnxruntime, NumPy Wiener-EM) against the checkpoint's
    torch Separator: stereo in two cross-faded chunks, and mono at another rate."""
    ckpt, path = exported
    kw = dict(chunk_seconds=2.0, overlap_seconds=0.5)
    ref_sep, onnx_sep = Separator.from_checkpoint(ckpt, **kw), OnnxSeparator.from_file(path, **kw)
    assert onnx_sep.targets == ref_sep.targets and onnx_sep.sample_rate == SR
    audio = noise_song(3.0)
    assert_same_stems(onnx_sep.separate(audio, SR), ref_sep.separate(audio, SR))
    mono = noise_song(1.0, channels=1, seed=1)
    assert_same_stems(onnx_sep.separate(mono[0], 48000), ref_sep.separate(mono[0], 48000))


def test_separator_onnx_engine_gives_the_torch_engines_stems(exported):
    ckpt, _ = exported
    ref_sep = Separator.from_checkpoint(ckpt)
    onnx_sep = Separator(ref_sep.system, engine="onnx")
    assert onnx_sep.engine == "onnx" and ref_sep.network is None
    audio = noise_song(2.0, seed=2)
    assert_same_stems(onnx_sep.separate(audio, SR), ref_sep.separate(audio, SR))


def test_separate_cli_with_model_imports_no_torch(exported, tmp_path):
    """``python -m xslicq.separate --model``, in a process where torch, Lightning and Hydra
    cannot be imported, writes the stems the torch engine writes."""
    ckpt, path = exported
    wav = tmp_path / "song.wav"
    audio = noise_song(2.5, seed=3)
    sf.write(wav, audio.T, SR, subtype="FLOAT")
    code = NO_TORCH + (
        "from xslicq.separate import main\n"
        f"sys.exit(main([{str(wav)!r}, '--model', {str(path)!r}, '--out', "
        f"{str(tmp_path / 'stems')!r}]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote vocals.wav, drums.wav, bass.wav, other.wav" in r.stdout
    ref = Separator.from_checkpoint(ckpt).separate(audio, SR)
    got = {t: sf.read(tmp_path / "stems" / f"{t}.wav", dtype="float32")[0].T for t in ref}
    assert_same_stems(got, ref)
    manifest = json.loads((tmp_path / "stems" / ".xslicq-separate.json").read_text())
    assert manifest["model"] == str(path.resolve()) and "checkpoint" not in manifest


@pytest.mark.slow
def test_umx_with_sum_to_one_masks_exports_and_matches(tmp_path):
    """The frames network (umx's LSTM, read as (B, C, F, S * T)) with sum-to-one masks."""
    ckpt = fresh_checkpoint(
        tmp_path / "umx.ckpt",
        ["model=umx", "model.hidden=16", "system.mask_sum_to_one=true"],
    )
    (path,) = run({"checkpoint": str(ckpt), "format": "onnx", "out": str(tmp_path / "u.onnx")})
    audio = noise_song(3.0, seed=4)
    ref = Separator.from_checkpoint(ckpt, chunk_seconds=2.0, overlap_seconds=0.5)
    got = OnnxSeparator.from_file(path, chunk_seconds=2.0, overlap_seconds=0.5)
    stems = got.separate(audio, SR)
    assert_same_stems(stems, ref.separate(audio, SR))
    np.testing.assert_allclose(sum(stems.values()), audio, atol=1e-4)  # masks sum to one


def test_the_exported_file_gets_the_mode_of_any_new_file(exported, tmp_path):
    """0666 less the umask, as separate's and the stream's stems (not a temporary file's
    0600)."""
    old = os.umask(0o027)
    try:
        (path,) = run(
            {"checkpoint": str(exported[0]), "format": "onnx", "out": str(tmp_path / "m.onnx")}
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.slow
def test_export_cli_and_dynamo_exporter(exported, tmp_path):
    """The Hydra command line, with the dynamo exporter: same masks as torch."""
    ckpt, _ = exported
    out = tmp_path / "dyn.onnx"
    r = run_module(
        "xslicq.export", f"checkpoint={ckpt}", "format=onnx", f"out={out}", "exporter=dynamo"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"wrote {out}" in r.stdout
    audio = noise_song(2.0, seed=5)
    ref = Separator.from_checkpoint(ckpt).separate(audio, SR)
    assert_same_stems(OnnxSeparator.from_file(out).separate(audio, SR), ref)
    bad = run_module("xslicq.export", f"checkpoint={ckpt}", "format=tflite", timeout=300)
    assert bad.returncode == 2  # a setting: a usage error
    assert "\nerror: unknown format 'tflite'; choose one of onnx, tensorrt\n" in "\n" + bad.stderr


# ------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=cdae_blocks"],
            "the network CDAEBlocks reads the ragged blocks (model=cdae_blocks); only networks "
            "on the matrix form export (xumx_matrix, umx)",
        ),
        (
            ["transform=stft", "model=umx", "model.hidden=16"],
            "the transform STFT has no NumPy backend, so the torch-free separator cannot "
            "rebuild it; only sliCQT models export",
        ),
    ],
)
def test_unsupported_models_are_refused(overrides, message):
    cfg = compose_config("train", ["transform=bark", "model.hidden=8", *overrides])
    system = SeparationSystem.from_config(cfg, training=False)
    with pytest.raises(ExportError) as info:
        onnx_bytes(system)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"format": "tflite"}, "unknown format 'tflite'; choose one of onnx, tensorrt"),
        ({"exporter": "jit"}, "unknown exporter 'jit'; choose one of torchscript, dynamo"),
        ({"checkpoint": None}, "no checkpoint given: pass checkpoint=/path/to/model.ckpt"),
    ],
)
def test_bad_export_requests(exported, cfg, message):
    with pytest.raises(ExportError, match="^" + re.escape(message)):
        run({"checkpoint": str(exported[0]), "format": "onnx", **cfg})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no GPU")
def test_tensorrt_without_gpu_or_package_is_one_clear_error(exported):
    ckpt, _ = exported
    try:
        import tensorrt  # noqa: F401

        missing = "needs a CUDA GPU, but torch finds none on this machine"
    except ImportError:
        missing = "needs the tensorrt package (pip install 'xslicq[gpu]': tensorrt-cu13)"
    with pytest.raises(TensorRTUnavailable, match=re.escape(missing)):
        run({"checkpoint": str(ckpt), "format": "tensorrt"})
    with pytest.raises(TensorRTUnavailable, match="engine/format tensorrt"):
        Separator.from_checkpoint(ckpt, engine="tensorrt")
    with pytest.raises(
        ValueError, match="unknown engine 'tvm'; choose one of torch, onnx, tensorrt"
    ):
        Separator.from_checkpoint(ckpt, engine="tvm")


def test_foreign_or_damaged_model_files(exported, tmp_path, capsys):
    _, path = exported
    model = onnx.load(path)
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, foreign)
    with pytest.raises(ModelFileError, match="is not an xslicq model .no 'xslicq' metadata."):
        OnnxSeparator.from_file(foreign)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps({"format_version": 99})
    onnx.save(model, tmp_path / "future.onnx")
    with pytest.raises(ModelFileError, match="has xslicq model format 99; this xslicq"):
        OnnxSeparator.from_file(tmp_path / "future.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="cannot load .*junk.onnx with onnxruntime"):
        OnnxNetwork(tmp_path / "junk.onnx")
    status = separate_main(
        [str(tmp_path / "song.wav"), "--model", str(tmp_path / "none.onnx"), "--out", "x"]
    )
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "song.wav does not exist" in err  # the input is checked before the model


# ------------------------------------------------------------------------ TensorRT
@pytest.mark.gpu
@requires_cuda
def test_tensorrt_engine_gives_the_torch_engines_stems(exported):
    pytest.importorskip("tensorrt")
    ckpt, _ = exported
    ref_sep = Separator.from_checkpoint(ckpt, device="cuda", chunk_seconds=2.0, overlap_seconds=0.5)
    trt_sep = Separator(ref_sep.system, engine="tensorrt", chunk_seconds=2.0, overlap_seconds=0.5)
    audio = noise_song(3.0, seed=6)
    assert_same_stems(trt_sep.separate(audio, SR), ref_sep.separate(audio, SR))
