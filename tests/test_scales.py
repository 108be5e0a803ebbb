import numpy as np
import pytest

from xslicq.transform import SCALES, make_scale


@pytest.mark.parametrize("name", SCALES)
def test_centres_ascend_from_fmin_to_fmax(name):
    bins = 12 if name == "oct" else 50
    s = make_scale(name, 40.0, 16000.0, bins)
    assert np.all(np.diff(s.freqs) > 0)
    assert s.freqs[0] == pytest.approx(40.0)
    if name != "oct":
        assert len(s) == bins
        assert s.freqs[-1] == pytest.approx(16000.0)
    assert np.all(s.bandwidths > 0) and np.all(np.diff(s.bandwidths) >= 0)


@pytest.mark.parametrize("name", ["cqlog", "oct"])
def test_log_scales_have_constant_q(name):
    s = make_scale(name, 55.0, 7040.0, 12 if name == "oct" else 85)
    np.testing.assert_allclose(s.q, s.q[0], rtol=1e-12)


def test_oct_has_bins_per_octave():
    s = make_scale("oct", 55.0, 880.0, 12)  # 4 octaves -> 49 centres
    assert len(s) == 49
    np.testing.assert_allclose(s.freqs[::12], [55.0, 110.0, 220.0, 440.0, 880.0])
    # bandwidth spans the two neighbours: f (2^(1/12) - 2^(-1/12))
    np.testing.assert_allclose(s.q, 1.0 / (2 ** (1 / 12) - 2 ** (-1 / 12)))


def test_cqlog_known_centres():
    s = make_scale("cqlog", 100.0, 1600.0, 5)  # one bin every octave
    np.testing.assert_allclose(s.freqs, [100, 200, 400, 800, 1600])
    np.testing.assert_allclose(s.bandwidths, s.freqs * (2 - 0.5))


def test_vqlog_adds_gamma_to_constant_q_bandwidth():
    cq = make_scale("cqlog", 32.9, 22050.0, 100)
    vq = make_scale("vqlog", 32.9, 22050.0, 100, gamma=30.0)
    np.testing.assert_allclose(vq.freqs, cq.freqs)
    np.testing.assert_allclose(vq.bandwidths, cq.bandwidths + 30.0)
    assert np.all(np.diff(vq.q) > 0)  # Q falls towards low frequencies


def test_mel_and_bark_are_uniform_on_their_axes():
    mel = make_scale("mel", 20.0, 8000.0, 40)
    m = 2595.0 * np.log10(1 + mel.freqs / 700.0)
    np.testing.assert_allclose(np.diff(m), np.diff(m)[0], rtol=1e-9)
    bark = make_scale("bark", 20.0, 8000.0, 40)
    z = 7.0 * np.arcsinh(bark.freqs / 650.0)
    np.testing.assert_allclose(np.diff(z), np.diff(z)[0], rtol=1e-9)


def test_single_bin():
    s = make_scale("cqlog", 100.0, 400.0, 1)
    np.testing.assert_allclose(s.freqs, [100.0])
    np.testing.assert_allclose(s.bandwidths, [400.0 - 25.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="cqlog", fmin=500.0, fmax=100.0, bins=10), "fmin must be below fmax"),
        (dict(name="cqlog", fmin=100.0, fmax=100.0, bins=10), "fmin must be below fmax"),
        (dict(name="mel", fmin=0.0, fmax=100.0, bins=10), "fmin must be a positive"),
        (dict(name="bark", fmin=20.0, fmax=100.0, bins=0), "bins must be a positive integer"),
        (dict(name="oct", fmin=20.0, fmax=100.0, bins=2.5), "bins must be a positive integer"),
        (dict(name="vqlog", fmin=20.0, fmax=100.0, bins=4, gamma=-1.0), "gamma must be"),
        (dict(name="erb", fmin=20.0, fmax=100.0, bins=4), "unknown frequency scale 'erb'"),
    ],
)
def test_bad_scale_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_scale(**kwargs)
