"""Bounded resources: resampling takes the same memory whatever the greatest common divisor
of the two rates (44099 Hz built a 7.8 GB kernel), and every block and chunk size has an
upper bound that is one clear error naming it, never a MemoryError."""

import numpy as np
import pytest

from xslicq import resample as resampling
from xslicq.inference import MAX_CHUNK_SECONDS, OnnxSeparator
from xslicq.resample import resample
from xslicq.separate import main as separate_main
from xslicq.stream import MAX_BLOCK
from xslicq.stream import main as stream_main
from xslicq.transform_demo import MAX_SECONDS, check_config

from helpers import SR, noise_song, onnx_meta, peak_bytes

FREQ = 1000.0  # Hz of the test sine: well inside every rate's band


def sine(rate: int, seconds: float) -> np.ndarray:
    """(2, seconds * rate) float32: a FREQ Hz sine (left) and half its cosine (right)."""
    t = np.arange(round(seconds * rate)) / rate
    w = 2 * np.pi * FREQ * t
    return np.stack([np.sin(w), 0.5 * np.cos(w)]).astype(np.float32)


class ConstantMasks:
    """A stand-in network: every target's mask is 0.25 everywhere."""

    def __call__(self, matrix):
        b, c, f, s, t = matrix.shape
        return np.full((b, 4, c, f, s, t), 0.25, np.float32)


def separator(**kwargs) -> OnnxSeparator:
    """The torch-free separator (NumPy only, so tracemalloc sees all of its memory)."""
    return OnnxSeparator(ConstantMasks(), onnx_meta(), **kwargs)


# ------------------------------------------------------------------------ resampling
@pytest.mark.parametrize("rate", [44099, 44056])
def test_resampling_memory_does_not_grow_with_the_gcd_of_the_rates(rate):
    """3 s at 44099 Hz (gcd 1 with 44100) allocated a (44100, 44113) float32 kernel, 7.8 GB;
    44056 Hz (gcd 4) one of 486 MB. Now both take what 48 kHz takes, within 2x."""
    usual, odd = sine(48000, 3.0), sine(rate, 3.0)
    bound = peak_bytes(lambda: resample(usual, 48000, SR))
    peak = peak_bytes(lambda: resample(odd, rate, SR))
    assert peak <= 2 * bound and peak < 64 << 20, (peak, bound)
    back = peak_bytes(lambda: resample(sine(SR, 3.0), SR, rate))  # and back, for the stems
    assert back <= 2 * bound + sine(SR, 3.0).nbytes, (back, bound)


