"""Dataset discovery, errors, training/evaluation items, sampler, the DataModule, its config
checks and the data source that presets keep.

Uses small hand-made MUSDB18-HQ-layout folders (tones and noise written with soundfile),
so it needs no download; the tests that render a tiny synthetic set need fluidsynth and a
General MIDI SoundFont (skipped without them).
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from xslicq.data import SOURCES
from xslicq.data.checks import DataConfigError
from xslicq.data.datamodule import MusdbDataModule
from xslicq.data.datasets import EpochSampler, EvalDataset, TrainDataset
from xslicq.data.tracks import (
    SYNTHETIC_MANIFEST,
    SYNTHETIC_PROGRESS,
    DatasetError,
    find_tracks,
    load_track,
    musdb_validation_tracks,
)

from helpers import CONF, SR, compose_config, make_dataset, needs_fluidsynth, write_tone_track


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


def test_an_epoch_that_cannot_fill_one_batch_per_process_is_refused(dataset):
    """12 excerpts (3 training tracks x 4) and batches of 8: one batch alone, none per
    process when two DDP processes share the epoch (the loader drops incomplete batches)."""
    import types

    from xslicq.data.checks import DataConfigError

    dm = MusdbDataModule(str(dataset), seq_dur=1.0, samples_per_track=4, batch_size=8)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataloader()) == 1
    dm.trainer = types.SimpleNamespace(world_size=2)
    with pytest.raises(DataConfigError, match=r"12 training excerpts .* 6 per process with 2 "):
        dm.train_dataloader()


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


def test_missing_musdb_root_is_one_clear_error_and_creates_nothing(tmp_path):
    root = tmp_path / "not" / "there"
    dm = MusdbDataModule(str(root))
    for step in (dm.prepare_data, lambda: dm.setup("fit")):
        with pytest.raises(
            DatasetError,
            match=f"data.root={root} does not exist: set data.root to your MUSDB18-HQ folder.*"
            "or use data=synthetic",
        ):
            step()
    assert list(tmp_path.iterdir()) == []


MUSDB_RECIPES = {"musdb_xumx_matrix", "xumx_slicq_v2"}  # experiment/ recipes on the real set
# every preset that may be combined with a data choice
PRESETS = [
    (group, p.stem)
    for group in ("debug", "experiment")
    for p in sorted((CONF / group).glob("*.yaml"))
]


@pytest.mark.parametrize("group, option", PRESETS)
def test_presets_keep_the_chosen_data_source(group, option, tmp_path):
    """``data=musdb data.root=X <preset>`` stays MUSDB18-HQ at X: nothing generated into X,
    and a missing X is the clear error (nothing created)."""
    root = tmp_path / "MUSDB18-HQ"
    cfg = compose_config(
        "train",
        ["data=musdb", f"data.root={root}", f"{group}={option}", f"paths.data_dir={tmp_path}"],
        return_hydra_config=True,
    )
    assert cfg.hydra.runtime.choices.data == "musdb"
    assert cfg.data.synthetic is None and cfg.data.root == str(root)
    dm = instantiate(cfg.data)
    with pytest.raises(DatasetError, match=f"data.root={root} does not exist"):
        dm.prepare_data()
    assert list(tmp_path.iterdir()) == []
    # without a data= choice, a preset may pick a synthetic set (a size, not a source); the
    # MUSDB18-HQ recipes choose data=musdb themselves and demand data.root
    cfg = compose_config("train", [f"{group}={option}", f"paths.data_dir={tmp_path}"])
    if option in MUSDB_RECIPES:
        assert cfg.data.synthetic is None and OmegaConf.is_missing(cfg.data, "root")
    else:
        assert cfg.data.synthetic is not None


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_that_is_not_a_synthetic_set_is_never_written_into(tmp_path, force):
    root = tmp_path / "MUSDB18-HQ"
    write_tone_track(root / "train" / "Artist - Song", 1.0)
    write_tone_track(root / "test" / "Other - Song", 1.0, seed=1)
    before = _snapshot(root)
    params = dict(tracks=2, seconds=2.0, valid_tracks=0, test_tracks=1, force=force)
    dm = MusdbDataModule(str(root), synthetic=params, seq_dur=1.0)
    with pytest.raises(
        DatasetError,
        match="is not a synthetic set made by xslicq.*use data=musdb data.root=",
    ):
        dm.prepare_data()
    assert _snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MUSDB18-HQ"]  # not even a lock
    from xslicq.data.synthetic import SyntheticSetExists, generate_dataset

    with pytest.raises(SyntheticSetExists, match="not a set made by this generator"):
        generate_dataset(root, progress=False, **params)
    assert _snapshot(root) == before


@needs_fluidsynth
def test_an_interrupted_synthetic_render_is_resumed_identically(tmp_path, monkeypatch, caplog):
    """Ctrl-C in the middle of the first render (here: while the second track's second file
    is written) leaves a set that the next run finishes, with a log line, into the bytes of
    an uninterrupted render."""
    import xslicq.data.synthetic.dataset as generator

    params = dict(tracks=2, seconds=2.0, seed=0, valid_tracks=1, test_tracks=0, workers=1)
    reference = tmp_path / "reference"
    generator.generate_dataset(reference, progress=False, **params)

    root = tmp_path / "cache" / "synthetic"
    write = generator.write_float_wav
    calls = []

    def interrupted_write(path, audio, sample_rate):
        calls.append(path)
        if len(calls) == 7:  # track 1 is written, track 2 has one file and half of another
            Path(str(path) + ".tmp").write_bytes(b"RIFF half a file")
            raise KeyboardInterrupt
        write(path, audio, sample_rate)

    monkeypatch.setattr(generator, "write_float_wav", interrupted_write)
    dm = MusdbDataModule(str(root), synthetic=dict(params, progress=False), seq_dur=1.0)
    with pytest.raises(KeyboardInterrupt):
        dm.prepare_data()
    assert (root / SYNTHETIC_PROGRESS).is_file() and not (root / SYNTHETIC_MANIFEST).exists()
    with pytest.raises(DatasetError, match="render was interrupted"):
        dm.setup("fit")  # not mistaken for a finished set

    monkeypatch.setattr(generator, "write_float_wav", write)
    caplog.set_level(logging.WARNING, logger=generator.__name__)
    dm.prepare_data()
    assert "interrupted render of this synthetic set (1 of 2 tracks finished)" in caplog.text
    assert _snapshot(root) == _snapshot(reference)  # byte-identical, nothing left over
    dm.setup("fit")
    assert len(dm.train_set.tracks) == 1 and len(dm.val_set.tracks) == 1
    # a finished set of other parameters is refused with what to do about it
    other = MusdbDataModule(str(root), synthetic=dict(params, seed=1), seq_dur=1.0)
    with pytest.raises(
        DatasetError,
        match=r"does not match data.synthetic \(other parameters: seed 0 != 1\).*"
        r"\+data.synthetic.force=true",
    ):
        other.prepare_data()
    assert _snapshot(root) == _snapshot(reference)


def test_validation_tracks_of_different_lengths_batch_without_padding(tmp_path, caplog):
    """Validation excerpts are cropped to the shortest validation track: they stack, and the
    SDR of a batch is the one of each excerpt scored alone, read straight from its files."""
    from xslicq.metrics import sdr_db

    root = tmp_path / "ds"
    lengths = {"long": 3.0, "short": 1.5, "mid": 2.5}
    for i, (name, seconds) in enumerate(lengths.items()):
        write_tone_track(root / "train" / name, seconds, seed=i)
    write_tone_track(root / "train" / "fit", 3.0, seed=5)
    write_tone_track(root / "test" / "t", 1.0, seed=6)
    split = {"train": ["fit"], "valid": sorted(lengths), "test": ["t"]}
    (root / SYNTHETIC_MANIFEST).write_text(json.dumps({"split": split}))
    dm = MusdbDataModule(
        str(root), seq_dur=1.0, val_seq_dur=2.0, val_chunks=2, batch_size=4, num_workers=0
    )
    with caplog.at_level(logging.WARNING, logger="xslicq.data.datasets"):
        dm.setup("validate")
    assert "cropped from 2 s to 1.50 s" in caplog.text and "short" in caplog.text
    frames = int(1.5 * SR)
    batches = list(dm.val_dataloader())
    assert [b[0].shape for b in batches] == [(4, 2, frames), (1, 2, frames)]
    mixture = torch.cat([b[0] for b in batches])
    targets = torch.cat([b[1] for b in batches])

    def estimate(mix, refs):  # a stand-in separator: deterministic, imperfect
        return 0.8 * refs + 0.05 * mix.unsqueeze(-3)

    batched = torch.cat([sdr_db(estimate(m, t), t) for m, t in batches])  # (items, sources)

    def excerpt(name, stem, start):
        path = root / "train" / name / f"{stem}.wav"
        audio = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)[0]
        return torch.from_numpy(audio.T.copy())

    # the same excerpts, one by one from the files: 2 evenly spaced per track (1 for the
    # shortest, whose 2 coincide), in the order of the track names
    alone = [
        (name, start)
        for name in sorted(lengths)
        for start in sorted(
            {int(s) for s in np.linspace(0, int(lengths[name] * SR) - frames, 4)[1:-1]}
        )
    ]
    assert len(alone) == len(batched) == 5
    for k, (name, start) in enumerate(alone):
        mix = excerpt(name, "mixture", start)
        refs = torch.stack([excerpt(name, s, start) for s in SOURCES])
        torch.testing.assert_close(mixture[k], mix, rtol=0, atol=0)  # real audio, no padding
        torch.testing.assert_close(targets[k], refs, rtol=0, atol=0)
        sdr = sdr_db(estimate(mix[None], refs[None]), refs[None])[0]
        torch.testing.assert_close(batched[k], sdr, rtol=1e-12, atol=1e-12)


BAD_VALUES = [
    (dict(val_seq_dur=0), "data.val_seq_dur must be positive or null, got 0"),
    (dict(val_seq_dur=-2.0), "data.val_seq_dur must be positive or null, got -2.0"),
    (dict(val_chunks=0), "data.val_chunks must be an integer >= 1, got 0"),
    (dict(val_chunks=1.5), "data.val_chunks must be an integer >= 1, got 1.5"),
    (dict(batch_size=0), "data.batch_size must be an integer >= 1, got 0"),
    (dict(num_workers=-1), "data.num_workers must be an integer >= 0, got -1"),
    (dict(seq_dur=0), "data.seq_dur must be a positive number, got 0"),
    (dict(seq_dur=float("nan")), "data.seq_dur must be a positive number, got nan"),
    (dict(samples_per_track=0), "data.samples_per_track must be an integer >= 1, got 0"),
    (dict(gain=[1.5, 0.5]), r"data.gain must be a range \[low, high\] with 0 <= low <= high"),
    (dict(gain=[-1, 1]), r"data.gain must be a range .* got \[-1, 1\]"),
    (dict(sample_rate=0), "data.sample_rate must be an integer >= 1, got 0"),
    (dict(sample_rate=44100.0), "data.sample_rate must be an integer >= 1, got 44100.0"),
    (dict(targets=[]), "data.targets must be a non-empty list of sources"),
    (dict(targets="vocals"), r"data.targets must be a non-empty list .*data.targets=\[vocals\]"),
    (dict(targets=["vocals", "piano"]), r"unknown target names \['piano'\] in data.targets"),
    (dict(targets=["bass", "bass"]), "data.targets names a source twice"),
    (dict(loader="fast"), "unknown data.loader 'fast'; choose one of default, dali"),
    (dict(silence_db=6.0), r"data.silence_db must be a level in dBFS \(a number <= 0\)"),
    (dict(random_mix="yes"), "data.random_mix must be true or false, got 'yes'"),
    (dict(pin_memory=None), "data.pin_memory must be true or false, got None"),
    (dict(seed=-1), "data.seed must be an integer >= 0, got -1"),
    (dict(root=""), "data.root is not set"),
    (dict(synthetic=dict(tracks=0, seconds=4.0)), "data.synthetic.tracks must be >= 1, got 0"),
    (dict(synthetic=dict(tracks=3, seconds=1.0)), "data.synthetic.seconds must be >= 2"),
    (dict(synthetic=dict(tracks=3)), "data.synthetic.seconds is not set"),
    (dict(synthetic=dict(tracks=3, seconds=4.0, colour=1)), "unknown key data.synthetic.colour"),
    (
        dict(synthetic=dict(tracks=3, seconds=4.0), seq_dur=5.0),
        r"data.seq_dur=5 s is longer than the synthetic tracks \(data.synthetic.seconds=4\)",
    ),
    (
        dict(synthetic=dict(tracks=3, seconds=4.0), sample_rate=4000),
        "data.sample_rate must be between 8000 and 96000 Hz for a synthetic set, got 4000",
    ),
]


@pytest.mark.parametrize("kwargs, match", BAD_VALUES)
def test_bad_data_values_name_their_key(kwargs, match, tmp_path):
    args = dict(root=str(tmp_path / "ds")) | kwargs
    with pytest.raises(DataConfigError, match=match):
        MusdbDataModule(**args)
    assert list(tmp_path.iterdir()) == []  # checked before any work


def test_bad_values_from_the_command_line_name_their_key(tmp_path):
    cfg = compose_config("train", ["data=musdb", f"data.root={tmp_path}", "data.val_chunks=0"])
    with pytest.raises(Exception, match="data.val_chunks must be an integer >= 1, got 0"):
        instantiate(cfg.data)


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
