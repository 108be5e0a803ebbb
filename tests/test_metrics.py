"""Evaluation metrics: global SDR, median frame SDR and the running SDRMetric."""
import math

import numpy as np
import pytest
import torch

from xslicq.metrics import METRICS, SDRMetric, median_frame_sdr, sdr_db

SR = 8000
EPS = 1e-8


def rng_noise(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def with_snr(ref, snr_db, seed=1):
    n = rng_noise(*ref.shape, seed=seed)
    ratio = np.square(ref).sum(axis=(-2, -1), keepdims=True) / np.square(n).sum(
        axis=(-2, -1), keepdims=True)
    return ref + n * np.sqrt(ratio / 10 ** (snr_db / 10))


def test_sdr_db_known_answers_numpy_and_torch():
    ref = rng_noise(4, 2, SR)
    est = with_snr(ref, 12.0)
    got = sdr_db(est, ref)
    assert got.shape == (4,) and got.dtype == np.float64
    assert np.abs(got - 12.0).max() < 0.01
    got_t = sdr_db(torch.from_numpy(est).float(), torch.from_numpy(ref).float())
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float64
    assert np.abs(got_t.numpy() - got).max() < 1e-4
    assert np.all(sdr_db(np.zeros_like(ref), ref) == 0)
    perfect = sdr_db(ref, ref)
    np.testing.assert_allclose(perfect, 10 * np.log10((np.square(ref).sum((1, 2)) + EPS) / EPS))


def test_sdr_db_errors():
    with pytest.raises(ValueError, match=r"\(2, 4, 2, 100\).*\(2, 3, 2, 100\)"):
        sdr_db(np.zeros((2, 4, 2, 100)), np.zeros((2, 3, 2, 100)))
    with pytest.raises(ValueError, match="both be numpy arrays or both torch"):
        sdr_db(torch.zeros(2, 10), np.zeros((2, 10)))


def test_median_frame_sdr_of_identical_signals_is_large():
    ref = 0.3 * rng_noise(4, 2, 5 * SR)
    got = median_frame_sdr(ref.copy(), ref, SR)
    assert got.shape == (4,) and np.all(got > 100)


def test_median_frame_sdr_is_the_median_of_frame_snrs():
    ref = rng_noise(2, 2, 5 * SR + 123)             # the partial last frame is dropped
    frames = [with_snr(ref[:, :, i * SR:(i + 1) * SR], snr, seed=i)
              for i, snr in enumerate([3.0, 20.0, 7.0, 11.0, 15.0])]
    est = np.concatenate(frames + [np.zeros((2, 2, 123))], axis=-1)
    got = median_frame_sdr(est, ref, SR)
    assert np.abs(got - 11.0).max() < 0.01
    # torch input is accepted too
    got_t = median_frame_sdr(torch.from_numpy(est), torch.from_numpy(ref), SR)
    np.testing.assert_allclose(got_t, got)


def test_median_frame_sdr_skips_silent_reference_frames():
    ref = rng_noise(2, 2, 6 * SR)
    ref[:, :, :3 * SR] = 0                          # silent first half
    est = with_snr(ref, 10.0)
    est[:, :, :3 * SR] = rng_noise(2, 2, 3 * SR, seed=4)   # terrible, but not scored
    got = median_frame_sdr(est, ref, SR)
    expected = [np.median([sdr_db(est[j, :, f * SR:(f + 1) * SR], ref[j, :, f * SR:(f + 1) * SR])
                           for f in range(3, 6)]) for j in range(2)]
    np.testing.assert_allclose(got, expected)
    assert np.all(got > 5)
    # a reference silent throughout scores nan, the other target is unaffected
    ref[1] = 0
    got = median_frame_sdr(est, ref, SR)
    assert math.isnan(got[1]) and not math.isnan(got[0])


def test_median_frame_sdr_short_signal_and_errors():
    ref = rng_noise(1, 2, SR // 2)                  # shorter than one frame: one frame
    est = with_snr(ref, 4.0)
    assert abs(median_frame_sdr(est, ref, SR)[0] - 4.0) < 0.01
    with pytest.raises(ValueError, match=r"\(targets, channels, samples\)"):
        median_frame_sdr(np.zeros((1, 1, 2, 10)), np.zeros((1, 1, 2, 10)), SR)
    with pytest.raises(ValueError, match=r"\(1, 2, 10\).*\(2, 2, 10\)"):
        median_frame_sdr(np.zeros((1, 2, 10)), np.zeros((2, 2, 10)), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        median_frame_sdr(np.zeros((1, 2, 10)), np.zeros((1, 2, 10)), 0)


def test_sdr_metric_accumulates_a_mean_over_updates():
    m = SDRMetric(target_names=["vocals", "drums", "bass", "other"])
    ref1, ref2 = rng_noise(2, 4, 2, 1000, seed=1), rng_noise(3, 4, 2, 1000, seed=2)
    snr1 = np.array([1.0, 2.0, 3.0, 4.0])
    snr2 = np.array([5.0, 6.0, 7.0, 8.0])
    est1 = np.stack([np.stack([with_snr(ref1[b, j][None], snr1[j], seed=10 * b + j)[0]
                               for j in range(4)]) for b in range(2)])
    est2 = np.stack([np.stack([with_snr(ref2[b, j][None], snr2[j], seed=50 + 10 * b + j)[0]
                               for j in range(4)]) for b in range(3)])
    first = m.update(torch.from_numpy(est1).float(), torch.from_numpy(ref1).float())
    assert first.shape == (2, 4)
    m.update(est2, ref2)                            # numpy works too
    assert m.count == 5
    per_target, mean = m.compute()
    expected = (2 * snr1 + 3 * snr2) / 5
    assert per_target.shape == (4,) and per_target.dtype == torch.float64
    assert np.abs(per_target.numpy() - expected).max() < 0.01
    assert abs(float(mean) - expected.mean()) < 0.01
    d = m.as_dict()
    assert set(d) == {"sdr", "sdr/vocals", "sdr/drums", "sdr/bass", "sdr/other"}
    assert abs(d["sdr/bass"] - expected[2]) < 0.01
    m.reset()
    with pytest.raises(RuntimeError, match="before any update"):
        m.compute()


def test_sdr_metric_errors():
    m = SDRMetric()
    with pytest.raises(ValueError, match=r"\(batch, targets, channels, samples\)"):
        m.update(torch.zeros(4, 2, 10), torch.zeros(4, 2, 10))
    m.update(torch.ones(1, 4, 2, 10), torch.ones(1, 4, 2, 10))
    with pytest.raises(ValueError, match="3 targets after updates with 4"):
        m.update(torch.ones(1, 3, 2, 10), torch.ones(1, 3, 2, 10))
    with pytest.raises(ValueError, match="target_names"):
        SDRMetric(target_names=["a"]).update(torch.ones(1, 2, 1, 5), torch.ones(1, 2, 1, 5))


def test_metric_registry():
    assert METRICS["sdr"] is sdr_db and METRICS["median_frame_sdr"] is median_frame_sdr
