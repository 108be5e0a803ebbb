"""Pieces the networks share: shape checks, per-bin normalisation, the slice-overlap fold.

Shape names used throughout ``xslicq.models``::

    nb_samples    B  batch
    nb_channels   C  audio channels (2)
    nb_bins       F  frequency rows of the transform's matrix form
    nb_slices     S  sliCQT slices
    T                matrix columns per slice (a power of two)
    nb_frames     N  time frames of a flat time axis (N = S * T for a flattened matrix)
    nb_targets    J  separated sources (vocals, drums, bass, other)

The slice overlap
-----------------
Slice ``s`` of the sliCQT spans the samples ``[(s - 1) * hop, (s + 1) * hop)`` with
``hop = sllen / 2``, so its second half and the first half of slice ``s + 1`` hold the
same stretch of audio. Laid side by side along time (``(B, C, F, S * T)``), the two
copies of that half-slice are the contiguous run of ``T`` columns starting at column
``s * T + T / 2``. :func:`fold_overlap` pads the flat time axis by ``T / 2`` columns at
both ends and cuts it into runs of ``T`` columns, one per half-slice of audio
(``S + 1`` of them, the outermost two with one zero copy), and stacks each run's two
halves as two input channels. Column ``t`` of both copies then covers the same
instant, so the convolution that follows sees, at every output step, the matching
columns of both overlapping slices, side by side in its channels, and its time
stride reduces the half-slice time line rather than the doubled slice time line.

The folded time axis is the audio's own time line, one column per matrix column, with
``(S + 1) * T / 2`` columns instead of ``S * T``: a kernel that crosses a half-slice
boundary simply reads on into the next stretch of audio. Inside one half-slice, the
first convolution equals a convolution over the flat padded axis with a kernel of
``T / 2 + kt`` time taps of which only the two aligned runs ``[0, kt)`` and
``[T / 2, T / 2 + kt)`` are non-zero, evaluated in the first half of every run.
:func:`unfold_overlap` is its exact inverse (and the decoder's last transposed
convolution writes both copies, so every matrix column gets its own output).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as Fn

from .. import checks
from ..checks import is_int


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_input(x, expected: Sequence, names: Sequence[str], what: str = "input"):
    """Raise ``ValueError`` unless ``x`` is a float tensor whose shape matches ``expected``
    (``None`` entries are free), naming the expected and the given shapes."""
    wanted = "(" + ", ".join(n if e is None else f"{n}={e}" for n, e in zip(names, expected)) + ")"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape {wanted}, got {type(x).__name__}")
    if x.ndim != len(expected) or any(e is not None and g != e for g, e in zip(x.shape, expected)):
        raise ValueError(f"{what}: expected shape {wanted}, got {tuple(x.shape)} ({x.ndim}-D)")
    if any(n == 0 for n in x.shape):
        raise ValueError(
            f"{what}: expected shape {wanted} with no empty axis, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{what} must be real floating point magnitudes, got dtype {x.dtype}")


def check_power_of_two(name: str, value, minimum: int = 2) -> int:
    if not is_int(value) or value < minimum or value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value) -> int:
    """:func:`xslicq.checks.check_positive_int` with the models' argument order."""
    return checks.check_positive_int(value, name)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups of at least 4 channels each (one group for fewer than 8
    channels), so that it stays well defined on a 1 x 1 bottleneck."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0 and (channels // g >= 4 or g == 1))
    return nn.GroupNorm(groups, channels)


