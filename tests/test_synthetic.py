"""The procedural MUSDB18-HQ-like data set (xslicq.data.synthetic): layout, audio, determinism,
idempotence, errors and the command line. Needs fluidsynth and a General MIDI SoundFont."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from xslicq.data import SOURCES
from xslicq.data.synthetic import MANIFEST_NAME, find_soundfont, generate_dataset

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
SECONDS = 4.0
FILES = ("mixture",) + tuple(SOURCES)


def _soundfont_available():
    try:
        find_soundfont()
        return True
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not _soundfont_available(),
    reason="needs fluidsynth and a GM SoundFont (apt-get install fluidsynth fluid-soundfont-gm)")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """3 tracks of 4 s: one train, one valid (in train/), one test."""
    root = tmp_path_factory.mktemp("synthetic") / "musdb"
    manifest = generate_dataset(root, tracks=3, seconds=SECONDS, seed=0, test_tracks=1,
                                valid_tracks=1, workers=2, progress=False)
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


def test_layout_and_manifest(dataset):
    root, m = dataset
    assert json.loads((root / MANIFEST_NAME).read_text()) == m
    assert m["version"] == 1 and m["seed"] == 0 and m["seconds"] == SECONDS
    assert m["sample_rate"] == SR and m["tracks"] == 3 and m["frames"] == int(SECONDS * SR)
    assert {k: len(v) for k, v in m["split"].items()} == {"train": 1, "valid": 1, "test": 1}
    names = [n for v in m["split"].values() for n in v]
    assert len(set(names)) == 3
    assert all(re.fullmatch(r"synth_\d{3}_[a-z0-9_]+", n) for n in names)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(m["split"]["train"] + m["split"]["valid"])
    assert [p.name for p in (root / "test").iterdir()] == m["split"]["test"]
    assert set(m["track_info"]) == set(names)
    for split, d in _tracks(root, m):
        assert m["track_info"][d.name]["split"] == split
        assert sorted(p.name for p in d.iterdir()) == sorted(f"{f}.wav" for f in FILES)
        for f in FILES:
            info = sf.info(str(d / f"{f}.wav"))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == \
                (SR, 2, int(SECONDS * SR), "FLOAT")


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


def test_idempotent_and_refuses_other_parameters(dataset, tmp_path):
    root, m = dataset
    before = {f: (root / f).stat().st_mtime_ns for f in _files(root)}
    again = generate_dataset(root, tracks=3, seconds=SECONDS, seed=0, test_tracks=1,
                             valid_tracks=1, progress=False)
    assert again == m
    assert {f: (root / f).stat().st_mtime_ns for f in _files(root)} == before
    with pytest.raises(FileExistsError, match=r"seed 0 != 1.*force"):
        generate_dataset(root, tracks=3, seconds=SECONDS, seed=1, test_tracks=1,
                         valid_tracks=1, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no xslicq_synthetic.json"):
        generate_dataset(other, tracks=1, seconds=2.0, progress=False)
    m2 = generate_dataset(other, tracks=1, seconds=2.0, progress=False, force=True)
    assert (other / "notes.txt").read_text() == "mine"
    assert (other / "train" / m2["split"]["train"][0] / "mixture.wav").is_file()


@pytest.mark.parametrize("kwargs, match", [
    (dict(tracks=0), "tracks must be >= 1, got 0"),
    (dict(seconds=0), "seconds must be positive, got 0"),
    (dict(seconds=-3.0), "seconds must be positive, got -3"),
    (dict(seconds=1.5), "seconds must be >= 2.*got 1.5"),
    (dict(test_tracks=2, valid_tracks=1), r"test_tracks \+ valid_tracks = 2 \+ 1 = 3.*tracks = 3"),
    (dict(test_tracks=-1), "test_tracks must be >= 0, got -1"),
    (dict(seed=-2), "seed must be >= 0, got -2"),
    (dict(workers=0), "workers must be >= 1, got 0"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(tracks=3, seconds=3.0, progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        generate_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_missing_soundfont_and_fluidsynth(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "GM.sf2"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + ".*fluid-soundfont-gm"):
        generate_dataset(tmp_path / "out", tracks=1, seconds=2.0, soundfont=missing, progress=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install fluidsynth"):
        generate_dataset(tmp_path / "out", tracks=1, seconds=2.0, progress=False)


def test_fluidsynth_failure_is_reported(tmp_path):
    bad = tmp_path / "broken.sf2"
    bad.write_bytes(b"not a soundfont" * 64)
    with pytest.raises(RuntimeError, match="fluidsynth failed.*SoundFont"):
        generate_dataset(tmp_path / "out", tracks=1, seconds=2.0, soundfont=bad, progress=False)


def test_cli(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "xslicq.data.synthetic", "--out", str(out), "--tracks", "2",
           "--seconds", "3", "--test-tracks", "1", "--valid-tracks", "0", "--seed", "3"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / MANIFEST_NAME).read_text())
    assert m["seed"] == 3 and len(m["split"]["train"]) == 1 and len(m["split"]["test"]) == 1
    for f in FILES:
        assert (out / "test" / m["split"]["test"][0] / f"{f}.wav").is_file()
    r = subprocess.run([sys.executable, "-m", "xslicq.data.synthetic", "--help"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "--tracks" in r.stdout and "--soundfont" in r.stdout
    r = subprocess.run(cmd[:-2] + ["--seed", "4"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode != 0 and "seed 3 != 4" in r.stderr
