"""Oracle masks of a transform: known answers for the IRM and the mixture-phase oracle."""

import math

import numpy as np
import pytest

from xslicq.data import SOURCES
from xslicq.data.tracks import find_tracks
from xslicq.evaluation import EvaluationError, evaluate
from xslicq.oracle import oracle_estimates, oracle_scores, run_oracles
from xslicq.signals import music_like
from xslicq.transform import STFT, SliCQT

from helpers import SR, run_module, write_musdb_track

SECONDS = 3.0

TRANSFORMS = {
    "cqlog": lambda: SliCQT("cqlog", bins=24, fmin=65.4, fmax=22050.0, sample_rate=SR),
    "stft": lambda: STFT(n_fft=4096, hop_length=1024, sample_rate=SR),
}


@pytest.fixture(scope="module")
def lone_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("lone")
    write_musdb_track(root / "test" / "lone", {"vocals": 0.8 * music_like(SECONDS, seed=2)})
    return find_tracks(root, "test")


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    write_musdb_track(
        root / "test" / "two",
        {
            "vocals": 0.5 * music_like(SECONDS, seed=1, tempo=97),
            "bass": 0.5 * music_like(SECONDS, seed=7, tempo=83),
        },
    )
    return find_tracks(root, "test")


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_lone_source_is_reconstructed(name, lone_source):
    """With one non-silent source, both oracles give that source back (> 60 dB); the
    silent targets are not scored."""
    summaries = run_oracles(
        TRANSFORMS[name](), lone_source, ["irm", "mixphase"], metric="fast_bss_eval", workers=0
    )
    for kind in ("irm", "mixphase"):
        scores = summaries[kind]["per_target"]
        assert scores["vocals"]["SDR"] > 60, (kind, scores)
        assert all(math.isnan(scores[t]["SDR"]) for t in ("drums", "bass", "other"))
        assert summaries[kind]["mean"]["SDR"] == scores["vocals"]["SDR"]


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_irm_beats_the_mixture_as_estimate(name, two_sources, tmp_path):
    transform = TRANSFORMS[name]()
    targets = ["vocals", "bass"]
    irm = oracle_scores(
        transform, two_sources, "irm", metric="fast_bss_eval", workers=0, targets=targets
    )
    mixphase = oracle_scores(
        transform, two_sources, "mixphase", metric="fast_bss_eval", workers=0, targets=targets
    )
    mixture = evaluate(
        lambda audio, rate: {t: audio for t in targets},
        two_sources,
        tmp_path,
        metric="fast_bss_eval",
        workers=0,
        targets=targets,
    )
    for t in targets:
        base = mixture["per_target"][t]["SDR"]
        assert irm["per_target"][t]["SDR"] >= base + 3, (t, irm["per_target"], base)
        assert mixphase["per_target"][t]["SDR"] >= base, (t, mixphase["per_target"], base)


def test_oracle_estimates_shapes_and_linearity(two_sources):
    """IRM estimates sum to the mixture (the masks sum to one wherever it is not zero)."""
    from xslicq.data.tracks import read

    track = two_sources[0]
    mixture = read(track, "mixture")
    sources = {s: read(track, s) for s in SOURCES}
    est = oracle_estimates(TRANSFORMS["cqlog"](), mixture, sources, ["irm"], list(SOURCES))
    assert set(est) == {"irm"} and all(v.shape == mixture.shape for v in est["irm"].values())
    total = sum(est["irm"].values())
    assert np.max(np.abs(total - mixture)) < 1e-4


def test_oracle_writes_tables_and_checks_its_input(two_sources, tmp_path):
    summaries = run_oracles(
        TRANSFORMS["stft"](),
        two_sources,
        ["irm", "mixphase"],
        metric="fast_bss_eval",
        workers=2,
        targets=["vocals", "bass"],
        out_dir=tmp_path,
        name="STFT(4096/1024)",
    )
    assert set(summaries) == {"irm", "mixphase"}
    for kind in ("irm", "mixphase"):
        md = (tmp_path / kind / "summary.md").read_text()
        assert "| vocals |" in md and "**mean**" in md
        assert (tmp_path / kind / "summary.csv").read_text().startswith("target,SDR")
    table = (tmp_path / "summary.md").read_text()
    assert "| oracle | vocals | bass | mean |" in table and "| irm |" in table
    with pytest.raises(EvaluationError, match="unknown oracle"):
        oracle_scores(TRANSFORMS["stft"](), two_sources, "ibm")
    with pytest.raises(
        EvaluationError, match="unknown metric 'fast'; choose one of museval, sdr, fast_bss_eval"
    ):
        oracle_scores(TRANSFORMS["stft"](), two_sources, "irm", metric="fast")
    with pytest.raises(EvaluationError, match="transform.sample_rate=22050 differs"):
        oracle_scores(STFT(sample_rate=22050), two_sources, "irm", workers=0)


def test_oracle_cli(two_sources, tmp_path):
    root = two_sources[0].folder.parents[1]
    r = run_module("xslicq.oracle", "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    r = run_module(
        "xslicq.oracle",
        "transform=stft",
        "data=musdb",
        f"data.root={root}",
        "workers=0",
        "targets=[vocals,bass]",
        f"out={out}",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "| irm |" in r.stdout and "| mixphase |" in r.stdout
    assert (out / "irm" / "summary.md").exists() and (out / "summary.md").exists()
    r = run_module(
        "xslicq.oracle",
        "data=musdb",
        f"data.root={tmp_path / 'missing'}",
        f"out={tmp_path / 'out-missing'}",  # (out already holds the first run's results)
        timeout=120,
    )
    assert r.returncode != 0 and f"dataset folder {tmp_path / 'missing'} does not exist" in r.stderr


def test_a_multirun_writes_each_job_into_its_own_folder(two_sources, tmp_path):
    """``python -m xslicq.oracle -m transform=...`` (docs/research.md): the jobs share the
    default ``out``, so each writes its own job folder (the second job was refused: 'output
    folder ... exists and is not empty')."""
    root = two_sources[0].folder.parents[1]
    sweep = tmp_path / "sweep"
    r = run_module(
        "xslicq.oracle",
        "-m",
        "transform=stft,bark",
        "data=musdb",
        f"data.root={root}",
        "workers=0",
        "targets=[vocals,bass]",
        f"hydra.sweep.dir={sweep}",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    for job in ("0", "1"):
        assert (sweep / job / "summary.md").exists() and (sweep / job / "irm").is_dir()
