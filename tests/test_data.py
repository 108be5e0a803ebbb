"""Dataset discovery, errors, training/evaluation items, sampler and the DataModule.

Uses small hand-made MUSDB18-HQ-layout folders (tones and noise written with soundfile),
so it needs neither fluidsynth nor a download.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate

from xslicq.data import SOURCES
from xslicq.data.datamodule import MusdbDataModule
from xslicq.data.datasets import EpochSampler, EvalDataset, TrainDataset
from xslicq.data.tracks import (
    SYNTHETIC_MANIFEST,
    DatasetError,
    find_tracks,
    load_track,
    musdb_validation_tracks,
)

from helpers import SR, compose_config, make_dataset, write_tone_track


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds")


def test_splits_follow_the_manifest(dataset):
    train = find_tracks(dataset, "train")
    assert [t.name for t in train] == ["train_1", "train_2", "train_3"]
    assert [t.name for t in find_tracks(dataset, "valid")] == ["train_0"]
    assert [t.name for t in find_tracks(dataset, "test")] == ["test_0", "test_1"]
    assert train[0].frames == 3 * SR and train[0].channels == 2


def test_musdb_split_without_manifest(tmp_path):
    valid = musdb_validation_tracks()
    assert len(valid) == 14 and "Actions - One Minute Smile" in valid
    root = tmp_path / "musdb"
    write_tone_track(root / "train" / valid[0], 2.0)
    write_tone_track(root / "train" / "Some Artist - Some Song", 2.0)
    write_tone_track(root / "test" / "Other Artist - Song", 2.0)
    assert [t.name for t in find_tracks(root, "valid")] == [valid[0]]
    assert [t.name for t in find_tracks(root, "train")] == ["Some Artist - Some Song"]


def test_training_items(dataset):
    ds = TrainDataset(find_tracks(dataset, "train"), seq_dur=1.0, samples_per_track=5, seed=1)
    assert len(ds) == 15
    mix, targets = ds[3]
    assert mix.shape == (2, SR) and targets.shape == (4, 2, SR)
    assert mix.dtype == torch.float32
    torch.testing.assert_close(targets.sum(0), mix, rtol=0, atol=1e-6)
    # a pure function of (seed, index), different between indices and seeds
    torch.testing.assert_close(ds[3][0], mix, rtol=0, atol=0)
    assert not torch.equal(ds[4][0], mix)
    other_seed = TrainDataset(find_tracks(dataset, "train"), 1.0, 5, seed=2)
    assert not torch.equal(other_seed[3][0], mix)


def test_augmentations_stay_within_their_ranges(dataset):
    tracks = find_tracks(dataset, "train")
    plain = TrainDataset(tracks, 1.0, 4, random_mix=False, gain=(1.0, 1.0), channel_swap=False)
    # without augmentation, the vocals are the tone of the sample's own track, left louder
    _, targets = plain[0]
    assert float(targets[0, 0].abs().max()) == pytest.approx(0.2, rel=1e-3)
    assert float(targets[0, 1].abs().max()) == pytest.approx(0.16, rel=1e-3)
    aug = TrainDataset(tracks, 1.0, 50, gain=(0.25, 1.25), seed=3)
    peaks, swapped = [], 0
    for i in range(0, 150, 3):
        _, t = aug[i]
        peaks.append(float(t[0].abs().max()))
        swapped += float(t[0, 1].abs().max()) > float(t[0, 0].abs().max())
    assert 0.2 * 0.25 * 0.99 <= min(peaks) and max(peaks) <= 0.2 * 1.25 * 1.01
    assert 10 < swapped < 40  # about half the items are swapped


def test_silent_excerpts_are_redrawn(tmp_path):
    root = tmp_path / "silence"
    write_tone_track(root / "train" / "a", 3.0, seed=0, silent=("vocals",))
    write_tone_track(root / "train" / "b", 3.0, seed=1)
    write_tone_track(root / "test" / "c", 3.0, seed=2)
    split = {"train": ["a", "b"], "valid": [], "test": ["c"]}
    (root / SYNTHETIC_MANIFEST).write_text(json.dumps({"split": split}))
    tracks = find_tracks(root, "train")
    skip = TrainDataset(tracks, 1.0, 20, skip_silent=True, seed=0)
    keep = TrainDataset(tracks, 1.0, 20, skip_silent=False, seed=0)
    silent_skip = sum(float(skip[i][1][0].abs().max()) == 0 for i in range(40))
    silent_keep = sum(float(keep[i][1][0].abs().max()) == 0 for i in range(40))
    assert silent_keep > 5 and silent_skip == 0


def test_epoch_sampler_is_reproducible_and_moves_on():
    s = EpochSampler(10, seed=0)
    first = list(s)
    assert sorted(first) == list(range(10)) and first == list(EpochSampler(10, seed=0))
    s.set_epoch(3)
    assert sorted(s) == list(range(30, 40))


def test_eval_items_are_deterministic_chunks_or_whole_tracks(dataset):
    tracks = find_tracks(dataset, "test")
    whole = EvalDataset(tracks)
    mix, targets = whole[1]
    assert mix.shape == (2, 3 * SR) and targets.shape == (4, 2, 3 * SR)
    torch.testing.assert_close(targets.sum(0), mix, rtol=0, atol=1e-5)
    chunks = EvalDataset(tracks, seq_dur=1.0, chunks=2)
    assert len(chunks) == 4 and chunks[0][0].shape == (2, SR)
    assert chunks.name(1) == "test_0@1.3s"
    start = 58800  # chunks at 1/3 and 2/3 of (3 s - 1 s)
    torch.testing.assert_close(chunks[1][0], whole[0][0][:, start : start + SR], rtol=0, atol=0)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda r: (r / "train" / "train_2" / "bass.wav").unlink(), "train_2 has no bass.wav"),
        (
            lambda r: (r / "train" / "train_2" / "drums.wav").write_bytes(b"not audio"),
            "cannot read audio file .*drums.wav",
        ),
        (
            lambda r: sf.write(r / "train" / "train_2" / "vocals.wav", np.zeros((SR, 2)), SR),
            "have different lengths",
        ),
        (
            lambda r: write_tone_track(r / "train" / "train_2", 3.0, sample_rate=22050),
            "has sample rate 22050 Hz, expected 44100 Hz",
        ),
        (
            lambda r: sf.write(r / "train" / "train_2" / "other.wav", np.zeros((0, 2)), SR),
            "is empty",
        ),
    ],
)
def test_bad_tracks_name_the_file(dataset, damage, match):
    damage(dataset)
    with pytest.raises(DatasetError, match=match):
        find_tracks(dataset, "train")


def test_mono_stems_are_upmixed_with_a_warning(tmp_path):
    write_tone_track(tmp_path / "mono", 1.0, channels=1)
    with pytest.warns(UserWarning, match="mono stems .* are upmixed to stereo"):
        track = load_track(tmp_path / "mono")
    from xslicq.data.tracks import read

    audio = read(track, "vocals", 0, 100)
    assert audio.shape == (2, 100) and np.array_equal(audio[0], audio[1])


def test_missing_folders_and_short_tracks(tmp_path, dataset):
    with pytest.raises(DatasetError, match="dataset folder .*nowhere does not exist"):
        find_tracks(tmp_path / "nowhere", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="has no train/ folder"):
        find_tracks(tmp_path / "empty", "train")
    with pytest.raises(DatasetError, match="shorter than one training segment"):
        TrainDataset(find_tracks(dataset, "train"), seq_dur=5.0)
    with pytest.raises(ValueError, match="unknown target names \\['piano'\\]"):
        TrainDataset(find_tracks(dataset, "train"), seq_dur=1.0, targets=["vocals", "piano"])


def test_datamodule_loaders(dataset):
    dm = MusdbDataModule(
        str(dataset),
        seq_dur=1.0,
        samples_per_track=4,
        batch_size=4,
        num_workers=0,
        val_seq_dur=1.0,
        targets=["vocals", "drums"],
    )
    dm.prepare_data()
    dm.setup("fit")
    mix, targets = next(iter(dm.train_dataloader()))
    assert mix.shape == (4, 2, SR) and targets.shape == (4, 2, 2, SR)
    assert len(dm.train_dataloader()) == 3  # 12 items, batches of 4
    vmix, vtargets = next(iter(dm.val_dataloader()))
    assert vmix.shape == (1, 2, SR) and vtargets.shape == (1, 2, 2, SR)
    dm.setup("test")
    tmix, _ = next(iter(dm.test_dataloader()))
    assert tmix.shape == (1, 2, 3 * SR)


def test_datamodule_with_workers_is_reproducible(dataset):
    def first_batch(workers):
        dm = MusdbDataModule(
            str(dataset),
            seq_dur=0.5,
            samples_per_track=4,
            batch_size=4,
            num_workers=workers,
            persistent_workers=False,
        )
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(2)
        return next(iter(loader))[0]

    torch.testing.assert_close(first_batch(0), first_batch(2), rtol=0, atol=0)


def test_missing_root_and_bad_loader(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder .*missing does not exist"):
        MusdbDataModule(str(tmp_path / "missing")).prepare_data()
    with pytest.raises(ValueError, match="unknown data.loader 'fast'"):
        MusdbDataModule(str(tmp_path), loader="fast")


def test_dali_loader_without_gpu_is_a_clear_error(dataset):
    from xslicq.data.dali import check_dali

    try:
        check_dali()
    except RuntimeError as err:
        assert "data.loader=dali needs NVIDIA DALI" in str(err)
    else:
        pytest.skip("DALI and a GPU are usable here")
    dm = MusdbDataModule(str(dataset), seq_dur=1.0, num_workers=0, loader="dali")
    dm.setup("fit")
    with pytest.raises(RuntimeError, match="data.loader=dali needs NVIDIA DALI"):
        dm.train_dataloader()


@pytest.mark.parametrize("name", ["synthetic", "musdb"])
def test_data_configs_compose(name, tmp_path):
    cfg = compose_config(
        overrides=[f"+data={name}", "+paths=default", f"paths.data_dir={tmp_path}"]
    )
    if name == "musdb":
        from omegaconf.errors import MissingMandatoryValue

        with pytest.raises(MissingMandatoryValue, match="data.root"):
            instantiate(cfg.data)
        return
    dm = instantiate(cfg.data)
    assert isinstance(dm, MusdbDataModule)
    assert str(dm.root) == f"{tmp_path}/synthetic-24x20.0s-seed0"
    assert dm.synthetic["tracks"] == 24 and dm.targets == SOURCES
    assert dm.name == "synthetic-24x20.0s-seed0"  # names Optuna studies


def test_synthetic_default_is_generated_once_and_reused(tmp_path):
    import shutil

    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed")
    root = tmp_path / "cache" / "synthetic"
    params = {"tracks": 3, "seconds": 3.0, "seed": 0, "valid_tracks": 1, "test_tracks": 1}
    dm = MusdbDataModule(str(root), synthetic=params, seq_dur=1.0, num_workers=0)
    dm.prepare_data()
    mixture = next(root.glob("train/*/mixture.wav"))
    stamp = mixture.stat().st_mtime_ns
    MusdbDataModule(str(root), synthetic=params).prepare_data()
    assert mixture.stat().st_mtime_ns == stamp
    dm.setup()
    assert len(dm.train_set.tracks) == 1 and len(dm.val_set.tracks) == 1
    assert len(dm.test_set.tracks) == 1
