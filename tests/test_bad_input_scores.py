"""Scores that cannot be fooled: a perfect estimate scores the finite ceiling (100 dB) in every
metric and enters every median and mean (it scored NaN and was dropped: exact vocals with the
mixture for the other stems averaged below the mixture for every stem, and estimates equal to
every reference read "n/a"); integer PCM estimates are scored at their full scale, not as raw
integers, and other dtypes or float audio at integer scale are refused."""

import numpy as np
import pytest
import torch

from xslicq.data.tracks import find_tracks, read
from xslicq.evaluation import METRICS, EvaluationError, evaluate, score_arrays
from xslicq.evaluation.bsseval import CEILING_DB
from xslicq.metrics import sdr_db
from xslicq.signals import music_like

from helpers import SR, write_musdb_track

TARGETS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """One 3 s song of four different music-like stems (MUSDB18-HQ layout, float WAVs)."""
    root = tmp_path_factory.mktemp("musdb")
    stems = {s: 0.3 * music_like(3, seed=3 * j, tempo=70 + 23 * j) for j, s in enumerate(TARGETS)}
    write_musdb_track(root / "test" / "song", stems)
    return find_tracks(root, "test")


class Separator:
    """Returns, per target, the reference where ``exact`` names it, else the mixture;
    ``cast`` turns each estimate into what the separator hands over."""

    def __init__(self, tracks, exact=(), cast=lambda x: x):
        self.targets, self.exact, self.cast = list(TARGETS), set(exact), cast
        self.refs = {read(t, "mixture").tobytes(): {s: read(t, s) for s in TARGETS} for t in tracks}

    def separate(self, audio, sample_rate):
        refs = self.refs[np.asarray(audio).tobytes()]
        return {s: self.cast(refs[s] if s in self.exact else audio) for s in TARGETS}


# ------------------------------------------------------------------- the ceiling
def test_the_ceiling_is_one_value_for_training_and_evaluation():
    import xslicq.metrics

    assert CEILING_DB == xslicq.metrics.CEILING_DB == 100.0


@pytest.mark.parametrize("metric", list(METRICS))
def test_a_perfect_estimate_scores_the_ceiling_in_every_frame_and_score(song, metric):
    refs = np.stack([read(song[0], s) for s in TARGETS])
    frames = score_arrays(refs, refs.copy(), SR, metric, TARGETS)
    for target in TARGETS:
        for name in METRICS[metric]:
            assert frames[target][name].tolist() == [CEILING_DB] * 3, (target, name)


@pytest.mark.parametrize("metric", ["sdr", "museval"])
def test_exact_vocals_and_the_mixture_elsewhere_beat_the_mixture_everywhere(song, tmp_path, metric):
    mixture = evaluate(Separator(song).separate, song, tmp_path / "mix", metric=metric, workers=0)
    vocals = evaluate(
        Separator(song, exact={"vocals"}).separate,
        song,
        tmp_path / "vocals",
        metric=metric,
        workers=0,
    )
    assert vocals["per_target"]["vocals"]["SDR"] == CEILING_DB
    for s in ("drums", "bass", "other"):  # the same estimates as with the mixture
        assert vocals["per_target"][s]["SDR"] == pytest.approx(mixture["per_target"][s]["SDR"])
    expected = (CEILING_DB + sum(mixture["per_target"][s]["SDR"] for s in TARGETS[1:])) / 4
    assert vocals["mean"]["SDR"] == pytest.approx(expected)
    assert vocals["mean"]["SDR"] > mixture["mean"]["SDR"] + 20


def test_estimates_equal_to_every_reference_give_the_ceiling_not_na(song, tmp_path):
    summary = evaluate(
        Separator(song, exact=TARGETS).separate, song, tmp_path, metric="museval", workers=0
    )
    assert summary["mean"] == {m: CEILING_DB for m in ("SDR", "SIR", "SAR", "ISR")}
    assert summary["frame_counts"] == {t: {"frames": 3, "skipped": 0} for t in TARGETS}
    table = (tmp_path / "summary.md").read_text()
    assert "n/a" not in table and "| vocals | 100.00 | 100.00 | 100.00 | 100.00 | 3 | 0 |" in table


def test_sdr_db_gives_the_ceiling_to_a_perfect_estimate_and_never_more():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3, 2, 8000))  # ||ref||^2 ~ 16000: 122 dB with eps alone
    est = ref.copy()
    est[1] += 1e-9 * rng.standard_normal((2, 8000))  # about 180 dB: clamped
    est[2] = 0.0
    assert sdr_db(est, ref).tolist() == [CEILING_DB, CEILING_DB, 0.0]
    got = sdr_db(torch.from_numpy(est), torch.from_numpy(ref))
    assert got.tolist() == [CEILING_DB, CEILING_DB, 0.0]
    silent = np.zeros((2, 100))
    assert sdr_db(silent, silent) == 0.0  # nothing to score: 0 dB, as before


# ------------------------------------------------------------- dtype and scale
def pcm16(x):
    return np.round(np.clip(x, -1, 1 - 2**-15) * 32768).astype(np.int16)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_int16_estimates_are_scored_at_their_full_scale(song, tmp_path, kind):
    """The reference as 16-bit PCM scores about 90 dB (its rounding error), as float audio
    read from that PCM would; raw integers scored about -90 dB."""
    cast = pcm16 if kind == "numpy" else (lambda x: torch.from_numpy(pcm16(x)))
    summary = evaluate(
        Separator(song, exact=TARGETS, cast=cast).separate, song, tmp_path, metric="sdr", workers=0
    )
    as_float = {
        s: pcm16(read(song[0], s)).astype(np.float64) / 32768 for s in TARGETS
    }  # what soundfile reads from a 16-bit WAV
    refs = np.stack([read(song[0], s) for s in TARGETS])
    expected = score_arrays(refs, np.stack([as_float[s] for s in TARGETS]), SR, "sdr", TARGETS)
    for s in TARGETS:
        assert summary["per_target"][s]["SDR"] == pytest.approx(
            float(np.median(expected[s]["SDR"])), abs=1e-6
        )
        assert 60 < summary["per_target"][s]["SDR"] < CEILING_DB


def test_integer_arrays_given_to_score_arrays_are_scaled_too(song):
    refs = np.stack([read(song[0], s) for s in TARGETS])
    as_int = score_arrays(refs, pcm16(refs), SR, "sdr", TARGETS)
    as_float = score_arrays(refs, pcm16(refs) / 32768.0, SR, "sdr", TARGETS)
    for s in TARGETS:
        np.testing.assert_allclose(as_int[s]["SDR"], as_float[s]["SDR"], atol=1e-6)


@pytest.mark.parametrize(
    "cast, message",
    [
        (lambda x: x != 0, r"estimate of 'vocals' has dtype bool; give float audio"),
        (lambda x: x.astype(np.complex64), r"estimate of 'vocals' has dtype complex64"),
        (
            lambda x: pcm16(x).astype(np.float32),
            r"estimate of 'vocals' peaks at \d+\.\d \(float audio has full scale 1\.0; at most "
            r"100 is taken\): is it integer PCM stored as float\? Divide it by its full scale "
            r"\(32768 for 16-bit\)",
        ),
    ],
    ids=["bool", "complex", "int16-as-float"],
)
def test_other_dtypes_and_float_audio_at_integer_scale_are_refused(song, tmp_path, cast, message):
    with pytest.raises(EvaluationError, match=r"track song: " + message):
        evaluate(Separator(song, cast=cast).separate, song, tmp_path, metric="sdr", workers=0)
