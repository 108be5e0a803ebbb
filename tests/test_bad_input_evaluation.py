"""Evaluation refuses estimates that do not fit their references (length, channels, sample
rate) unless ``align`` says how to score them, scores padding and silent estimate frames as
errors, and reports the frames a silent reference leaves out (in every table it writes)."""

import csv
import json

import numpy as np
import pytest

from xslicq.data.tracks import find_tracks, read
from xslicq.evaluation import METRICS, EvaluationError, evaluate, score_arrays, score_track
from xslicq.signals import music_like

from helpers import SR, write_musdb_track

SECONDS = 3
N = SECONDS * SR  # 132300 samples; half: 66150
TARGETS = ["vocals", "drums", "bass", "other"]


def song_stems(seconds: float, seed: int) -> dict:
    """Four different stereo music-like stems (tempi and keys differ)."""
    return {
        s: 0.3 * music_like(seconds, seed=seed + 3 * j, tempo=70 + 23 * j)
        for j, s in enumerate(TARGETS)
    }


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A MUSDB18-HQ-layout folder with one 3 s song, ``song``."""
    root = tmp_path_factory.mktemp("musdb")
    write_musdb_track(root / "test" / "song", song_stems(SECONDS, seed=0))
    return find_tracks(root, "test")


class StandIn:
    """A separator that returns the song's references through ``change(stems) -> output``."""

    def __init__(self, tracks, change=lambda stems: stems, targets=TARGETS):
        self.targets = list(targets)
        self.change = change
        self._refs = {
            read(t, "mixture").tobytes(): {s: read(t, s) for s in self.targets} for t in tracks
        }

    def separate(self, audio, sample_rate):
        assert sample_rate == SR
        return self.change(dict(self._refs[np.asarray(audio).tobytes()]))


def near_perfect(stems):
    """The references plus noise 60 dB below them."""
    rng = np.random.default_rng(1)
    return {
        s: x + 1e-3 * np.sqrt(np.mean(x**2)) * rng.standard_normal(x.shape).astype(np.float32)
        for s, x in stems.items()
    }


