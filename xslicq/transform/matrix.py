"""Ragged sliCQT blocks <-> one matrix ``(batch, channels, nb_bins, slices, T)``.

Every block's time axis holds ``M`` coefficients per slice, a power of two, and
``T`` is a power of two too, so each block is resampled by an integer factor:

* ``M <= T`` (upsampling by ``r = T / M``): coefficient ``n`` lands exactly on
  matrix column ``n * r`` and the ``r - 1`` columns up to the next coefficient
  are interpolated (periodically, as the slice's coefficients are circular).
  Real input (magnitudes, masks) is interpolated linearly; complex input has its
  magnitude interpolated linearly and its phase advanced by the wrapped phase
  difference to the next coefficient, so a steady sinusoid keeps a steady phase
  advance and nothing is summed across a wrap. The inverse picks every ``r``-th
  column: an exact left inverse, local, and it never leaves the range of its
  input (masks in [0, 1] stay in [0, 1]).
* ``M > T`` (only with a configured ``T`` below the finest block's ``M``): groups
  of ``r = M / T`` coefficients are averaged (magnitude mean, phase of the complex
  sum), and the inverse interpolates the matrix back onto the block's grid. This
  loses the block's finest time detail, which suits masks computed by a network
  at a coarse time resolution and applied to the exact ragged mixture.

``mode="zeropad"`` pads every block with zeros to ``T`` instead; its inverse crops.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_int
from . import backend as bk
from .module import Module
from .slicing import overlap_add, slice_window_at

MODES = ("interpolate", "zeropad")


def _is_complex(xp, x) -> bool:
    return xp.isdtype(x.dtype, "complex floating")


def _polar(xp, z):
    """Magnitude and phase of complex ``z``; the phase of an exact zero is 0 and its
    gradient stays finite."""
    zero = xp.abs(z) == 0
    re = xp.where(zero, xp.ones_like(xp.real(z)), xp.real(z))
    im = xp.where(zero, xp.zeros_like(xp.imag(z)), xp.imag(z))
    return xp.abs(z), xp.atan2(im, re)


def _wrap(xp, phase):
    """Phase difference wrapped to [-pi, pi]."""
    return phase - 2.0 * math.pi * xp.round(phase / (2.0 * math.pi))


def _from_polar(mag, phase, xp):
    return mag * xp.cos(phase) + 1j * (mag * xp.sin(phase))


def _lerp_weights(r: int, centred: bool) -> np.ndarray:
    """Weights (3, r) of the previous, the own and the next input column in the ``r``
    outputs of one input column of a linear interpolation by ``r`` (see :func:`_lerp`).
    Every weight is a dyadic fraction (``r`` is a power of two), exact in any float dtype,
    and every column of weights sums to one."""
    if centred:  # output k sits a fraction o_k of a column from its input column
        offset = (np.arange(r) - (r - 1) / 2.0) / r
        return np.stack([np.maximum(-offset, 0.0), 1.0 - np.abs(offset), np.maximum(offset, 0.0)])
    step = np.arange(r) / r  # output k sits k / r of the way to the next column
    return np.stack([np.zeros(r), 1.0 - step, step])


def _lerp(xp, x, r: int, centred: bool):
    """Linear interpolation of real ``x`` (..., n) by a whole factor ``r`` along the last
    axis, circular (a slice's coefficients wrap around), n r outputs.

    ``centred=False``: anchors on every r-th output, ``out[g r + k] = x[g] + k / r (x[g+1]
    - x[g])``, so ``out[g r] == x[g]`` exactly. ``centred=True``: output ``g r + k`` sits at
    input position ``g + (k - (r - 1) / 2) / r`` (the centres of the groups
    :meth:`RaggedToMatrix.forward` averages).

    One matrix product of every column's neighbours (..., n, 3) with :func:`_lerp_weights`:
    the output is written once, and its gradient read once. Torch tensors take
    :func:`_torch_lerp` (the same values and gradient, faster for small ``r``)."""
    lead, n = tuple(x.shape[:-1]), x.shape[-1]
    weights = _lerp_weights(r, centred)
    if bk.array_api_compat.is_torch_array(x):
        return _torch_lerp().apply(x, r, centred, weights)
    parts = [xp.roll(x, 1, axis=-1), x, xp.roll(x, -1, axis=-1)]
    if not centred:  # the previous column has weight 0
        parts, weights = parts[1:], weights[1:]
    neighbours = xp.reshape(xp.stack(parts, axis=-1), (-1, len(parts)))
    w = xp.asarray(weights, dtype=x.dtype, device=bk.array_api_compat.device(x))
    return xp.reshape(xp.matmul(neighbours, w), lead + (n * r,))


_TORCH_LERP = None


def _torch_lerp():
    """Autograd function for :func:`_lerp` on torch: forward with torch's linear
    interpolation kernel (one pass, whatever ``r``) plus the wrapped ends, backward as the
    adjoint of the weights, ``grad (..., n, r) @ weights.T`` (one read of the gradient)
    shifted onto the previous, own and next column."""
    global _TORCH_LERP
    if _TORCH_LERP is None:
        import torch
        import torch.nn.functional as F

        class TorchLerp(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, r, centred, weights):
                ctx.r, ctx.weights = r, weights
                lead, n = tuple(x.shape[:-1]), x.shape[-1]
                flat = x.reshape(-1, 1, n)
                if centred:
                    # align_corners=False puts output i at input position (i + 1/2) / r - 1/2,
                    # the centred grid; only the r / 2 outputs at each end lie beyond the
                    # first or last column, where the slice wraps around: they are redone on
                    # the pair (x[n - 1], x[0]), whose outputs from r / 2 on sit at offsets
                    # (k + 1/2) / r past x[n - 1]
                    up = F.interpolate(flat, size=n * r, mode="linear", align_corners=False)
                    h = r // 2
                    pair = torch.cat([flat[..., -1:], flat[..., :1]], dim=-1)
                    wrap = F.interpolate(pair, size=2 * r, mode="linear", align_corners=False)
                    up[..., n * r - h :] = wrap[..., h:r]
                    up[..., :h] = wrap[..., r : r + h]
                else:  # the first column again after the last; output k r sits on x[k]
                    padded = torch.cat([flat, flat[..., :1]], dim=-1)
                    up = F.interpolate(padded, size=n * r + 1, mode="linear", align_corners=True)
                    up = up[..., : n * r]
                return up.reshape(lead + (n * r,))

            @staticmethod
            def backward(ctx, grad):
                lead, r = tuple(grad.shape[:-1]), ctx.r
                n = grad.shape[-1] // r
                w = torch.as_tensor(ctx.weights.T, dtype=grad.dtype, device=grad.device)
                per = (grad.reshape(-1, r) @ w).reshape(lead + (n, 3))
                own = per[..., 1] + torch.roll(per[..., 0], -1, dims=-1)
                return own + torch.roll(per[..., 2], 1, dims=-1), None, None, None

        _TORCH_LERP = TorchLerp
    return _TORCH_LERP


def _between(xp, left, right, w):
    """Complex values a fraction ``w`` (r,) of the way from ``left`` to ``right`` (..., n),
    as (..., n, r): the magnitude linearly and the phase by the wrapped phase difference
    (no cancellation across a phase wrap; real input goes through :func:`_lerp`)."""
    mag0, ph0 = _polar(xp, left)
    mag1, ph1 = _polar(xp, right)
    mag = mag0[..., None] + (mag1 - mag0)[..., None] * w
    return _from_polar(mag, ph0[..., None] + _wrap(xp, ph1 - ph0)[..., None] * w, xp)


class RaggedToMatrix(Module):
    """Turn ragged sliCQT blocks into one matrix a 2-D network can use, and back.

    Args:
        transform: the :class:`~xslicq.transform.SliCQT` whose blocks are converted.
        mode: ``"interpolate"`` (resample every block's time axis to ``T``) or
            ``"zeropad"`` (pad every block with zeros to ``T``).
        T: matrix columns per slice. ``None`` takes the finest block's time size
            (the largest ``M``), where ``inverse`` is an exact left inverse of
            ``forward``. ``interpolate`` needs a power of two; a ``T`` below the
            largest ``M`` averages the finer blocks (not invertible for them).
            ``zeropad`` needs ``T >= max(M)``.

    Attributes:
        T: columns per slice; freqs: (nb_bins,) centre frequency of every row in Hz;
        exact: True when ``inverse(forward(c)) == c`` holds for every block.
    """

    def __init__(self, transform, mode: str = "interpolate", T: int | None = None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        sizes = [m for _, m in transform.block_shapes]
        finest = max(sizes)
        T = finest if T is None else T
        check_int(T, "T", 2)
        if mode == "interpolate" and T & (T - 1):
            raise ValueError(
                f"T must be a power of two for mode='interpolate' (block time "
                f"sizes are {sorted(set(sizes))}), got T={T}"
            )
        if mode == "zeropad" and T < finest:
            raise ValueError(
                f"T must be at least the finest block's time size {finest} for "
                f"mode='zeropad', got T={T}"
            )
        self.transform = transform
        self.mode, self.T = mode, int(T)
        self.freqs = transform.freqs
        self.nb_bins = transform.nb_bins
        self.exact = self.T >= finest

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, T={self.T}, nb_bins={self.nb_bins}, exact={self.exact}"

    # ----------------------------------------------------------------- forward
    def forward(self, coefs):
        """Ragged blocks -> matrix.

        Args:
            coefs: blocks ``(batch, channels, rows, slices, M)``, all complex or all real.

        Returns:
            ``(batch, channels, nb_bins, slices, T)``, complex for complex input, real for
            real input; rows in ascending frequency (``self.freqs``).
        """
        xp = self.transform.check_coefs(coefs, complex_only=False)
        return xp.concat([self._block_forward(xp, blk) for blk in coefs], axis=2)

    def _block_forward(self, xp, x):
        m, T = x.shape[-1], self.T
        lead = tuple(x.shape[:-1])
        if self.mode == "zeropad":
            pad = xp.zeros(lead + (T - m,), dtype=x.dtype, device=bk.array_api_compat.device(x))
            return xp.concat([x, pad], axis=-1)
        if m == T:
            return x
        if m > T:  # average groups of r coefficients
            groups = xp.reshape(x, lead + (T, m // T))
            if not _is_complex(xp, x):
                return xp.mean(groups, axis=-1)
            mag = xp.mean(xp.abs(groups), axis=-1)
            _, phase = _polar(xp, xp.sum(groups, axis=-1))
            return _from_polar(mag, phase, xp)
        r = T // m  # upsample by r, anchors on every r-th column
        if not _is_complex(xp, x):
            return _lerp(xp, x, r, centred=False)
        w = xp.asarray(
            np.arange(r) / r, dtype=bk.real_dtype(xp, x.dtype), device=bk.array_api_compat.device(x)
        )
        return xp.reshape(_between(xp, x, xp.roll(x, -1, axis=-1), w), lead + (T,))

    # ----------------------------------------------------------------- inverse
    def check_matrix(self, matrix):
        """Validate a matrix ``(batch, channels, nb_bins, slices, T)``; return its namespace."""
        xp = bk.namespace(matrix)
        if matrix.ndim != 5 or matrix.shape[2] != self.nb_bins or matrix.shape[4] != self.T:
            raise ValueError(
                f"expected a matrix of shape (batch, channels, {self.nb_bins}, "
                f"slices, {self.T}), got shape {tuple(matrix.shape)}"
            )
        return xp

    def inverse(self, matrix):
        """Matrix -> ragged blocks (an exact left inverse of :meth:`forward` when ``exact``).

        Args:
            matrix: ``(batch, channels, nb_bins, slices, T)``, real or complex.

        Returns:
            list of blocks ``(batch, channels, rows, slices, M)`` of the matrix's dtype.
        """
        xp = self.check_matrix(matrix)
        shapes = self.transform.block_shapes
        pieces = bk.split(matrix, [rows for rows, _ in shapes], axis=2)
        return [self._block_inverse(xp, y, m) for y, (_, m) in zip(pieces, shapes)]

    def _block_inverse(self, xp, y, m):
        T = self.T
        lead = tuple(y.shape[:-1])
        if self.mode == "zeropad":
            return y[..., :m]
        if m <= T:  # pick the anchor columns
            return xp.reshape(y, lead + (m, T // m))[..., 0]
        # interpolate between the centres of the groups averaged by forward: output n of
        # group g lies a fraction (n - (r - 1) / 2) / r of a group away from its centre
        r = m // T
        if not _is_complex(xp, y):
            return _lerp(xp, y, r, centred=True)
        offset = (np.arange(r) - (r - 1) / 2.0) / r
        dev, dtype = bk.array_api_compat.device(y), bk.real_dtype(xp, y.dtype)
        before = xp.asarray(1.0 + offset[offset < 0], dtype=dtype, device=dev)
        after = xp.asarray(offset[offset >= 0], dtype=dtype, device=dev)
        up = xp.concat(
            [
                _between(xp, xp.roll(y, 1, axis=-1), y, before),
                _between(xp, y, xp.roll(y, -1, axis=-1), after),
            ],
            axis=-1,
        )
        return xp.reshape(up, lead + (m,))

    # ------------------------------------------------------------ slice views
    @staticmethod
    def flatten(matrix):
        """``(batch, channels, nb_bins, slices, T)`` -> ``(batch, channels, nb_bins, slices * T)``:
        the slices side by side along time, the view a network convolves over (its first
        layer's stride folds the 50% slice overlap in)."""
        xp = bk.namespace(matrix)
        b, c, f, s, t = matrix.shape
        return xp.reshape(matrix, (b, c, f, s * t))

    def unflatten(self, flat):
        """Inverse of :meth:`flatten`."""
        xp = bk.namespace(flat)
        b, c, f, n = flat.shape
        if n % self.T:
            raise ValueError(f"a flattened matrix needs a multiple of T={self.T} columns, got {n}")
        return xp.reshape(flat, (b, c, f, n // self.T, self.T))

    def overlap_add(self, matrix, length: int | None = None):
        """Overlap-add the slices of a matrix into one time line, for plots.

        Every slice is weighted by the slice window sampled on its ``T`` columns (the
        windows of neighbouring slices sum to one), and the half-slice overlaps are added.

        Returns:
            ``(batch, channels, nb_bins, frames)`` starting at signal sample 0, one frame
            every ``sllen / T`` samples; ``length`` (samples) crops to the signal.
        """
        xp = self.check_matrix(matrix)
        t = self.transform
        w = slice_window_at(np.arange(self.T) * t.sllen / self.T, t.sllen, t.trlen)
        w = xp.asarray(
            w, dtype=bk.real_dtype(xp, matrix.dtype), device=bk.array_api_compat.device(matrix)
        )
        slices = matrix.shape[3]
        frames = (
            slices * self.T // 2
            if length is None
            else min(math.ceil(length * self.T / t.sllen), slices * self.T // 2)
        )
        return overlap_add(xp, matrix * w, self.T, frames)
