"""The procedural MUSDB18-HQ-like data set (xslicq.data.synthetic): layout, audio, determinism,
known answers, idempotence, errors and the command line. Rendering needs fluidsynth and a
General MIDI SoundFont; the composition, MIDI, mixing and WAV tests need neither."""

import doctest
import hashlib
import io
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from xslicq.data import SOURCES
from xslicq.data.synthetic import (
    MANIFEST_NAME,
    PROGRESS_NAME,
    Song,
    SyntheticSetExists,
    generate_dataset,
    patterns,
    theory,
)
from xslicq.data.synthetic.midi import stem_midi
from xslicq.data.synthetic.mix import mix_stems
from xslicq.data.synthetic.wav import write_float_wav

from helpers import SR, needs_fluidsynth, run_module

SECONDS = 4.0
FILES = ("mixture",) + tuple(SOURCES)


# Known answers, recorded with the generator before it was split into modules (2026-12).
# The composition: sha256 per stem of the MIDI files of one song per style (seed 0), each
# 2 s and 45 s long (the long ones have an intro, fills, a bridge and an outro).
KNOWN_SONGS = ((0, 1, 3, 7, 17, 20, 24, 27), (2.0, 45.0))
KNOWN_MIDI = {
    "vocals": "646f30838a1d416a0fab1d38a7333582d4fe040d6567b1487e54e7e60b3da7d1",
    "drums": "91b26ec83e402b9fb85ea378a9cfb9dd46b4abc568f3950463b2854056aaee2d",
    "bass": "a0a3b1597acf1f1b6ee69ebf0ad19aa9327c1044efe04f2fd63b1f180896abd4",
    "other": "675207356abe9f6726dcc1f48c6d57e7c057391855842c564f91296a98ee357c",
}
# The rendered `dataset` fixture (3 tracks of 4 s, seed 0): sha256 over the WAV files (path,
# then bytes, sorted by path) and of the manifest less its machine-dependent `soundfont` and
# `fluidsynth` entries; valid only for this fluidsynth and SoundFont (FluidR3_GM.sf2).
KNOWN_FLUIDSYNTH = "FluidSynth runtime version 2.3.1"
KNOWN_SOUNDFONT_BYTES = 148398306
KNOWN_WAVS = "3280da8e0c6f6ef9400ae8a174654eb29828b2298276d417591951a049279d41"
KNOWN_MANIFEST = "2b4b99c887ac9f48941e512f2418e7d4e9fbf3901ce024f9c9aed6857f6f1e11"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """3 tracks of 4 s: one train, one valid (in train/), one test."""
    root = tmp_path_factory.mktemp("synthetic") / "musdb"
    manifest = generate_dataset(
        root,
        tracks=3,
        seconds=SECONDS,
        seed=0,
        test_tracks=1,
        valid_tracks=1,
        workers=2,
        progress=False,
    )
    return root, manifest


def _tracks(root, manifest):
    for split, names in manifest["split"].items():
        folder = "test" if split == "test" else "train"
        for name in names:
            yield split, root / folder / name


def _read(track_dir):
    return {f: sf.read(track_dir / f"{f}.wav", dtype="float64", always_2d=True)[0] for f in FILES}


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@needs_fluidsynth
def test_layout_and_manifest(dataset):
    root, m = dataset
    assert json.loads((root / MANIFEST_NAME).read_text()) == m
    assert m["version"] == 1 and m["seed"] == 0 and m["seconds"] == SECONDS
    assert m["sample_rate"] == SR and m["tracks"] == 3 and m["frames"] == int(SECONDS * SR)
    assert {k: len(v) for k, v in m["split"].items()} == {"train": 1, "valid": 1, "test": 1}
    names = [n for v in m["split"].values() for n in v]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"synth_\d{3}_[a-z0-9_]+", n) for n in names)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(
        m["split"]["train"] + m["split"]["valid"]
    )
    assert [p.name for p in (root / "test").iterdir()] == m["split"]["test"]
    assert set(m["track_info"]) == set(names)
    for split, d in _tracks(root, m):
        assert m["track_info"][d.name]["split"] == split
        assert sorted(p.name for p in d.iterdir()) == sorted(f"{f}.wav" for f in FILES)
        for f in FILES:
            info = sf.info(str(d / f"{f}.wav"))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (
                SR,
                2,
                int(SECONDS * SR),
                "FLOAT",
            )


