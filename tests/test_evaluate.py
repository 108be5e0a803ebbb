"""Evaluation: the museval, sdr and fast_bss_eval metrics, the evaluate() pipeline, its tables
and the CLI."""

import json
import sys

import numpy as np
import pytest
import torch

from xslicq.data import SOURCES
from xslicq.data.tracks import DatasetError, find_tracks
from xslicq.evaluation import (
    METRICS,
    EvaluationError,
    evaluate,
    fast_frames,
    load_split,
    museval_frames,
    score_arrays,
    sdr_frames,
)
from xslicq.signals import music_like

from helpers import SR, compose_config, run_module, stand_in_separator, write_musdb_track


def music_stems(seconds: float, seed: int) -> dict:
    """Four different stereo stems of a few seconds (music-like, tempi and keys differ)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    return {
        "vocals": 0.5 * music_like(seconds, seed=seed, tempo=97),
        "drums": 0.3 * rng.standard_normal((2, n)) * np.exp(-(np.arange(n) % 11025) / 2000.0),
        "bass": 0.5 * music_like(seconds, seed=seed + 5, tempo=83),
        "other": 0.4 * music_like(seconds, seed=seed + 9, tempo=131),
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    for i in range(2):
        write_musdb_track(root / "test" / f"track{i}", music_stems(3.0, seed=i))
    return root


class FakeSeparator:
    """Looks the mixture up and returns the references plus a known amount of noise."""

    def __init__(self, root, targets=SOURCES, noise=0.2):
        self.targets = tuple(targets)
        self.noise = noise
        self._refs = {}
        for track in find_tracks(root, "test"):
            from xslicq.data.tracks import read

            key = read(track, "mixture").tobytes()
            self._refs[key] = {s: read(track, s) for s in SOURCES}

    def separate(self, audio, sample_rate):
        assert sample_rate == SR and audio.dtype == np.float32 and audio.shape[0] == 2
        refs = self._refs[np.asarray(audio).tobytes()]
        rng = np.random.default_rng(0)
        out = {}
        for t in self.targets:
            rms = np.sqrt(np.mean(refs[t] ** 2))
            out[t] = refs[t] + self.noise * rms * rng.standard_normal(refs[t].shape)
        if "vocals" in out:  # torch tensors are accepted too
            out["vocals"] = torch.from_numpy(out["vocals"])
        return out


# --------------------------------------------------------------------- the metrics
def test_fast_bss_eval_is_close_to_museval_for_additive_noise():
    """Two music-like sources, estimates = references + 3% of the other source + noise
    (about 10 dB SDR): fast_bss_eval's median SDR is within 0.1 dB of museval's (the first
    row of the table in xslicq.evaluation.bsseval). Runs with torch's default thread count
    (fast_frames drops to one thread and restores it)."""
    rng = np.random.default_rng(1)
    refs = np.stack([music_like(4, seed=0), music_like(4, seed=5, tempo=83)])
    rms = np.sqrt(np.mean(refs**2, axis=(1, 2), keepdims=True))
    ests = (
        refs
        + 0.03 * rms * np.roll(refs / rms, 1, axis=0)
        + 0.3 * rms * rng.standard_normal(refs.shape)
    )
    threads = torch.get_num_threads()
    reference = museval_frames(refs, ests, SR)
    fast = fast_frames(refs, ests, SR)
    assert torch.get_num_threads() == threads
    assert reference["SDR"].shape == fast["SDR"].shape == (2, 4)
    med_ref = np.nanmedian(reference["SDR"], axis=1)
    med_fast = np.nanmedian(fast["SDR"], axis=1)
    assert np.all((med_ref > 8) & (med_ref < 12)), med_ref
    np.testing.assert_allclose(med_fast, med_ref, atol=0.1)
    # what the docstring states: museval's v4 SDR is the plain SNR of each 1 s frame
    err = (ests - refs).reshape(2, 2, 4, SR)
    snr = 10 * np.log10(
        np.sum(refs.reshape(2, 2, 4, SR) ** 2, axis=(1, 3)) / np.sum(err**2, axis=(1, 3))
    )
    np.testing.assert_allclose(reference["SDR"], snr, atol=1e-6)


def test_sdr_metric_equals_museval_sdr():
    """The direct SDR equals museval's v4 SDR frame by frame (to float precision) on
    interference, filtering, rescaling and noise, with a partial last window dropped."""
    rng = np.random.default_rng(2)
    n = 3 * SR + 1234  # 3 frames and a partial one
    refs = np.stack(
        [
            music_like(n / SR, seed=0)[:, :n],
            music_like(n / SR, seed=5)[:, :n],
            0.3 * rng.standard_normal((2, n)),
        ]
    )
    ests = np.stack(
        [
            0.8 * refs[0] + 0.1 * refs[1],  # rescaled + interference
            np.apply_along_axis(np.convolve, -1, refs[1], [0.6, 0.3, 0.1], "same"),
            refs[2] + 0.2 * rng.standard_normal((2, n)),
        ]
    )
    reference = museval_frames(refs, ests, SR)["SDR"]
    direct = sdr_frames(refs, ests, SR)["SDR"]
    assert reference.shape == direct.shape == (3, 3)
    np.testing.assert_allclose(direct, reference, rtol=0, atol=1e-9)


def test_fast_bss_eval_differs_from_museval_on_masked_estimates(tmp_path):
    """How far fast_bss_eval's median SDR is from museval's on masked estimates of a 3 s
    four-stem music-like track, the bounds of the table in xslicq.evaluation.bsseval: the
    oracle IRM of the default sliCQT (6-15 dB) reads -1.0 to +2.5 dB off museval, an
    untrained separator (masks ~0.5, -3 to +3 dB) -8.0 to -1.5 dB. The ``sdr`` metric equals
    museval's SDR to 1e-9 on the same estimates."""
    from xslicq.oracle import oracle_estimates
    from xslicq.system import SeparationSystem

    cfg = compose_config("train", [f"paths.data_dir={tmp_path}"])
    targets = list(cfg.data.targets)
    sources = {s: a.astype(np.float32) for s, a in music_stems(3.0, seed=0).items()}
    mixture = sum(sources[s] for s in SOURCES)
    refs = np.stack([sources[t] for t in targets])  # (4, 2, 3 SR)
    torch.manual_seed(0)
    system = SeparationSystem.from_config(cfg, training=False).eval()
    with torch.no_grad():
        untrained = system(torch.from_numpy(mixture)[None])[0].numpy()  # (4, 2, 3 SR)
    irm = oracle_estimates(system.transform, mixture, sources, ["irm"], targets)["irm"]
    cases = {
        "irm": (np.stack([irm[t] for t in targets]), (4.0, 17.0), (-1.0, 2.5)),
        "untrained": (untrained, (-5.0, 5.0), (-8.0, -1.5)),
    }
    for name, (ests, (sdr_low, sdr_high), (gap_low, gap_high)) in cases.items():
        reference = museval_frames(refs, ests, SR)["SDR"]  # (4 targets, 3 s)
        assert reference.shape == (4, 3) and np.all(np.isfinite(reference)), name
        np.testing.assert_allclose(
            sdr_frames(refs, ests, SR)["SDR"], reference, rtol=0, atol=1e-9, err_msg=name
        )
        median = np.median(reference, axis=1)
        assert np.all((median > sdr_low) & (median < sdr_high)), (name, median)
        gap = np.median(fast_frames(refs, ests, SR)["SDR"], axis=1) - median
        assert np.all((gap > gap_low) & (gap < gap_high)), (name, gap)


