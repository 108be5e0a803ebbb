"""Pictures of sliCQT coefficients: log-magnitude images on a log-frequency axis.

Slices overlap by half: the power of every slice is weighted by the slice
window (sampled on the block's own time grid) and the overlaps are added, the
same overlap-add view as :meth:`RaggedToMatrix.overlap_add`. Every row is then
sampled on one common time grid.
"""

from __future__ import annotations

import numpy as np

from .transform.backend import to_numpy
from .transform.slicing import overlap_add, slice_window_at

HZ_TICKS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


def slicq_image(
    transform,
    coefs,
    length: int,
    width: int = 1000,
    item: int = 0,
    channel: int | None = None,
    floor_db: float = -100.0,
):
    """Log-magnitude image of sliCQT coefficients, ragged or in matrix form.

    Args:
        transform: the :class:`~xslicq.transform.SliCQT` that produced ``coefs``.
        coefs: ragged blocks ``(batch, channels, rows, slices, time)``, or one matrix
            ``(batch, channels, nb_bins, slices, T)`` from
            :class:`~xslicq.transform.RaggedToMatrix` (complex, or real magnitudes).
        length: signal length in samples (the image spans ``[0, length)``).
        width: number of time columns of the image.
        item: batch item to draw.
        channel: channel to draw; ``None`` averages the power over channels.
        floor_db: lowest value of the image in dB.

    Returns:
        (image, times): image (nb_bins, width) in dB, rows in ascending frequency;
        times (width,) column centres in seconds.
    """
    import array_api_compat.numpy as xp

    blocks = [coefs] if getattr(coefs, "ndim", None) == 5 else list(coefs)
    times = (np.arange(width) + 0.5) * length / width
    rows = []
    for blk in blocks:
        power = np.abs(to_numpy(blk[item])) ** 2  # (channels, rows, slices, M)
        power = power.mean(axis=0) if channel is None else power[channel]
        slices, m = power.shape[-2:]
        window = slice_window_at(
            np.arange(m) * transform.sllen / m, transform.sllen, transform.trlen
        )
        line = overlap_add(xp, power * window, m, slices * m // 2)  # from sample 0 on
        at = np.arange(line.shape[-1]) * transform.sllen / m
        rows.extend(np.interp(times, at, row) for row in line)
    if len(rows) != transform.nb_bins:
        raise ValueError(f"expected coefficients with {transform.nb_bins} rows, got {len(rows)}")
    image = 10.0 * np.log10(np.maximum(np.stack(rows), 10.0 ** (floor_db / 10.0)))
    return image, times / transform.sample_rate


def image_to_rgb(
    image: np.ndarray,
    dynamic_range_db: float = 80.0,
    cmap: str = "magma",
    top_db: float | None = None,
) -> np.ndarray:
    """A dB image (rows ascending in frequency) as a (3, rows, width) uint8 RGB array with
    low frequencies at the bottom, ready for TensorBoard's ``add_image``. ``top_db`` (default:
    the image's maximum) is the brightest level, to put several images on one scale."""
    from matplotlib import colormaps

    top = float(image.max()) if top_db is None else top_db
    scaled = np.clip((image - (top - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)
    rgb = colormaps[cmap](scaled[::-1])[..., :3]
    return (255 * rgb).round().astype(np.uint8).transpose(2, 0, 1)


def frequency_ticks(freqs: np.ndarray, ticks=HZ_TICKS):
    """(row positions, labels) of the Hz ticks that fall inside ``freqs`` (ascending)."""
    pos, labels = [], []
    for f in ticks:
        if freqs[1] <= f <= freqs[-1]:
            pos.append(float(np.interp(f, freqs, np.arange(len(freqs)))))
            labels.append(f"{f // 1000}k" if f >= 1000 else str(f))
    return pos, labels


def plot_slicq(
    transform,
    coefs,
    length: int,
    ax=None,
    title: str | None = None,
    dynamic_range_db: float = 80.0,
    **kwargs,
):
    """Draw a sliCQT spectrogram (rows on the frequency axis, Hz ticks) into ``ax``.

    Returns the matplotlib image.
    """
    import matplotlib.pyplot as plt

    image, times = slicq_image(transform, coefs, length, **kwargs)
    ax = plt.gca() if ax is None else ax
    top = float(image.max())
    im = ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=top - dynamic_range_db,
        vmax=top,
        extent=(0.0, length / transform.sample_rate, -0.5, image.shape[0] - 0.5),
    )
    pos, labels = frequency_ticks(transform.freqs)
    ax.set_yticks(pos, labels)
    ax.set_ylabel("frequency (Hz)")
    ax.set_xlabel("time (s)")
    ax.set_title(
        title or f"sliCQT {transform.scale_name}, {transform.nb_bins} rows, sllen {transform.sllen}"
    )
    return im


def plot_stft(
    signal: np.ndarray,
    sample_rate: int,
    ax=None,
    n_fft: int = 4096,
    hop: int = 1024,
    dynamic_range_db: float = 80.0,
    fmin: float = 20.0,
):
    """Draw an STFT spectrogram of a (channels, samples) signal on a log-frequency axis."""
    import matplotlib.pyplot as plt
    import torch

    x = torch.as_tensor(np.asarray(signal, dtype=np.float64))
    spec = torch.stft(
        x, n_fft, hop, window=torch.hann_window(n_fft, dtype=x.dtype), return_complex=True
    )
    power = (spec.abs() ** 2).mean(0).numpy() / n_fft
    image = 10.0 * np.log10(np.maximum(power, 1e-12))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ax = plt.gca() if ax is None else ax
    top = float(image.max())
    keep = freqs >= fmin
    im = ax.pcolormesh(
        np.arange(image.shape[1]) * hop / sample_rate,
        freqs[keep],
        image[keep],
        shading="auto",
        cmap="magma",
        vmin=top - dynamic_range_db,
        vmax=top,
    )
    ax.set_yscale("log")
    ticks = [f for f in HZ_TICKS if fmin <= f <= sample_rate / 2]
    ax.set_yticks(ticks, [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax.set_ylabel("frequency (Hz)")
    ax.set_xlabel("time (s)")
    ax.set_title(f"STFT, n_fft {n_fft}, hop {hop}")
    return im


def spectrogram_figure(
    transform, coefs, length: int, audio: np.ndarray | None = None, title: str | None = None
):
    """A matplotlib figure of sliCQT coefficients (ragged or matrix), with the STFT of
    ``audio`` (channels, samples) beside it when given."""
    import matplotlib.pyplot as plt

    panels = 1 if audio is None else 2
    fig, axes = plt.subplots(
        1, panels, figsize=(7 * panels, 5), constrained_layout=True, squeeze=False
    )
    plot_slicq(transform, coefs, length, ax=axes[0, 0], title=title)
    if audio is not None:
        plot_stft(audio, transform.sample_rate, ax=axes[0, 1])
    return fig
