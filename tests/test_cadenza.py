"""Cadenza CAD1 task 1 pipeline: listeners, NAL-R, clipping, HAAQI known answers, the
(song, listener) job, the CLI with a stand-in separator, and the training callback.

HAAQI costs about 1 s per second of mono audio, so signals here are 0.5-1 s long."""

import csv
import json
import math
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("clarity", reason="pyclarity is not installed")

from xslicq.cadenza import (  # noqa: E402
    CSV_COLUMNS,
    CadenzaError,
    hearing_aid,
    load_listeners,
    nalr_fir,
    process_song,
    remix_stems,
    save_listeners,
    score_stem,
    soft_clip,
)
from xslicq.data import SOURCES  # noqa: E402
from xslicq.signals import music_like, noise  # noqa: E402

from helpers import (  # noqa: E402
    ROOT,
    SR,
    compose_config,
    make_dataset,
    run_module,
    stand_in_separator,
    tiny_train_config,
    write_musdb_track,
)

CFS = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]


def audiogram(levels, freqs=CFS):
    from clarity.utils.audiogram import Audiogram

    return Audiogram(levels=np.asarray(levels, float), frequencies=np.asarray(freqs, float))


def listener_by_id(name):
    return next(x for x in load_listeners() if x.id == name)


def song_stems(seconds, seed=0):
    """Four different stereo music-like stems (different tempi and seeds)."""
    return {
        s: 0.25 * music_like(seconds, seed=seed + 3 * j, tempo=80 + 17 * j)
        for j, s in enumerate(SOURCES)
    }


# ------------------------------------------------------------------------ listeners
def test_example_listeners_and_json_round_trip(tmp_path):
    listeners = load_listeners()
    assert [x.id for x in listeners] == [
        "example_mild",
        "example_moderate",
        "example_sloping",
        "example_near_normal",
    ]
    near = listener_by_id("example_near_normal")
    assert max(near.audiogram_left.levels.max(), near.audiogram_right.levels.max()) <= 25
    sloping = listener_by_id("example_sloping").audiogram_left.levels
    assert sloping[-1] - sloping[0] >= 50  # steep high-frequency loss
    path = save_listeners(listeners, tmp_path / "listeners.json")
    again = load_listeners(path)
    assert [x.id for x in again] == [x.id for x in listeners]
    for a, b in zip(listeners, again):
        for ear in ("audiogram_left", "audiogram_right"):
            np.testing.assert_array_equal(getattr(a, ear).levels, getattr(b, ear).levels)
            np.testing.assert_array_equal(getattr(a, ear).frequencies, getattr(b, ear).frequencies)
    raw = json.loads(path.read_text())
    assert set(raw["example_mild"]) == {
        "name",
        "audiogram_cfs",
        "audiogram_levels_l",
        "audiogram_levels_r",
    }
    # the key names a listener without "name"
    (tmp_path / "noname.json").write_text(
        json.dumps(
            {
                "L9": {
                    "audiogram_cfs": CFS,
                    "audiogram_levels_l": [0] * 8,
                    "audiogram_levels_r": [0] * 8,
                }
            }
        )
    )
    assert load_listeners(tmp_path / "noname.json")[0].id == "L9"


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "listener file .*missing.json does not exist"),
        ("{not json", "cannot read listener file"),
        ("[]", "non-empty JSON object keyed by listener id"),
        (
            {"L1": {"name": "L1", "audiogram_cfs": CFS, "audiogram_levels_l": [0] * 8}},
            "listener 'L1' in .* has no audiogram_levels_r",
        ),
        (
            {"L1": {"name": "L1", "audiogram_levels_l": [0] * 8, "audiogram_levels_r": [0] * 8}},
            "listener 'L1' in .* has no audiogram_cfs",
        ),
        (
            {
                "L1": {
                    "name": "L1",
                    "audiogram_cfs": CFS,
                    "audiogram_levels_l": [0] * 7,
                    "audiogram_levels_r": [0] * 8,
                }
            },
            "audiogram_levels_l does not fit audiogram_cfs",
        ),
        (
            {
                "L1": {
                    "name": "L1",
                    "audiogram_cfs": CFS,
                    "audiogram_levels_l": [None] * 8,
                    "audiogram_levels_r": [0] * 8,
                }
            },
            "finite numbers",
        ),
        ({"L1": [1, 2]}, "listener 'L1' .* is a list"),
    ],
)
def test_bad_listener_files_name_the_problem(tmp_path, content, match):
    path = tmp_path / "missing.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CadenzaError, match=match):
        load_listeners(path)