def test_fast_bss_eval_threads_and_exact_estimate():
    """Near-perfect estimates give a high, finite SDR; more torch threads are fine."""
    refs = np.stack([music_like(2, seed=0), music_like(2, seed=3, tempo=140)])
    ests = refs + 1e-4 * np.random.default_rng(0).standard_normal(refs.shape)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sdr = fast_frames(refs, ests, SR)["SDR"]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
    assert np.all(np.isfinite(sdr)) and np.all(sdr > 60)


def test_silent_frames_and_targets_follow_museval():
    """A frame where one source is digital silence is not scored for any target (as
    museval); a target silent throughout is NaN and does not block the others."""
    refs = np.stack([music_like(3, seed=0), music_like(3, seed=4, tempo=70), np.zeros((2, 3 * SR))])
    refs[1, :, SR : 2 * SR] = 0.0  # source 1 silent in the second frame
    ests = refs + 0.01 * np.random.default_rng(0).standard_normal(refs.shape)
    for metric in METRICS:
        scores = score_arrays(refs, ests, SR, metric, ["a", "b", "c"])
        assert np.isnan(scores["a"]["SDR"][1]) and np.isnan(scores["b"]["SDR"][1])
        assert np.all(np.isfinite(scores["a"]["SDR"][[0, 2]]))
        assert np.all(np.isnan(scores["c"]["SDR"]))