def half(stems):
    return {s: x[:, : x.shape[1] // 2] for s, x in near_perfect(stems).items()}


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("metric", list(METRICS))
def test_half_length_estimates_are_refused_naming_track_and_stem(song, tmp_path, metric):
    shapes = r"estimate of 'vocals' has shape \(2, 66150\), the reference \(2, 132300\)"
    with pytest.raises(EvaluationError, match=rf"track song: {shapes}: 66150 samples instead"):
        evaluate(StandIn(song, half).separate, song, tmp_path, metric=metric, workers=0)
    # the worker's entry point (oracles and experiments call it directly) refuses too
    with pytest.raises(EvaluationError, match=f"track song: {shapes}"):
        score_track(song[0], half({s: read(song[0], s) for s in TARGETS}), metric)
    # and so do the arrays of the training's test stage, naming every target
    refs = np.stack([read(song[0], s) for s in TARGETS])
    with pytest.raises(
        EvaluationError,
        match=r"track song: estimates of \['vocals', 'drums', 'bass', 'other'\] have shape "
        r"\(4, 2, 66150\), the references \(4, 2, 132300\)",
    ):
        score_arrays(refs, refs[..., : N // 2], SR, metric, TARGETS, "song")
    assert not (tmp_path / "summary.md").exists()


def test_wrong_channel_count_is_refused_whatever_align_says(song, tmp_path):
    def mono(stems):
        return {s: x[:1] for s, x in stems.items()}

    for align in (None, "crop", "pad"):
        with pytest.raises(
            EvaluationError,
            match=r"track song: estimate of 'vocals' has shape \(1, 132300\), the reference "
            r"\(2, 132300\): channel count 1 instead of 2",
        ):
            evaluate(StandIn(song, mono).separate, song, tmp_path, "sdr", workers=0, align=align)
    refs = np.stack([read(song[0], s) for s in TARGETS])
    with pytest.raises(EvaluationError, match=r"estimates \(4, 1, 132300\)"):
        score_arrays(refs, refs[:, :1], SR, "sdr", TARGETS, "song")


def test_estimates_at_another_sample_rate_are_refused(song, tmp_path):
    def at_22050(stems):  # a separator that says the rate of what it returns
        return {s: x[:, ::2] for s, x in stems.items()}, 22050

    with pytest.raises(
        EvaluationError,
        match=r"track song: the separator returned \['vocals', 'drums', 'bass', 'other'\] at "
        r"22050 Hz, the references are at 44100 Hz; resample the estimates to 44100 Hz",
    ):
        evaluate(StandIn(song, at_22050).separate, song, tmp_path, "sdr", workers=0, align="pad")

    def unlabelled(stems):  # one that does not: its length gives it away
        return at_22050(stems)[0]

    with pytest.raises(
        EvaluationError,
        match=r"estimate of 'vocals' .* that is the length at 22050 Hz: is the estimate at "
        "another sample rate",
    ):
        evaluate(StandIn(song, unlabelled).separate, song, tmp_path, "sdr", workers=0)
    with pytest.raises(EvaluationError, match="align must be null .* got 'stretch'"):
        evaluate(StandIn(song).separate, song, tmp_path, "sdr", workers=0, align="stretch")


def test_cadenza_uses_the_same_check(song, tmp_path):
    from xslicq.cadenza import evaluate_cadenza, load_listeners

    with pytest.raises(
        EvaluationError,
        match=r"song song: estimate of 'vocals' has shape \(2, 66150\), the reference "
        r"\(2, 132300\)",
    ):
        evaluate_cadenza(
            StandIn(song, half).separate, song, load_listeners()[:1], tmp_path, workers=0
        )


# --------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("metric", list(METRICS))
def test_align_pad_scores_the_missing_half_as_error_and_crop_only_the_overlap(
    song, tmp_path, metric
):
    two = ["vocals", "bass"]  # two targets keep museval quick
    runs = {}
    for label, change, align in (
        ("perfect", near_perfect, None),
        ("pad", half, "pad"),
        ("crop", half, "crop"),
    ):
        sep = StandIn(song, change, two)
        if align == "pad":  # the padded frames are silent: scored against a dither, warned
            with pytest.warns(UserWarning, match=r"vocals in 1 of 3, bass in 1 of 3 scored"):
                runs[label] = evaluate(
                    sep.separate, song, tmp_path / label, metric, workers=0, align=align
                )
        else:
            runs[label] = evaluate(
                sep.separate, song, tmp_path / label, metric, workers=0, align=align
            )
    for t in two:
        perfect = runs["perfect"]["per_target"][t]["SDR"]
        assert perfect > 40, runs["perfect"]["per_target"]
        # frames: [perfect, half missing, all missing] -> median ~0-3 dB with museval's SDR
        assert runs["pad"]["per_target"][t]["SDR"] < perfect - 30, runs["pad"]["per_target"]
        assert runs["pad"]["frame_counts"][t] == {"frames": 3, "skipped": 0}
        # crop scores the 1.5 s both have: one whole frame, near-perfect there
        assert runs["crop"]["frame_counts"][t] == {"frames": 1, "skipped": 0}
        assert runs["crop"]["per_target"][t]["SDR"] > 40
    md = (tmp_path / "pad" / "summary.md").read_text()
    assert "(align=pad): the padding is scored as error" in md
    assert "align=" not in (tmp_path / "perfect" / "summary.md").read_text()
    assert json.loads((tmp_path / "crop" / "summary.json").read_text())["align"] == "crop"


def test_silent_estimate_frames_score_as_errors_not_skipped(song):
    """museval skips a frame in which an estimate is digital silence, so an estimate that
    is silent where the reference sounds would score as if perfect there."""
    refs = np.stack([read(song[0], s) for s in ("vocals", "bass")]).astype(np.float64)
    ests = refs + 1e-3 * np.random.default_rng(0).standard_normal(refs.shape)
    ests[0, :, SR:] = 0.0  # vocals: silent after the first second
    for metric in METRICS:
        with pytest.warns(UserWarning, match=r"all zeros \(vocals in 2 of 3 scored frames\)"):
            sdr = score_arrays(refs, ests, SR, metric, ["vocals", "bass"], "song")["vocals"]["SDR"]
        assert np.all(np.isfinite(sdr)), (metric, sdr)
        assert sdr[0] > 30 and np.all(sdr[1:] < 1), (metric, sdr)


# ------------------------------------------------------------------- skipped frames
def test_frames_of_a_silent_reference_are_reported_as_skipped(tmp_path):
    """Near-perfect estimates. song_a: vocals silent in frames 1 and 2 of 3 (museval skips
    those frames for every target) and bass silent throughout (all its frames skipped);
    song_b: nothing silent."""
    import museval

    stems = song_stems(SECONDS, seed=1)
    stems["vocals"][:, SR : 3 * SR] = 0.0
    stems["bass"][:] = 0.0
    write_musdb_track(tmp_path / "data" / "test" / "song_a", stems)
    write_musdb_track(tmp_path / "data" / "test" / "song_b", song_stems(SECONDS, seed=2))
    tracks = find_tracks(tmp_path / "data", "test")
    three = ["vocals", "drums", "bass"]
    sep = StandIn(tracks, near_perfect, targets=three)
    out = tmp_path / "sdr"
    summary = evaluate(sep.separate, tracks, out, "sdr", workers=0)

    expected = {"vocals": (6, 2), "drums": (6, 2), "bass": (6, 3)}
    per_song = {"song_a": {"vocals": 2, "drums": 2, "bass": 3}, "song_b": dict.fromkeys(three, 0)}
    for t, (frames, skipped) in expected.items():
        assert summary["frame_counts"][t] == {"frames": frames, "skipped": skipped}
        for k in per_song:
            assert summary["per_track"][k][t]["skipped"] == per_song[k][t]
            assert summary["per_track"][k][t]["frames"] == 3
    saved = json.loads((out / "summary.json").read_text())
    assert saved["frame_counts"] == summary["frame_counts"]
    assert saved["per_track"]["song_a"]["vocals"]["skipped"] == 2
    md = (out / "summary.md").read_text()
    assert "| target | SDR | frames | skipped |" in md
    assert md.split("| vocals |")[1].splitlines()[0].endswith("| 6 | 2 |")
    assert "- song_a: vocals 2/3, drums 2/3, bass 3/3" in md and "- song_b" not in md
    with open(out / "summary.csv", newline="") as f:
        rows = {r["target"]: r for r in csv.DictReader(f)}
    assert (rows["vocals"]["frames"], rows["vocals"]["skipped"]) == ("6", "2")
    assert rows["bass"]["skipped"] == "3"
    with open(out / "tracks.csv", newline="") as f:
        rows = {(r["track"], r["target"]): r for r in csv.DictReader(f)}
    assert rows[("song_a", "drums")]["skipped"] == "2"
    assert rows[("song_b", "drums")]["skipped"] == "0"

    # museval: its per-track JSON says per stored target how many frames were skipped, as
    # many as museval left NaN, and museval's own reader still takes the file
    out = tmp_path / "museval"
    summary = evaluate(sep.separate, tracks[:1], out, "museval", workers=0)
    assert summary["frame_counts"]["vocals"] == {"frames": 3, "skipped": 2}
    assert (
        "| target | SDR | SIR | SAR | ISR | frames | skipped |" in (out / "summary.md").read_text()
    )
    data = json.loads((out / "test" / "song_a.json").read_text())
    assert {t["name"]: t["skipped_frames"] for t in data["targets"]} == {"vocals": 2, "drums": 2}
    for target in data["targets"]:
        sdr = [f["metrics"]["SDR"] for f in target["frames"]]
        assert sum(v is None or np.isnan(v) for v in sdr) == 2, sdr
    store = museval.EvalStore()
    store.add_eval_dir(out)
    assert set(store.df["track"]) == {"song_a"}