# ------------------------------------------------------------------ hearing aid, clip
def test_nalr_of_a_flat_0_db_audiogram_is_the_identity():
    x = noise(SR, channels=1, seed=1)[0]
    flat = audiogram([0] * 8)
    fir = nalr_fir(flat, SR)
    assert len(fir) == 221 and fir[110] == 1.0 and np.count_nonzero(fir) == 1
    np.testing.assert_allclose(hearing_aid(x, flat, SR), x, atol=1e-12)


def _band_gain_db(y, x, lo, hi):
    f = np.fft.rfftfreq(len(x), 1 / SR)
    band = (f >= lo) & (f <= hi)
    return 10 * np.log10(
        np.sum(np.abs(np.fft.rfft(y)[band]) ** 2) / np.sum(np.abs(np.fft.rfft(x)[band]) ** 2)
    )


def test_nalr_of_a_sloping_loss_boosts_high_frequencies():
    """The NAL-R formula for the sloping example (left ear: 10 10 15 30 ... dB HL):
    X = 0.05 (15 + 15 + 30) * ... = 0.05 * (HL500 + HL1k + HL2k); gain = X + 0.31 HL + bias,
    floored at 0 dB: ~0 dB at 250-500 Hz, ~17.8 dB at 4 kHz, ~20.9 dB at 6 kHz."""
    levels = listener_by_id("example_sloping").audiogram_left
    at = levels.resample(np.array([250, 500, 1000, 2000, 4000, 6000])).levels
    x_ave = 0.05 * (at[1] + at[2] + at[3])
    expected = np.maximum(x_ave + 0.31 * at + np.array([-17, -8, 1, -1, -2, -2]), 0)
    assert expected[0] == expected[1] == 0 and expected[4] > 15
    x = noise(4 * SR, channels=1, seed=2)[0]
    y = hearing_aid(x, levels, SR)
    low = _band_gain_db(y, x, 200, 500)
    high = _band_gain_db(y, x, 3500, 4500)
    assert abs(low) < 1.5, low
    assert abs(high - expected[4]) < 1.5, (high, expected[4])
    assert high - low > 15