@needs_fluidsynth
def test_musdb_reads_it(dataset):
    if shutil.which("ffmpeg") is None:
        pytest.skip("musdb needs ffmpeg on PATH to import")
    musdb = pytest.importorskip("musdb")
    root, m = dataset
    train = musdb.DB(root=str(root), is_wav=True, subsets="train")
    test = musdb.DB(root=str(root), is_wav=True, subsets="test")
    assert sorted(t.name for t in train) == sorted(m["split"]["train"] + m["split"]["valid"])
    assert [t.name for t in test] == m["split"]["test"]
    track = test[0]
    assert track.rate == SR and track.audio.shape == (int(SECONDS * SR), 2)
    for s in SOURCES:
        assert track.targets[s].audio.shape == (int(SECONDS * SR), 2)


@needs_fluidsynth
def test_audio_levels_and_vocal_gaps(dataset):
    root, m = dataset
    win = SR // 4
    for _, d in _tracks(root, m):
        x = _read(d)
        stems = sum(x[s] for s in SOURCES)
        assert np.abs(x["mixture"] - stems).max() <= 1e-6, d.name
        for f in FILES:
            assert np.abs(x[f]).max() <= 0.95, (d.name, f)
            assert np.abs(x[f]).max() > 1e-3, f"{f} of {d.name} is silent"
        assert np.abs(x["mixture"]).max() > 0.05
        v = x["vocals"]
        n = v.shape[0] // win
        rms = np.sqrt(np.mean(v[: n * win].reshape(n, win, 2) ** 2, axis=(1, 2)))
        assert (rms < 1e-3).any(), f"vocals of {d.name} have no silent gap"
        assert (rms > 1e-2).any(), f"vocals of {d.name} are never sung"


@needs_fluidsynth
def test_same_seed_same_bytes_other_seed_other_audio(tmp_path):
    kw = dict(tracks=1, seconds=3.0, progress=False)
    generate_dataset(tmp_path / "a", seed=7, workers=2, **kw)
    generate_dataset(tmp_path / "b", seed=7, workers=1, **kw)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa == fb and len(fa) == 1 + len(FILES)
    for f in fa:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    mc = generate_dataset(tmp_path / "c", seed=8, **kw)
    (name_a,) = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())["split"]["train"]
    (name_c,) = mc["split"]["train"]
    xa = sf.read(tmp_path / "a" / "train" / name_a / "mixture.wav")[0]
    xc = sf.read(tmp_path / "c" / "train" / name_c / "mixture.wav")[0]
    assert not np.allclose(xa, xc)


@needs_fluidsynth
def test_known_answer_files(dataset):
    """Same seed, same bytes as the generator before the split (for the recorded renderer)."""
    root, m = dataset
    if (
        m["fluidsynth"] != KNOWN_FLUIDSYNTH
        or Path(m["soundfont"]).stat().st_size != KNOWN_SOUNDFONT_BYTES
    ):
        pytest.skip(
            f"known answers recorded with {KNOWN_FLUIDSYNTH} and FluidR3_GM.sf2, not "
            f"{m['fluidsynth']} and {m['soundfont']}"
        )
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.wav")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    assert h.hexdigest() == KNOWN_WAVS
    rest = {k: v for k, v in m.items() if k not in ("soundfont", "fluidsynth")}
    assert hashlib.sha256(json.dumps(rest, indent=2).encode()).hexdigest() == KNOWN_MANIFEST


def test_known_answer_composition():
    """The MIDI files of one song per style, short and long, are the recorded ones."""
    indices, durations = KNOWN_SONGS
    digests = {s: hashlib.sha256() for s in SOURCES}
    styles = set()
    for index in indices:
        for seconds in durations:
            song = Song(0, index, seconds).compose()
            styles.add(song.style)
            for s in SOURCES:
                buf = io.BytesIO()
                stem_midi(song, s).save(file=buf)
                digests[s].update(buf.getvalue())
    assert styles == set(patterns.STYLES)
    assert {s: d.hexdigest() for s, d in digests.items()} == KNOWN_MIDI


@pytest.mark.parametrize("module", [theory, patterns])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_song_name_is_known_before_composing():
    song = Song(0, 7, 3.0)
    assert song.name == "synth_007_d_minor_ballad_96bpm" and song.notes is None
    assert (song.style, song.mode, song.tonic, song.bpm) == ("ballad", "minor", 2, 96)
    assert Song(0, 17, 3.0).name == "synth_017_cs_major_waltz_83bpm"
    song.compose()
    assert song.name == "synth_007_d_minor_ballad_96bpm" and set(song.notes) == set(SOURCES)