def test_all_zero_estimate_is_dithered():
    """museval cannot score an all-zero estimate; the dither makes it score ~0 dB there (and
    very low with fast_bss_eval, whose SDR ignores the estimate's scale)."""
    refs = np.stack([music_like(2, seed=0), music_like(2, seed=4, tempo=70)])
    ests = refs + 1e-3 * np.random.default_rng(0).standard_normal(refs.shape)
    ests[1] = 0.0
    with pytest.warns(UserWarning, match="all zeros"):
        scores = score_arrays(refs, ests, SR, "museval", ["a", "b"])
    np.testing.assert_allclose(scores["b"]["SDR"], 0.0, atol=1e-3)
    assert np.all(scores["a"]["SDR"] > 40)
    with pytest.warns(UserWarning, match="all zeros"):
        direct = score_arrays(refs, ests, SR, "sdr", ["a", "b"])
    for t in ("a", "b"):
        np.testing.assert_allclose(direct[t]["SDR"], scores[t]["SDR"], atol=1e-9)
    with pytest.warns(UserWarning, match="all zeros"):
        assert np.all(score_arrays(refs, ests, SR, "fast_bss_eval", ["a", "b"])["b"]["SDR"] < -10)


def test_missing_fast_bss_eval_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_bss_eval", None)  # import fails
    with pytest.raises(
        EvaluationError, match="metric=fast_bss_eval needs the fast_bss_eval package"
    ):
        fast_frames(np.ones((1, 2, SR)), np.ones((1, 2, SR)), SR)


# ------------------------------------------------------------------ the pipeline
def test_evaluate_museval_writes_museval_json_and_tables(dataset, tmp_path):
    import museval

    sep = FakeSeparator(dataset, noise=0.2)
    tracks = find_tracks(dataset, "test")
    summary = evaluate(sep.separate, tracks, tmp_path, metric="museval", workers=2)
    assert summary["targets"] == list(SOURCES)  # taken from the bound method's owner
    assert summary["tracks"] == ["track0", "track1"]
    for t in SOURCES:  # 0.2 x rms noise: ~14 dB
        assert 12 < summary["per_target"][t]["SDR"] < 16, summary["per_target"]
        assert set(summary["per_target"][t]) == {"SDR", "SIR", "SAR", "ISR"}
    assert summary["mean"]["SDR"] == pytest.approx(
        np.mean([summary["per_target"][t]["SDR"] for t in SOURCES])
    )
    # museval's own aggregation reads our JSON files and gets the same medians
    for name in ("track0", "track1"):
        data = json.loads((tmp_path / "test" / f"{name}.json").read_text())
        assert [t["name"] for t in data["targets"]] == list(SOURCES)
        assert len(data["targets"][0]["frames"]) == 3
    store = museval.EvalStore()
    store.add_eval_dir(tmp_path)
    agg = store.agg_frames_tracks_scores()
    for t in SOURCES:
        assert agg.loc[(t, "SDR")] == pytest.approx(summary["per_target"][t]["SDR"], abs=1e-3)
    md = (tmp_path / "summary.md").read_text()
    assert "| vocals |" in md and "**mean**" in md and "| SDR | SIR | SAR | ISR |" in md
    csv_lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == "target,SDR,SIR,SAR,ISR,frames,skipped"
    assert csv_lines[1].endswith(",6,0") and csv_lines[-1].startswith("mean,")
    assert len((tmp_path / "tracks.csv").read_text().splitlines()) == 1 + 2 * 4


def test_evaluate_fast_bss_eval_in_process_with_chosen_targets(dataset, tmp_path):
    sep = FakeSeparator(dataset, targets=("vocals", "bass"), noise=0.5)
    summary = evaluate(
        sep.separate,
        find_tracks(dataset, "test"),
        tmp_path,
        metric="fast_bss_eval",
        workers=0,
        targets=["bass"],
    )
    assert summary["targets"] == ["bass"] and summary["scores"] == ["SDR"]
    assert 5 < summary["per_target"]["bass"]["SDR"] < 7.5  # 0.5 x rms noise: ~6 dB
    assert not list(tmp_path.glob("test/*.json"))  # museval JSON only for museval
    assert "| bass |" in (tmp_path / "summary.md").read_text()