def test_compressor_reduces_loud_passages():
    x = 0.9 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    flat = audiogram([0] * 8)
    y = hearing_aid(x, flat, SR, compressor=True)
    assert y.shape == x.shape and np.sqrt(np.mean(y[SR // 2 :] ** 2)) < 0.9 * np.sqrt(
        np.mean(x[SR // 2 :] ** 2)
    )


def test_soft_clip_and_remix_stay_within_one():
    x = np.concatenate([np.linspace(-50, 50, 10001), [np.inf, -np.inf]])
    y = soft_clip(x)
    assert np.all(np.abs(y) <= 1.0) and np.all(np.diff(y[:-2]) >= 0)
    np.testing.assert_allclose(soft_clip(np.array([1e-3, -2e-3])), [1e-3, -2e-3], rtol=1e-5)
    loud = {"a": np.full((2, 10), 3.0), "b": np.full((2, 10), 2.0)}
    assert np.all(remix_stems(loud) <= 1.0)
    np.testing.assert_allclose(remix_stems(loud), np.tanh(5.0))
    np.testing.assert_allclose(remix_stems(loud, soft=False), 1.0)
    quiet = {"a": np.full((2, 4), 0.01), "b": np.full((2, 4), 0.02)}
    np.testing.assert_allclose(remix_stems(quiet), np.tanh(0.03))


# -------------------------------------------------------------------------- HAAQI
def test_haaqi_known_answers():
    """Matched reference: a stem against itself scores ~1, and 0 dB SNR noise scores far
    lower. CAD1 convention: a perfect stem scores below 1 (HAAQI's internal NAL-R of the
    reference leads by 70 samples at 24 kHz), but well above the noisy one."""
    near = listener_by_id("example_near_normal").audiogram_left
    x = 0.3 * music_like(1.0, seed=1)[0]
    p = hearing_aid(x, near, SR)
    clean = score_stem(p, x, SR, near, "matched")
    assert clean > 0.95, clean
    rms = np.sqrt(np.mean(p**2))
    noisy = p + rms * noise(len(p), channels=1, seed=3)[0]  # 0 dB SNR
    degraded = score_stem(noisy, x, SR, near, "matched")
    assert degraded < 0.5 and degraded < clean - 0.4, degraded
    cad1 = score_stem(p, x, SR, near, "cad1")
    assert 0.7 < cad1 < clean, cad1
    assert math.isnan(score_stem(p, np.zeros_like(x), SR, near))  # silent reference


# ------------------------------------------------------------------ one (song, listener)
def test_process_song_rows_and_remix():
    refs = song_stems(0.5)
    listener = listener_by_id("example_near_normal")
    rows, remix = process_song(refs, refs, listener, SR, reference="matched", song="s1")
    assert [(r["stem"], r["ear"]) for r in rows] == [
        (s, e) for s in SOURCES for e in ("left", "right")
    ]
    assert all(r["song"] == "s1" and r["listener"] == listener.id for r in rows)
    assert all(0.9 < r["haaqi"] <= 1.0 for r in rows), [r["haaqi"] for r in rows]
    assert remix.shape == (2, int(0.5 * SR)) and remix.dtype == np.float32
    assert np.all(np.abs(remix) <= 1.0)
    # the remix is the soft-clipped sum of the amplified stems, per ear
    ears = (listener.audiogram_left, listener.audiogram_right)
    expected = sum(
        np.stack([hearing_aid(refs[s][e], ears[e], SR) for e in range(2)]) for s in SOURCES
    )
    np.testing.assert_allclose(remix, np.tanh(expected), atol=1e-6)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(sample_rate=8000), "sample_rate must be an integer >= 16000 Hz.*got 8000"),
        (dict(sample_rate=44100.0), "sample_rate must be an integer .*got 44100.0"),
        (dict(stems={"vocals": np.zeros((2, 100))}), "must name the same stems"),
        (
            dict(stems={"vocals": np.zeros((100, 2))}, references={"vocals": np.zeros((100, 2))}),
            r"stem 'vocals' has shape \(100, 2\), expected \(2, samples\)",
        ),
        (
            dict(
                stems={"vocals": np.full((2, 100), np.nan)},
                references={"vocals": np.zeros((2, 100))},
            ),
            "stem 'vocals' contains NaN",
        ),
        (dict(listener=object()), "listener must be a clarity Listener"),
        (
            dict(reference="other"),
            "unknown reference convention 'other'; choose one of cad1, matched",
        ),
    ],
)
def test_process_song_bad_inputs(change, match):
    args = dict(
        stems={s: np.zeros((2, 100)) for s in SOURCES},
        references={s: np.zeros((2, 100)) for s in SOURCES},
        listener=load_listeners()[0],
        sample_rate=SR,
    )
    args.update(change)
    with pytest.raises(CadenzaError, match=match):
        process_song(**args)


# ----------------------------------------------------------------------- the pipeline
class FakeSeparator:
    """Returns the reference stems of the song plus white noise at 0.3 x their RMS."""

    targets = SOURCES

    def __init__(self, stems):
        self.stems = stems

    def separate(self, audio, sample_rate):
        assert sample_rate == SR and audio.shape[0] == 2
        n = audio.shape[1]
        out = {}
        for j, (s, ref) in enumerate(self.stems.items()):
            ref = ref[:, :n]
            rms = np.sqrt(np.mean(ref**2))
            out[s] = (ref + 0.3 * rms * noise(n, seed=10 + j)).astype(np.float32)
        return out


def test_run_writes_one_row_per_song_listener_stem_ear(tmp_path, monkeypatch):
    """run(cfg): the real config and data reading, a stand-in separator, two listeners, two
    worker processes and ``seconds`` cutting a 1.5 s song to 0.5 s."""
    from xslicq.cadenza import run

    stems = song_stems(1.5, seed=4)
    data = tmp_path / "musdb"
    write_musdb_track(data / "test" / "song_a", stems)
    listeners = save_listeners(load_listeners()[2:], tmp_path / "listeners.json")
    ckpt = tmp_path / "model.ckpt"
    calls = stand_in_separator(monkeypatch, ckpt, FakeSeparator(stems))
    out = tmp_path / "out"
    summary = run(
        compose_config(
            "cadenza",
            [
                f"checkpoint={ckpt}",
                "data=musdb",
                f"data.root={data}",
                f"listeners={listeners}",
                "workers=2",
                "seconds=0.5",
                f"out={out}",
                "save_remix=true",
            ],
        )
    )
    assert calls == [(str(ckpt), "cpu")]
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 * 2 * 8
    assert {(r["song"], r["listener"], r["stem"], r["ear"]) for r in rows} == {
        ("song_a", x, s, e)
        for x in ("example_sloping", "example_near_normal")
        for s in SOURCES
        for e in ("left", "right")
    }
    scores = np.array([float(r["haaqi"]) for r in rows])
    assert np.all((scores > 0) & (scores <= 1))
    assert summary["mean"] == pytest.approx(scores.mean())
    assert set(summary["per_stem"]) == set(SOURCES) and summary["scored"] == 16
    saved = json.loads((out / "summary.json").read_text())
    assert saved["mean"] == pytest.approx(summary["mean"])
    assert "| **mean** |" in (out / "summary.md").read_text()
    assert not (out / "scores.partial.csv").exists()
    remix, rate = sf.read(out / "remix" / "example_sloping" / "song_a.wav")
    assert rate == SR and remix.shape == (SR // 2, 2)


def test_pipeline_errors_name_the_problem(tmp_path):
    from xslicq.cadenza import evaluate_cadenza
    from xslicq.data.tracks import find_tracks

    folder = tmp_path / "low" / "test" / "song_8k"
    folder.mkdir(parents=True)
    for stem in ("mixture",) + SOURCES:
        sf.write(folder / f"{stem}.wav", np.zeros((800, 2), np.float32), 8000)
    tracks = find_tracks(tmp_path / "low", "test", sample_rate=8000)
    sep = FakeSeparator({})
    with pytest.raises(
        CadenzaError,
        match="song song_8k has sample rate 8000 Hz; the hearing aid needs >= 16000 Hz",
    ):
        evaluate_cadenza(sep.separate, tracks, load_listeners()[:1], tmp_path / "out")
    with pytest.raises(CadenzaError, match="seconds must be a positive number"):
        evaluate_cadenza(sep.separate, tracks, load_listeners()[:1], tmp_path / "out", seconds=0)
    with pytest.raises(CadenzaError, match="workers must be an integer >= 0"):
        evaluate_cadenza(sep.separate, tracks, load_listeners()[:1], tmp_path / "out", workers=-1)


def test_config_defaults_and_run_checks():
    from xslicq.cadenza import run

    cfg = compose_config("cadenza")
    assert cfg.split == "test" and cfg.workers == 2 and cfg.compressor is False
    assert cfg.listeners is None and cfg.seconds is None and cfg.reference == "cad1"
    assert cfg.data.synthetic is not None
    with pytest.raises(CadenzaError, match="no checkpoint given"):
        run(cfg)


def test_cli_help_and_missing_checkpoint(tmp_path):
    r = run_module("xslicq.cadenza", "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "listeners" in r.stdout and "compressor" in r.stdout and "seconds" in r.stdout
    missing = tmp_path / "missing.ckpt"
    r = run_module(
        "xslicq.cadenza", f"checkpoint={missing}", f"out={tmp_path / 'out'}", timeout=120
    )
    assert r.returncode != 0
    assert f"checkpoint {missing} does not exist" in r.stderr and "Traceback" not in r.stderr


def test_imports_stay_light():
    """The scoring workers import xslicq.cadenza: no Lightning there, and pyclarity only on
    use; importing xslicq.callbacks imports neither pyclarity nor xslicq.cadenza."""
    checks = {
        "xslicq.cadenza": ("pytorch_lightning", "clarity"),
        "xslicq.callbacks": ("clarity", "xslicq.cadenza"),
    }
    for module, absent in checks.items():
        code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "[]", (module, r.stdout)


# ----------------------------------------------------------------------- the callback
class FakeSystem:
    """What HAAQICallback needs of a SeparationSystem: ``__call__``, targets, transform."""

    targets = SOURCES
    transform = types.SimpleNamespace(sample_rate=SR)
    device = torch.device("cpu")

    def __init__(self, estimates):
        self.estimates = estimates  # (J, C, L) tensor
        self.logged = {}

    def __call__(self, mixture):
        assert mixture.shape == (1,) + self.estimates.shape[1:]
        return self.estimates[None]

    def log(self, name, value, **kwargs):
        self.logged[name] = value


def test_callback_logs_val_haaqi():
    import pytorch_lightning as pl

    from xslicq.callbacks import HAAQICallback

    refs = torch.from_numpy(np.stack([song_stems(1.5, seed=7)[s] for s in SOURCES])).float()
    refs[:, :, : SR // 2] = 0  # silent start: the clip must skip it
    module = FakeSystem(refs.clone())
    callback = HAAQICallback(seconds=0.5, listener="example_near_normal", reference="matched")
    assert isinstance(callback, pl.Callback) and callback.listener.id == "example_near_normal"
    trainer = types.SimpleNamespace(sanity_checking=False, current_epoch=0)
    batch = (refs.sum(0)[None], refs[None])
    callback.on_validation_batch_end(trainer, module, None, batch, 0)
    callback.on_validation_epoch_end(trainer, module)
    assert set(module.logged) == {"val/haaqi"} | {f"val/haaqi_{s}" for s in SOURCES}
    assert 0.9 < module.logged["val/haaqi"] <= 1.0, module.logged
    assert callback.last_scores["rows"] == 8 and callback.last_scores["scored"] == 8

    skipped = FakeSystem(refs)  # sanity check and off-epochs: nothing
    sanity = types.SimpleNamespace(sanity_checking=True, current_epoch=0)
    callback.on_validation_batch_end(sanity, skipped, None, batch, 0)
    callback.on_validation_epoch_end(sanity, skipped)
    every2 = HAAQICallback(seconds=0.5, every_n_epochs=2)
    every2.on_validation_batch_end(trainer, skipped, None, batch, 0)
    every2.on_validation_epoch_end(trainer, skipped)
    assert skipped.logged == {}


def test_callback_errors_and_config():
    from xslicq.callbacks import HAAQICallback

    with pytest.raises(CadenzaError, match="no listener 'L0000'; choose one of example_mild"):
        HAAQICallback(listener="L0000")
    with pytest.raises(CadenzaError, match="every_n_epochs must be an integer >= 1, got 0"):
        HAAQICallback(every_n_epochs=0)
    with pytest.raises(CadenzaError, match="seconds must be positive"):
        HAAQICallback(seconds=0)
    from hydra.utils import instantiate

    default = compose_config("train").callbacks
    cfg = compose_config("train", ["callbacks=haaqi"]).callbacks
    assert set(cfg) == set(default) | {"haaqi"}
    callback = instantiate(cfg.haaqi)
    assert isinstance(callback, HAAQICallback) and callback.listener.id == "example_mild"
    assert callback.seconds == 2.0 and callback.every_n_epochs == 1


@pytest.mark.slow
def test_tiny_training_run_logs_val_haaqi_and_cli_scores_its_checkpoint(tmp_path):
    """A real (tiny) training run with callbacks=haaqi logs val/haaqi; the CLI then scores
    its checkpoint on the test song (0.5 s, one listener, two workers)."""
    from xslicq.train import train

    data_root = make_dataset(tmp_path / "ds", train=2, test=1, valid=1, seconds=3.0)
    cfg = tiny_train_config(
        tmp_path / "run",
        data_root,
        ["callbacks=haaqi", "callbacks.haaqi.seconds=0.5", "log_media=false"],
    )
    metrics, _ = train(cfg)
    assert 0.0 <= metrics["val/haaqi"] <= 1.0
    listeners = save_listeners(load_listeners()[:1], tmp_path / "one.json")
    out = tmp_path / "cadenza"
    r = run_module(
        "xslicq.cadenza",
        f"checkpoint={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
        "data=musdb",
        f"data.root={data_root}",
        f"listeners={listeners}",
        "seconds=0.5",
        "workers=2",
        f"out={out}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(0.0 <= float(row["haaqi"]) <= 1.0 for row in rows)
    assert "| **mean** |" in r.stdout