@pytest.mark.parametrize("rate", [44099, 44056, 48000, 8000, 96000, 383999, 384000])
def test_a_sine_resampled_from_any_rate_is_the_sine_at_the_new_rate(rate):
    """The known answer: a 1 kHz sine sampled at ``rate`` is, resampled to 44.1 kHz, the
    sine sampled at 44.1 kHz (and back), away from the ends that the kernels reach past."""
    got = resample(sine(rate, 1.0), rate, SR)
    assert got.shape == (2, SR) and got.dtype == np.float32
    inner = slice(200, -200)
    assert np.abs(got - sine(SR, 1.0))[:, inner].max() < 1e-3
    back = resample(sine(SR, 1.0), SR, rate)
    assert back.shape == (2, rate)
    inner = slice(200 * rate // SR + 20, -(200 * rate // SR + 20))
    assert np.abs(back - sine(rate, 1.0))[:, inner].max() < 1e-3


def test_kernels_computed_block_by_block_are_the_table(monkeypatch):
    """Rates with more phases than :data:`~xslicq.resample.TABLE_LIMIT` allows compute each
    block's kernels: the same values as the table, bit for bit, in any block size."""
    x = sine(44099, 0.5)
    table = resample(x, 44099, SR)
    monkeypatch.setattr(resampling, "TABLE_LIMIT", 0)
    monkeypatch.setattr(resampling, "BLOCK_VALUES", 999)
    assert np.array_equal(resample(x, 44099, SR), table)


def test_separating_at_44099_hz_takes_the_memory_of_44100_hz():
    """The issue's bound, on the whole separation (the torch-free separator: NumPy only)."""
    sep = separator()
    audio = noise_song(2.0)
    at_model_rate = peak_bytes(lambda: sep.separate(audio, SR))
    resampled = peak_bytes(lambda: sep.separate(audio, 44099))
    assert resampled <= 2 * at_model_rate, (resampled, at_model_rate)


# ------------------------------------------------------------------------ block and chunk sizes
def one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_stream_block_beyond_the_bound_is_one_error_naming_it(tmp_path, capsys):
    """``--block 100000000000`` ended in a MemoryError traceback (a read of 800 GB)."""
    args = ["-", str(tmp_path / "o"), "--model", str(tmp_path / "m.onnx"), "--raw"]
    assert stream_main([*args, "--block", "100000000000"]) == 2  # a usage error
    err = one_error_line(capsys.readouterr().err)
    assert f"--block must be a whole number of frames from 1 to {MAX_BLOCK}" in err
    assert "got 100000000000" in err
    assert stream_main([*args, "--block", str(MAX_BLOCK)]) == 2  # the bound itself is allowed:
    assert "does not exist" in one_error_line(capsys.readouterr().err)  # the model is next


def test_a_chunk_beyond_the_bound_is_one_error_naming_it(tmp_path, capsys):
    """A chunk as long as the song separates the whole song at once: memory without bound."""
    import soundfile as sf

    song = tmp_path / "song.wav"
    sf.write(song, noise_song(0.5).T, SR, subtype="FLOAT")
    out = tmp_path / "o"
    args = [str(song), "--model", str(tmp_path / "m.onnx"), "--out", str(out)]
    assert separate_main([*args, "--chunk-seconds", "1e9"]) == 2  # a usage error
    err = one_error_line(capsys.readouterr().err)
    assert f"--chunk-seconds must be at most {MAX_CHUNK_SECONDS:g}" in err and "got 1e+09" in err
    assert not out.exists()
    with pytest.raises(ValueError, match=f"chunk_seconds must be at most {MAX_CHUNK_SECONDS:g}"):
        separator(chunk_seconds=MAX_CHUNK_SECONDS + 1)
    assert separator(chunk_seconds=MAX_CHUNK_SECONDS).chunk_seconds == MAX_CHUNK_SECONDS


def test_the_transform_demo_signal_is_bounded():
    from omegaconf import OmegaConf

    with pytest.raises(ValueError, match=f"seconds must be positive and at most {MAX_SECONDS:g}"):
        check_config(OmegaConf.create({"seconds": 1e9, "dtype": "float32"}))
    check_config(OmegaConf.create({"seconds": MAX_SECONDS, "dtype": "float64"}))


def test_a_tensorrt_chunk_beyond_the_bound_is_refused_before_any_work():
    """``export format=tensorrt chunk_seconds=1e9`` sized the engine's largest input by it."""
    from xslicq.export import ExportError, run

    for chunk in (1e9, 0, float("nan"), "long"):
        with pytest.raises(
            ExportError, match=f"chunk_seconds must be positive and at most {MAX_CHUNK_SECONDS:g}"
        ):
            run({"checkpoint": "none.ckpt", "format": "tensorrt", "chunk_seconds": chunk})


def test_a_synthetic_track_beyond_the_bound_is_refused():
    """``python -m xslicq.data.synthetic --seconds 1e9`` would render and mix a 31-year
    track in memory."""
    from xslicq.data.synthetic.dataset import MAX_SECONDS as TRACK_SECONDS
    from xslicq.data.synthetic.dataset import check_parameters

    with pytest.raises(ValueError, match=f"seconds must be at most {TRACK_SECONDS:g} .each"):
        check_parameters(tracks=2, seconds=1e9)
    params, _ = check_parameters(tracks=2, seconds=TRACK_SECONDS)
    assert params["seconds"] == TRACK_SECONDS