class PerBinAffine(nn.Module):
    """Learned per-frequency-row normalisation ``(x + shift[f]) * scale[f]``.

    The same ``(nb_bins,)`` shift and scale apply to every channel, slice and frame.
    Initialised to the identity (shift 0, scale 1), or from data statistics with
    :meth:`init_from_stats` (shift ``-mean``, scale ``1 / std``), which makes the
    output zero-mean and unit-std per row on data with those statistics.

    Args:
        nb_bins: number of frequency rows ``F``.
        dim: the axis of the input that holds the rows (negative counts from the end).
    """

    def __init__(self, nb_bins: int, dim: int = -2):
        super().__init__()
        self.nb_bins, self.dim = check_positive_int("nb_bins", nb_bins), dim
        self.shift = nn.Parameter(torch.zeros(self.nb_bins))
        self.scale = nn.Parameter(torch.ones(self.nb_bins))

    def extra_repr(self) -> str:
        return f"nb_bins={self.nb_bins}, dim={self.dim}"

    @torch.no_grad()
    def init_from_stats(self, mean, std, eps: float = 1e-8):
        """Set shift ``-mean`` and scale ``1 / max(std, eps)``; ``mean``, ``std``: (nb_bins,)."""
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=self.shift.dtype)
        std = torch.as_tensor(np.asarray(std, dtype=np.float64), dtype=self.scale.dtype)
        for name, value in (("mean", mean), ("std", std)):
            if tuple(value.shape) != (self.nb_bins,):
                raise ValueError(
                    f"stats {name}: expected shape ({self.nb_bins},) (nb_bins,), "
                    f"got {tuple(value.shape)}"
                )
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"stats {name} contains NaN or inf values")
        if bool((std < 0).any()):
            raise ValueError("stats std must be non-negative")
        self.shift.copy_(-mean.to(self.shift.device))
        self.scale.copy_(1.0 / std.clamp_min(eps).to(self.scale.device))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: any shape whose axis ``dim`` has ``nb_bins`` entries; same shape out."""
        dim = self.dim % x.ndim
        view = (-1,) + (1,) * (x.ndim - dim - 1)
        return (x + self.shift.view(view)) * self.scale.view(view)


def fold_overlap(x: torch.Tensor) -> torch.Tensor:
    """Stack the two overlapping copies of every half-slice as channels.

    Args:
        x: (nb_samples, nb_channels, nb_bins, nb_slices, T), T even.

    Returns:
        (nb_samples, 2 * nb_channels, nb_bins, (nb_slices + 1) * T / 2). Channel
        ``2 c`` holds the second half of slice ``s - 1`` and channel ``2 c + 1`` the first
        half of slice ``s`` at time steps ``s * T / 2 ... (s + 1) * T / 2 - 1``
        (``s = 0 ... nb_slices``); the missing copies at both ends are zeros.
    """
    b, c, f, s, t = x.shape
    half = t // 2
    flat = Fn.pad(x.reshape(b, c, f, s * t), (half, half))  # (B, C, F, (S + 1) * T)
    runs = flat.reshape(b, c, f, s + 1, 2, half).permute(0, 1, 4, 2, 3, 5)
    return runs.reshape(b, 2 * c, f, (s + 1) * half)


def unfold_overlap(y: torch.Tensor, nb_slices: int) -> torch.Tensor:
    """Inverse of :func:`fold_overlap`.

    Args:
        y: (nb_samples, 2 * nb_channels, nb_bins, (nb_slices + 1) * T / 2).
        nb_slices: S.

    Returns:
        (nb_samples, nb_channels, nb_bins, nb_slices, T); the zero-padded copies beyond
        the first and last slice are dropped.
    """
    b, c2, f, n = y.shape
    half = n // (nb_slices + 1)
    runs = y.reshape(b, c2 // 2, 2, f, nb_slices + 1, half).permute(0, 1, 3, 4, 2, 5)
    flat = runs.reshape(b, c2 // 2, f, (nb_slices + 1) * 2 * half)
    return flat[..., half : half + nb_slices * 2 * half].reshape(b, c2 // 2, f, nb_slices, 2 * half)


def pad_to_multiple(x: torch.Tensor, factor_f: int, factor_t: int) -> torch.Tensor:
    """Zero-pad the last two axes (rows, time) of ``x`` up to multiples of the factors."""
    pad_f = -x.shape[-2] % factor_f
    pad_t = -x.shape[-1] % factor_t
    if pad_f or pad_t:
        x = Fn.pad(x, (0, pad_t, 0, pad_f))
    return x


class ConvEncoder(nn.Module):
    """Strided 2-D convolutions over (rows, time), each halving both axes.

    Level ``i`` maps ``widths[i]`` to ``widths[i + 1]`` channels with a 4x4 kernel,
    stride 2, padding 1, then GroupNorm and ReLU.

    Input (nb_samples, widths[0], rows, frames), rows and frames multiples of
    ``2 ** depth``; returns the list of every level's output, the last being
    (nb_samples, widths[-1], rows / 2 ** depth, frames / 2 ** depth).
    """

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                group_norm(c_out),
                nn.ReLU(),
            )
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: transposed convolutions that double both axes.

    Maps ``widths[-1]`` channels back to ``out_channels`` (the last level is linear, no
    norm). With ``skips``, the output of every level but the last is added to the
    encoder output of the same size (a U-Net with additive skips).

    Input (nb_samples, widths[-1], rows, frames); output
    (nb_samples, out_channels, rows * 2 ** depth, frames * 2 ** depth).
    """

    def __init__(self, widths: Sequence[int], out_channels: int):
        super().__init__()
        outs = [out_channels] + list(widths[1:-1])
        levels = []
        for i in reversed(range(len(widths) - 1)):
            conv = nn.ConvTranspose2d(widths[i + 1], outs[i], 4, stride=2, padding=1, bias=i == 0)
            levels.append(conv if i == 0 else nn.Sequential(conv, group_norm(outs[i]), nn.ReLU()))
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``skips``: encoder outputs from the first level up (the bottleneck's excluded)."""
        if skips and len(skips) != len(self.levels) - 1:
            raise ValueError(f"expected {len(self.levels) - 1} skip tensors, got {len(skips)}")
        for k, level in enumerate(self.levels):
            x = level(x)
            if skips and k < len(self.levels) - 1:
                x = x + skips[-1 - k]
        return x