def test_evaluate_errors_name_the_problem(dataset, tmp_path):
    tracks = find_tracks(dataset, "test")
    choices = "choose one of museval, sdr, fast_bss_eval"
    with pytest.raises(EvaluationError, match=f"unknown metric 'si_sdr'; {choices}"):
        evaluate(lambda a, r: {}, tracks, tmp_path, metric="si_sdr")
    with pytest.raises(EvaluationError, match=f"unknown metric 'fast'; {choices}"):
        evaluate(lambda a, r: {}, tracks, tmp_path, metric="fast")  # the old name
    with pytest.raises(EvaluationError, match="no estimate for target 'drums'"):
        evaluate(
            lambda a, r: {"vocals": a},
            tracks,
            tmp_path,
            metric="fast_bss_eval",
            workers=0,
            targets=["vocals", "drums"],
        )
    with pytest.raises(EvaluationError, match=r"estimate of 'vocals' has shape \(3,\)"):
        evaluate(
            lambda a, r: {"vocals": np.zeros(3)},
            tracks,
            tmp_path,
            metric="fast_bss_eval",
            workers=0,
            targets=["vocals"],
        )
    with pytest.raises(EvaluationError, match="workers must be an integer >= 0"):
        evaluate(lambda a, r: {"vocals": a}, tracks, tmp_path, metric="fast_bss_eval", workers=-1)
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"dataset folder {missing} does not exist"):
        find_tracks(missing, "test")


def test_config_composes_and_run_checks_paths(tmp_path, monkeypatch):
    from xslicq.evaluate import run
    from xslicq.train import CheckpointError

    cfg = compose_config("evaluate")
    assert cfg.split == "test" and cfg.metric == "museval" and cfg.workers == 2
    assert cfg.device == "cpu" and cfg.data.synthetic is not None
    missing = tmp_path / "model.ckpt"
    with pytest.raises(EvaluationError, match=f"checkpoint {missing} does not exist"):
        run(compose_config("evaluate", [f"checkpoint={missing}"]))
    with pytest.raises(EvaluationError, match="no checkpoint given"):
        run(cfg)
    ckpt = tmp_path / "real.ckpt"
    ckpt.write_bytes(b"")
    nowhere = tmp_path / "no_musdb"
    bad_data = compose_config(
        "evaluate", [f"checkpoint={ckpt}", "data=musdb", f"data.root={nowhere}"]
    )
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {ckpt}"):
        run(bad_data)  # the checkpoint is read first, before any data work
    stand_in_separator(monkeypatch, ckpt, object())
    with pytest.raises(DatasetError, match=f"dataset folder {nowhere} does not exist"):
        run(bad_data)
    with pytest.raises(DatasetError, match="data.root is not set"):
        load_split(compose_config("evaluate", ["data=musdb"]).data, "test")
    with pytest.raises(
        EvaluationError, match="unknown metric 'fast'; choose one of museval, sdr, fast_bss_eval"
    ):
        run(compose_config("evaluate", [f"checkpoint={ckpt}", "metric=fast"]))


def test_cli_help_and_missing_checkpoint(tmp_path):
    r = run_module("xslicq.evaluate", "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "checkpoint" in r.stdout and "metric" in r.stdout
    missing = tmp_path / "missing.ckpt"
    r = run_module(
        "xslicq.evaluate", f"checkpoint={missing}", f"out={tmp_path / 'out'}", timeout=120
    )
    assert r.returncode != 0
    assert f"checkpoint {missing} does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_wires_config_separator_and_data(dataset, tmp_path, monkeypatch):
    """run(cfg) loads the checkpoint with Separator.from_checkpoint (a stand-in module here,
    so this test does not depend on the real separator) and evaluates the configured split."""
    from xslicq.evaluate import run

    ckpt = tmp_path / "model.ckpt"
    separator = FakeSeparator(dataset, targets=("vocals", "drums"), noise=0.2)
    calls = stand_in_separator(monkeypatch, ckpt, separator)
    out = tmp_path / "out"
    summary = run(
        compose_config(
            "evaluate",
            [
                f"checkpoint={ckpt}",
                "data=musdb",
                f"data.root={dataset}",
                "metric=fast_bss_eval",
                "workers=0",
                f"out={out}",
            ],
        )
    )
    assert calls == [(str(ckpt), "cpu")]
    assert summary["targets"] == ["vocals", "drums"] and len(summary["tracks"]) == 2
    assert (out / "summary.md").exists() and (out / "summary.csv").exists()
