"""Spectrogram pictures of ragged and matrix coefficients."""

import numpy as np
import pytest
import torch

from xslicq import signals
from xslicq.plotting import frequency_ticks, image_to_rgb, slicq_image, spectrogram_figure
from xslicq.transform import RaggedToMatrix

from helpers import SR, transform


@pytest.fixture(scope="module")
def song():
    t = transform("cqlog")
    audio = signals.music_like(3.0, SR, 2, seed=2)
    return t, audio, t(torch.from_numpy(audio).float()[None])


def test_ragged_and_matrix_images_agree(song):
    t, audio, c = song
    ragged, times = slicq_image(t, c, audio.shape[-1], width=300)
    assert ragged.shape == (t.nb_bins, 300) and times.shape == (300,)
    assert times[0] > 0 and times[-1] < 3.0
    matrix, _ = slicq_image(t, RaggedToMatrix(t)(c), audio.shape[-1], width=300)
    loud = ragged > ragged.max() - 60
    assert np.median(np.abs(ragged - matrix)[loud]) < 1.0  # dB


def test_sinusoid_is_a_bright_line_in_its_row():
    t = transform("mel")
    x = signals.sinusoid(SR, 2000.0, SR, channels=1)[None]
    image, _ = slicq_image(t, t(torch.from_numpy(x)), SR, width=50)
    row = int(np.argmin(np.abs(t.freqs - 2000.0)))
    assert np.all(np.argmax(image[:, 10:40], axis=0) == row)


def test_hz_ticks_sit_on_their_rows(song):
    t, _, _ = song
    pos, labels = frequency_ticks(t.freqs)
    assert labels[0] == "50" and labels[-1] == "20k"
    k = labels.index("1k")
    assert t.freqs[int(np.floor(pos[k]))] <= 1000 <= t.freqs[int(np.ceil(pos[k]))]


def test_rgb_array_for_tensorboard(song):
    from matplotlib import colormaps

    t, audio, c = song
    image, _ = slicq_image(t, c, audio.shape[-1], width=64)
    rgb = image_to_rgb(image)
    assert rgb.shape == (3, t.nb_bins, 64) and rgb.dtype == np.uint8
    # known answer: the lowest row loudest, 80 dB below elsewhere -> bottom row brightest
    image = np.full((4, 3), -100.0)
    image[0] = -20.0
    rgb = image_to_rgb(image, dynamic_range_db=80.0)
    top, bottom = (np.round(255 * np.array(colormaps["magma"](v)[:3])) for v in (1.0, 0.0))
    np.testing.assert_array_equal(rgb[:, 3, 0], top)
    np.testing.assert_array_equal(rgb[:, 0, 0], bottom)


def test_figure_and_bad_rows(song, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    t, audio, c = song
    fig = spectrogram_figure(t, c, audio.shape[-1], audio=audio)
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "s.png")
    with pytest.raises(ValueError, match=f"expected coefficients with {t.nb_bins} rows, got"):
        slicq_image(t, c[:-1], audio.shape[-1])
