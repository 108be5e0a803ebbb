"""The transform search space: every point a valid transform or a clear reason, the
Pareto front, and the tuned config."""

import math

import numpy as np
import pytest
import yaml
from hydra.utils import instantiate

from xslicq.search import InvalidTransform, SearchPoint, pareto_front, transform_config, tuned_yaml
from xslicq.transform import SCALES, SliCQT
from xslicq.transform.frames import fft_friendly_sllen

SR = 44100
SEGMENT = 88200  # a 2 s training segment


@pytest.mark.parametrize("scale", SCALES)
def test_position_zero_is_the_suggested_slice_and_one_a_segment(scale):
    bins = 262
    low = transform_config(SearchPoint(scale=scale, bins=bins, fmin=40.0, sllen=0.0), SR, SEGMENT)
    high = transform_config(SearchPoint(scale=scale, bins=bins, fmin=40.0, sllen=1.0), SR, SEGMENT)
    reference = SliCQT(scale=scale, bins=low["bins"], fmin=40.0, fmax=22050.0, sample_rate=SR)
    assert low["sllen"] == reference.sllen
    assert high["sllen"] == SEGMENT  # 88200 = 2^3 3^2 5^2 7^2 is FFT-friendly
    mid = transform_config(SearchPoint(scale=scale, bins=bins, fmin=40.0, sllen=0.5), SR, SEGMENT)
    assert low["sllen"] < mid["sllen"] < high["sllen"]
    assert fft_friendly_sllen(mid["sllen"]) == mid["sllen"]
    # the geometric middle, up to rounding to an FFT-friendly length
    assert mid["sllen"] == pytest.approx(math.sqrt(low["sllen"] * SEGMENT), rel=0.05)


def test_every_point_builds_an_exact_transform():
    """Random points of the whole space all build a transform with an exact inverse."""
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).standard_normal((1, 1, 30000))
    built = invalid = 0
    for _ in range(12):
        point = SearchPoint(
            scale=str(rng.choice(SCALES)),
            bins=int(np.exp(rng.uniform(np.log(32), np.log(1024)))),
            fmin=float(np.exp(rng.uniform(np.log(10), np.log(130)))),
            fmax=float(rng.uniform(8000, 22050)),
            sllen=float(rng.uniform()),
            trlen=float(rng.uniform(0.05, 0.45)),
            gamma=float(rng.uniform(0, 100)),
        )
        try:
            cfg = transform_config(point, SR, SEGMENT)
        except InvalidTransform:
            invalid += 1
            continue
        cfg["backend"] = "numpy"
        t = instantiate(cfg)
        assert t.sllen <= SEGMENT and t.sllen > 2 * t.trlen and t.trlen % 2 == 0
        assert t.trlen == pytest.approx(point.trlen * t.sllen, abs=2)
        y = t.inverse(t.forward(x), length=x.shape[-1])
        assert np.linalg.norm(y - x) / np.linalg.norm(x) < 1e-10
        built += 1
    assert (built, invalid) == (12, 0)


def test_oct_counts_bins_over_the_band():
    """For oct the search's bins are spread over the band: 9 octaves, 216 bins -> 24 per
    octave; the other scales take bins as they are."""
    cfg = transform_config(SearchPoint(scale="oct", bins=216, fmin=40.0, fmax=20480.0), SR, SEGMENT)
    assert cfg["bins"] == 24
    assert transform_config(SearchPoint(scale="bark", bins=240), SR, SEGMENT)["bins"] == 240


def test_bins_are_capped_to_fit_the_longest_slice():
    """1024 cqlog bins from 10 Hz need slices far longer than a segment: the point gets the
    most bins whose suggested slice still fits, so every sampled point can be built."""
    cfg = transform_config(SearchPoint(scale="cqlog", bins=1024, fmin=10.0, sllen=0.0), SR, SEGMENT)
    assert 50 < cfg["bins"] < 1024 and cfg["sllen"] <= SEGMENT
    assert SliCQT(scale="cqlog", bins=cfg["bins"], fmin=10.0, sample_rate=SR).sllen <= SEGMENT
    assert SliCQT(scale="cqlog", bins=cfg["bins"] + 1, fmin=10.0, sample_rate=SR).sllen > SEGMENT
    small = transform_config(SearchPoint(scale="cqlog", bins=48, fmin=10.0), SR, SEGMENT)
    assert small["bins"] == 48  # no cap where it fits


def test_impossible_points_name_the_reason():
    with pytest.raises(InvalidTransform, match="unknown scale 'erb'"):
        transform_config(SearchPoint(scale="erb"), SR, SEGMENT)
    with pytest.raises(InvalidTransform, match=r"need 0 < fmin < fmax <= 22050 Hz"):
        transform_config(SearchPoint(fmax=30000.0), SR, SEGMENT)
    with pytest.raises(InvalidTransform, match=r"sllen is a position in \[0, 1\]"):
        transform_config(SearchPoint(sllen=1.5), SR, SEGMENT)
    with pytest.raises(InvalidTransform, match=r"trlen is a fraction of the slice in \(0, 0.5\)"):
        transform_config(SearchPoint(trlen=0.5), SR, SEGMENT)


def test_pareto_front_known_answer():
    points = [(9.0, 100.0), (8.0, 50.0), (8.5, 120.0), (9.5, 200.0), (7.0, 50.0), (9.0, 100.0)]
    # (8.5, 120) is dominated by (9.0, 100); (7.0, 50) by (8.0, 50); equal points both stay
    assert pareto_front(points, ["maximize", "minimize"]) == [0, 1, 3, 5]
    assert pareto_front(points, ["maximize", "maximize"]) == [3]


def test_tuned_yaml_rebuilds_the_same_transform():
    cfg = transform_config(
        SearchPoint(
            scale="vqlog", bins=300, fmin=31.7, fmax=21000.3, sllen=0.37, trlen=0.2, gamma=12.345
        ),
        SR,
        SEGMENT,
    )
    text = tuned_yaml(cfg, ["chosen by the search", "", "mixphase oracle 9.1 dB"])
    assert text.startswith("# chosen by the search\n#\n# mixphase oracle 9.1 dB\n")
    loaded = yaml.safe_load(text)
    assert loaded == cfg
    a, b = instantiate(loaded), instantiate(cfg)
    assert a.block_shapes == b.block_shapes and np.array_equal(a.freqs, b.freqs)


def test_trial_result_reports_values_and_details():
    from omegaconf import OmegaConf

    from xslicq.evaluation import EvaluationError
    from xslicq.oracle import trial_result

    cfg = OmegaConf.create(transform_config(SearchPoint(scale="bark", bins=64), SR, SEGMENT))
    t = instantiate(cfg)
    summaries = {
        k: {"mean": {"SDR": v}, "per_target": {"vocals": {"SDR": v + 1}}}
        for k, v in (("mixphase", 9.0), ("irm", 8.0))
    }
    result = trial_result(summaries, t, cfg, ["mixphase", "coefs_per_second"])
    assert result["values"] == [9.0, t.coefs_per_second]
    assert result["attrs"]["sdr"] == {
        "mixphase": {"mean": 9.0, "vocals": 10.0},
        "irm": {"mean": 8.0, "vocals": 9.0},
    }
    assert result["attrs"]["transform"]["bins"] == 64
    with pytest.raises(EvaluationError, match=r"unknown objectives \['sisdr'\]"):
        trial_result(summaries, t, cfg, ["sisdr"])
    with pytest.raises(
        EvaluationError, match=r"objectives \['irm'\] are oracles that were not run"
    ):
        trial_result({"mixphase": summaries["mixphase"]}, t, cfg, ["irm"])
