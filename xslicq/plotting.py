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
        transform: the :class:`~xslicq.transform.SliCQT` that produced ``coefs`` (or the
            :class:`~xslicq.transform.STFT`: its slices are frames side by side).
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
        if getattr(transform, "hop_length", None):  # the STFT: slices of whole frames
            line = power.reshape(power.shape[0], slices * m)  # frame k centred on k * hop
            at = np.arange(slices * m) * transform.hop_length
        else:
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


def frequency_ticks(freqs: np.ndarray, ticks=HZ_TICKS, min_gap: float = 0.0):
    """(row positions, labels) of the Hz ticks that fall inside ``freqs`` (ascending); with
    ``min_gap`` (rows), from the top down, a tick closer than that to the one above is
    dropped (the crowded low ticks of a linear frequency axis)."""
    pos, labels = [], []
    for f in sorted(ticks, reverse=True):
        if freqs[1] <= f <= freqs[-1]:
            at = float(np.interp(f, freqs, np.arange(len(freqs))))
            if pos and pos[-1] - at < min_gap:
                continue
            pos.append(at)
            labels.append(f"{f // 1000}k" if f >= 1000 else str(f))
    return pos[::-1], labels[::-1]


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


def render_figure(fig) -> np.ndarray:
    """A Matplotlib figure drawn on an Agg canvas (no window, no pyplot state) as a
    (3, height, width) uint8 RGB array, ready for TensorBoard's ``add_image``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].transpose(2, 0, 1).copy()


def _shrink(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Mean of blocks of neighbouring values so that ``image`` has at most ``rows`` x
    ``columns`` values (the picture cannot show more; drawing them all is slow)."""
    for axis, most in ((0, rows), (1, columns)):
        n = image.shape[axis]
        step = -(-n // most)
        if step > 1:
            starts = np.arange(0, n, step)
            counts = np.diff(np.append(starts, n))
            shape = (-1, 1) if axis == 0 else (1, -1)
            image = np.add.reduceat(image, starts, axis=axis) / counts.reshape(shape)
    return image


def separation_figure(
    images,
    row_labels,
    column_labels=("mixture", "reference", "estimate"),
    freqs: np.ndarray | None = None,
    seconds: float | None = None,
    max_pixels: int = 1024,
    dynamic_range_db: float = 80.0,
    top_db: float | None = None,
):
    """A labelled grid of spectrogram images: a Matplotlib figure of bounded size.

    One row per target (labelled with its name on the left), one column per signal
    (``mixture | reference | estimate``, titled on top); every panel on one dB scale. The
    figure is at most ``max_pixels`` per side at its dpi whatever the images' bin and column
    counts (Matplotlib resamples them into their panels); :func:`render_figure` draws it.

    Args:
        images: ``rows`` lists of ``columns`` dB images ``(nb_bins, width)``, rows in
            ascending frequency (as :func:`slicq_image` returns them).
        row_labels, column_labels: names of the rows (targets) and the columns.
        freqs: (nb_bins,) row frequencies in Hz, ascending: Hz ticks on the left column.
        seconds: duration of the images: a time axis on the bottom row.
        max_pixels: the largest side of the picture.
        dynamic_range_db: dB from the brightest level to black.
        top_db: the brightest level (default: the maximum of all images).

    Returns:
        the figure (no pyplot state: nothing to close).
    """
    from matplotlib.figure import Figure

    rows, cols = len(images), len(column_labels)
    if rows != len(row_labels) or rows == 0 or any(len(r) != cols for r in images):
        raise ValueError(
            f"images must be {len(row_labels)} rows (row_labels) of {cols} images "
            f"(column_labels), got {[len(r) for r in images]}"
        )
    if max_pixels < 64:
        raise ValueError(f"max_pixels must be >= 64, got {max_pixels}")
    top = max(float(i.max()) for r in images for i in r) if top_db is None else top_db
    dpi = 100
    width = max_pixels
    height = min(max_pixels, 40 + 250 * rows)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    extent = (0.0, seconds if seconds else 1.0, -0.5, images[0][0].shape[0] - 0.5)
    for r, (row, label) in enumerate(zip(images, row_labels)):
        for c, image in enumerate(row):
            ax = axes[r, c]
            ax.imshow(
                _shrink(np.asarray(image), 2 * height // rows, 2 * width // cols),
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=top - dynamic_range_db,
                vmax=top,
                extent=extent,
                interpolation="antialiased",
            )
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(column_labels[c], fontsize=10)
        axes[r, 0].set_ylabel(label, fontsize=10, fontweight="bold")
    if freqs is not None:
        freqs = np.asarray(freqs)
        pos, labels = frequency_ticks(freqs, min_gap=len(freqs) / 12)
        axes[0, 0].set_yticks(pos, labels)
    else:
        axes[0, 0].set_yticks([])
    if seconds:
        for ax in axes[-1]:
            ax.set_xlabel("time (s)", fontsize=8)
    else:
        axes[0, 0].set_xticks([])
    return fig


def scores_figure(summary: dict, score: str = "SDR"):
    """A Matplotlib figure of an evaluation summary
    (:func:`xslicq.evaluation.summarize`): every track's median ``score`` per target as
    dots, the median over tracks as a bar, the mean of the targets as a dashed line."""
    from matplotlib.figure import Figure

    targets = summary["targets"]
    fig = Figure(figsize=(1.6 + 1.1 * len(targets), 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    medians = [summary["per_target"][t][score] for t in targets]
    ax.bar(range(len(targets)), np.nan_to_num(medians), color="0.8", label="median over tracks")
    for k, t in enumerate(targets):
        values = [summary["per_track"][name].get(t, {}).get(score) for name in summary["tracks"]]
        values = [v for v in values if v is not None and np.isfinite(v)]
        label = "per track" if k == 0 else None
        ax.plot([k] * len(values), values, "o", color="C0", ms=4, alpha=0.7, label=label)
    mean = summary["mean"][score]
    if np.isfinite(mean):
        ax.axhline(mean, color="k", ls="--", lw=1, label=f"mean {mean:.2f} dB")
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.set_xticks(range(len(targets)), targets)
    ax.set_ylabel(f"{score} (dB)")
    ax.set_title(f"{score} ({summary['metric']}), {len(summary['tracks'])} tracks", fontsize=10)
    ax.legend(fontsize=7)
    return fig