def test_stem_midi_stays_in_the_track_with_one_voice_per_pitch():
    song = Song(0, 20, 2.0).compose()  # shuffle: swung, notes past the end
    for stem in SOURCES:
        mid = stem_midi(song, stem)
        assert mid.ticks_per_beat == theory.TPB and len(mid.tracks) == 1
        now, sounding = 0, set()
        for msg in mid.tracks[0]:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                assert (msg.channel, msg.note) not in sounding, (stem, now, msg)
                assert 1 <= msg.velocity <= 127
                sounding.add((msg.channel, msg.note))
            elif msg.type == "note_off":
                sounding.discard((msg.channel, msg.note))
        assert now == song.end_tick and not sounding, stem


def test_write_float_wav_round_trip(tmp_path):
    x = np.stack([np.linspace(-1, 1, 101), np.full(101, 0.25)], axis=1).astype(np.float32)
    write_float_wav(tmp_path / "a.wav", x, 22050)
    write_float_wav(tmp_path / "b.wav", x, 22050)
    y, sr = sf.read(tmp_path / "a.wav", dtype="float32", always_2d=True)
    assert sr == 22050 and sf.info(str(tmp_path / "a.wav")).subtype == "FLOAT"
    np.testing.assert_array_equal(y, x)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert len((tmp_path / "a.wav").read_bytes()) == 44 + 12 + x.nbytes  # RIFF+fmt, fact, data


def _rendered(frames=4410):
    t = np.arange(frames) / 44100
    out = {}
    for k, s in enumerate(SOURCES):
        audio = np.stack([np.sin(2 * np.pi * 110 * (k + 1) * t)] * 2, axis=1) * 0.1 * (k + 1)
        audio = audio.astype(np.float32)
        out[s] = (audio, float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))))
    return out


def test_mix_stems_balances_and_peaks_at_the_target():
    gains_db = {"vocals": 2.0, "drums": 0.0, "bass": -3.0, "other": -4.0}
    rendered = _rendered()
    before = {s: rendered[s][0].copy() for s in SOURCES}
    stems, mixture, applied = mix_stems(rendered, gains_db, 0.8, "synth_000_test")
    assert mixture.dtype == np.float32 and mixture.shape == (4410, 2)
    np.testing.assert_allclose(mixture, sum(stems[s] for s in SOURCES), atol=1e-6)
    loudest = max([np.abs(mixture).max()] + [np.abs(stems[s]).max() for s in SOURCES])
    assert abs(loudest - 0.8) < 1e-6
    # the reported gains are the applied ones; the loudness of the stems, relative to their
    # requested gains, is one common factor
    common = []
    for s in SOURCES:
        np.testing.assert_allclose(stems[s], before[s] * 10 ** (applied[s] / 20), rtol=1e-3)
        rms = np.sqrt(np.mean(stems[s].astype(np.float64) ** 2))
        common.append(20 * np.log10(rms / 0.1) - gains_db[s])
    assert max(common) - min(common) < 1e-5


def test_mix_stems_names_a_silent_stem():
    rendered = _rendered()
    rendered["bass"] = (np.zeros_like(rendered["bass"][0]), 0.0)
    with pytest.raises(RuntimeError, match="silence for bass of synth_000_test"):
        mix_stems(rendered, dict.fromkeys(SOURCES, 0.0), 0.8, "synth_000_test")


@needs_fluidsynth
def test_completes_a_copy_with_missing_files(dataset, tmp_path):
    """Missing files of a set are rendered again, identically; the manifest stays the same."""
    root, m = dataset
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    test_dir = copy / "test" / m["split"]["test"][0]
    (test_dir / "drums.wav").unlink()
    (test_dir / "mixture.wav").unlink()
    again = generate_dataset(
        copy, tracks=3, seconds=SECONDS, seed=0, test_tracks=1, valid_tracks=1, progress=False
    )
    assert again == m
    assert _files(copy) == _files(root)
    for f in _files(root):
        assert (copy / f).read_bytes() == (root / f).read_bytes(), f


@needs_fluidsynth
def test_idempotent_and_refuses_other_parameters(dataset, tmp_path):
    root, m = dataset
    before = {f: (root / f).stat().st_mtime_ns for f in _files(root)}
    again = generate_dataset(
        root, tracks=3, seconds=SECONDS, seed=0, test_tracks=1, valid_tracks=1, progress=False
    )
    assert again == m
    assert {f: (root / f).stat().st_mtime_ns for f in _files(root)} == before
    with pytest.raises(FileExistsError, match=r"seed 0 != 1.*force"):
        generate_dataset(
            root, tracks=3, seconds=SECONDS, seed=1, test_tracks=1, valid_tracks=1, progress=False
        )
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for force in (False, True):  # a folder the generator did not make: never written into
        with pytest.raises(SyntheticSetExists, match="holds no xslicq_synthetic.json") as err:
            generate_dataset(other, tracks=1, seconds=2.0, progress=False, force=force)
        assert not err.value.replaceable and "force" not in str(err.value)
        assert [p.name for p in other.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "other.lock").exists()


