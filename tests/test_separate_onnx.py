"""The torch-free separator (xslicq.inference.OnnxSeparator) a chunk at a time, and
``python -m xslicq.separate --model`` writing its stems as they are separated. A stand-in
network gives every target a constant mask, so the stems have known answers."""

import numpy as np
import pytest
import soundfile as sf

from xslicq.inference import OnnxSeparator
from xslicq.separate import separate_file

from helpers import SR, noise_song, onnx_meta

TARGETS = ("vocals", "drums", "bass", "other")
WEIGHTS = np.array([0.1, 0.2, 0.3, 0.4], np.float32)  # target j's mask everywhere


class ConstantMasks:
    """A stand-in network: matrix (B, C, F, S, T) -> masks (B, J, C, F, S, T), target
    ``j``'s mask :data:`WEIGHTS` ``[j]`` everywhere; ``on_call`` runs before every call."""

    def __init__(self, on_call=None):
        self.on_call = on_call

    def __call__(self, matrix):
        if self.on_call is not None:
            self.on_call()
        b, c, f, s, t = matrix.shape
        shape = (b, len(WEIGHTS), c, f, s, t)
        return np.broadcast_to(WEIGHTS[None, :, None, None, None, None], shape).copy()


def separator(wiener=0, on_call=None, **kwargs):
    meta = onnx_meta(targets=list(TARGETS), wiener_iterations=wiener)
    return OnnxSeparator(ConstantMasks(on_call), meta, **kwargs)


def expected(audio, wiener):
    """Constant masks: the stems are ``w_j`` times the mixture; one Wiener-EM iteration on
    estimates proportional to the mixture gives ``w_j^2 / sum_k w_k^2`` times it."""
    gains = WEIGHTS if wiener == 0 else WEIGHTS**2 / (WEIGHTS**2).sum()
    return {t: g * audio for t, g in zip(TARGETS, gains)}


@pytest.mark.parametrize("wiener", [0, 1])
def test_spans_are_the_stems_a_chunk_at_a_time(wiener):
    sep = separator(wiener, chunk_seconds=3.0, overlap_seconds=0.5)
    audio = noise_song(7.0)
    spans = list(sep.separate_spans(audio, SR))
    step = int(2.5 * SR)  # chunks start every chunk - overlap
    assert [s["bass"].shape for s in spans] == [
        (2, step),
        (2, step),
        (2, audio.shape[1] - 2 * step),
    ]
    stems = sep.separate(audio, SR)
    for t, want in expected(audio, wiener).items():
        whole = np.concatenate([s[t] for s in spans], -1)
        np.testing.assert_array_equal(whole, stems[t])
        assert whole.dtype == np.float32
        np.testing.assert_allclose(whole, want, atol=1e-4)


def test_mono_at_another_rate_is_one_stretch():
    """22.05 kHz mono (two tones well below its Nyquist frequency, which resampling to the
    model's rate and back keeps) in 3 s chunks: one stretch of the input's shape."""
    sep = separator(chunk_seconds=3.0, overlap_seconds=0.5)
    time = np.arange(4 * 22050) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 220 * time) + 0.2 * np.sin(2 * np.pi * 1250 * time))[None]
    (span,) = sep.separate_spans(audio.astype(np.float32)[0], 22050)  # resampled whole
    inner = slice(2000, -2000)  # the resampler's kernels reach past the ends
    for t, want in expected(audio, 0).items():
        assert span[t].shape == (1, audio.shape[1]) and span[t].dtype == np.float32
        np.testing.assert_allclose(span[t][:, inner], want[:, inner], atol=5e-4)


def test_the_input_is_checked_before_the_first_span():
    sep = separator()
    with pytest.raises(ValueError, match="the audio contains NaN or inf samples"):
        sep.separate_spans(np.full((2, 100), np.nan, np.float32), SR)


def test_separate_model_writes_the_stems_as_they_are_separated(tmp_path, monkeypatch):
    """``separate --model``: when chunk ``k + 2`` is separated, the stretch of chunk ``k``
    is already in the partial WAV (so no whole stem is held), and the stems are right."""
    out, written = tmp_path / "stems", []

    def on_call():  # the size of vocals' partial WAV (None: not made yet)
        partial = list(out.glob(".vocals-*.wav.partial"))
        written.append(partial[0].stat().st_size if partial else None)

    sep = separator(on_call=on_call, chunk_seconds=3.0, overlap_seconds=0.5)
    monkeypatch.setattr(OnnxSeparator, "from_file", lambda *args, **kwargs: sep)
    audio = noise_song(10.0, seed=2)  # four chunks
    sf.write(tmp_path / "song.wav", audio.T, SR, subtype="FLOAT")
    files = separate_file(tmp_path / "song.wav", out=out, model=tmp_path / "model.onnx")
    assert files == [out / f"{t}.wav" for t in TARGETS]
    # chunk 0's stretch is final (and written) once chunk 1 is separated
    assert written[:2] == [None, None]
    step = int(2.5 * SR) * 2 * 4  # bytes of one stretch: stereo float32
    assert written[3] - written[2] == step and 0 < written[2] - step < 200  # and a header
    for t, want in expected(audio, 0).items():
        got, rate = sf.read(out / f"{t}.wav", dtype="float32")
        assert rate == SR
        np.testing.assert_allclose(got.T, want, atol=2e-5)
