"""Training-time metrics: the global SDR of xslicq.metrics."""

import numpy as np
import pytest
import torch

import xslicq.metrics
from xslicq.metrics import sdr_db

SR = 8000
EPS = 1e-8


def rng_noise(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def with_snr(ref, snr_db, seed=1):
    n = rng_noise(*ref.shape, seed=seed)
    ratio = np.square(ref).sum(axis=(-2, -1), keepdims=True) / np.square(n).sum(
        axis=(-2, -1), keepdims=True
    )
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
    perfect = sdr_db(ref, ref)  # the ceiling, not 10 log10((||ref||^2 + eps) / eps) = 122 dB
    assert perfect.tolist() == [100.0] * 4


def test_sdr_db_of_a_batch_is_per_item_and_target():
    """(batch, targets, channels, samples) -> (batch, targets), each at its own SNR."""
    ref = rng_noise(3, 2, 2, SR, seed=5)
    snrs = np.array([[1.0, 6.0], [11.0, 16.0], [21.0, 26.0]])
    est = np.stack(
        [
            np.stack([with_snr(ref[b, j], snrs[b, j], seed=10 * b + j) for j in range(2)])
            for b in range(3)
        ]
    )
    got = sdr_db(torch.from_numpy(est), torch.from_numpy(ref))
    assert tuple(got.shape) == (3, 2)
    assert np.abs(got.numpy() - snrs).max() < 0.01


def test_sdr_db_errors():
    with pytest.raises(ValueError, match=r"\(2, 4, 2, 100\).*\(2, 3, 2, 100\)"):
        sdr_db(np.zeros((2, 4, 2, 100)), np.zeros((2, 3, 2, 100)))
    with pytest.raises(ValueError, match="both be numpy arrays or both torch"):
        sdr_db(torch.zeros(2, 10), np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"at least 2 axes .*got shape \(100,\)"):
        sdr_db(np.zeros(100), np.zeros(100))


def test_only_the_training_metrics_remain():
    """The BSSEval metrics live in xslicq.evaluation; no second METRICS registry here."""
    assert xslicq.metrics.__all__ == ["sdr_db"]
    assert not hasattr(xslicq.metrics, "METRICS")