@needs_fluidsynth
def test_force_replaces_a_set_of_other_parameters(tmp_path, caplog):
    root = tmp_path / "set"
    kw = dict(tracks=1, seconds=2.0, progress=False)
    generate_dataset(root, seed=1, **kw)
    (root / "notes.txt").write_text("mine")
    with pytest.raises(SyntheticSetExists, match=r"seed 1 != 2.*force=True") as err:
        generate_dataset(root, seed=2, **kw)
    assert err.value.replaceable
    with caplog.at_level(logging.WARNING, logger="xslicq.data.synthetic.dataset"):
        m = generate_dataset(root, seed=2, force=True, **kw)
    assert "rendering it again (force)" in caplog.text
    assert m["seed"] == 2 and (root / "notes.txt").read_text() == "mine"
    assert [p.name for p in (root / "train").iterdir()] == m["split"]["train"]


@needs_fluidsynth
def test_an_interrupted_render_of_other_parameters_starts_over(tmp_path, caplog):
    """A progress file without a manifest is an interrupted render: with other parameters it
    starts again (its tracks removed); a stale one beside a manifest is dropped."""
    kw = dict(tracks=1, seconds=2.0, progress=False)
    reference = tmp_path / "reference"
    generate_dataset(reference, seed=3, **kw)
    root = tmp_path / "set"
    generate_dataset(root, seed=4, **kw)
    (root / MANIFEST_NAME).rename(root / PROGRESS_NAME)  # as if stopped before the end
    with caplog.at_level(logging.WARNING, logger="xslicq.data.synthetic.dataset"):
        generate_dataset(root, seed=3, **kw)
    assert (
        "interrupted render of a synthetic set that does not match (other parameters: seed 4 != 3)"
        in caplog.text
    )
    assert _files(root) == _files(reference)
    for f in _files(root):
        assert (root / f).read_bytes() == (reference / f).read_bytes(), f
    (root / PROGRESS_NAME).write_text("{}")  # stopped between the manifest and the clean-up
    stamp = (root / MANIFEST_NAME).stat().st_mtime_ns
    generate_dataset(root, seed=3, **kw)
    assert not (root / PROGRESS_NAME).exists()
    assert (root / MANIFEST_NAME).stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tracks=0), "tracks must be >= 1, got 0"),
        (dict(seconds=0), "seconds must be positive, got 0"),
        (dict(seconds=-3.0), "seconds must be positive, got -3"),
        (dict(seconds=1.5), "seconds must be >= 2.*got 1.5"),
        (
            dict(test_tracks=2, valid_tracks=1),
            r"test_tracks \+ valid_tracks = 2 \+ 1 = 3.*tracks = 3",
        ),
        (dict(test_tracks=-1), "test_tracks must be >= 0, got -1"),
        (dict(seed=-2), "seed must be >= 0, got -2"),
        (dict(workers=0), "workers must be >= 1, got 0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(tracks=3, seconds=3.0, progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        generate_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


@needs_fluidsynth
def test_missing_soundfont_and_fluidsynth(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "GM.sf2"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + ".*fluid-soundfont-gm"):
        generate_dataset(tmp_path / "out", tracks=1, seconds=2.0, soundfont=missing, progress=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install fluidsynth"):
        generate_dataset(tmp_path / "out", tracks=1, seconds=2.0, progress=False)


@needs_fluidsynth
def test_fluidsynth_failure_is_reported(tmp_path):
    bad = tmp_path / "broken.sf2"
    bad.write_bytes(b"not a soundfont" * 64)
    with pytest.raises(RuntimeError, match="fluidsynth failed.*SoundFont"):
        generate_dataset(tmp_path / "out", tracks=1, seconds=2.0, soundfont=bad, progress=False)


@needs_fluidsynth
def test_cli(tmp_path):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--tracks", "2", "--seconds", "3", "--test-tracks", "1"]
    args += ["--valid-tracks", "0", "--seed", "3"]
    r = run_module("xslicq.data.synthetic", *args, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / MANIFEST_NAME).read_text())
    assert m["seed"] == 3 and len(m["split"]["train"]) == 1 and len(m["split"]["test"]) == 1
    for f in FILES:
        assert (out / "test" / m["split"]["test"][0] / f"{f}.wav").is_file()
    r = run_module("xslicq.data.synthetic", "--help", timeout=300)
    assert r.returncode == 0 and "--tracks" in r.stdout and "--soundfont" in r.stdout
    r = run_module("xslicq.data.synthetic", *args[:-2], "--seed", "4", timeout=300)
    assert r.returncode != 0 and "seed 3 != 4" in r.stderr
