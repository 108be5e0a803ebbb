"""Multichannel Wiener-EM refinement in NumPy: the torch-free twin of
:mod:`xslicq.filtering`, for the separator of an exported network
(:mod:`xslicq.inference`).

The same model and the same iteration, step for step (see :mod:`xslicq.filtering`): per
target ``j`` a power ``v_j`` per coefficient and a spatial covariance ``R_j`` per frequency
row; each iteration re-estimates both from the current estimates and applies
``y_j = v_j R_j (sum_k v_k R_k + eps I)^-1 x`` to the mixture ``x``. Equal to the torch
version to float tolerance (tested).

Memory is bounded the same way: a batch of whole frames (time coefficients) of a block at
a time, at most ``batch_coefficients`` rows x frames, for the sums that make ``R_j`` and
for the filter. The filter solves the mixture against the modelled mixture covariance
once per coefficient, ``z = (sum_k v_k R_k + eps I)^-1 x`` (in closed form for one or two
channels, :func:`numpy.linalg.solve` for more), and each target is ``y_j = v_j R_j z``: no
``C x C`` matrix per coefficient and target is formed.
"""

from __future__ import annotations

import numpy as np

# coefficients per target and channel (rows x frames) filtered at once: 2^17 is 4 MiB of
# complex64 estimates for four stereo targets, and a few times that in temporaries
BATCH_COEFFICIENTS = 1 << 17


def _check_batch(batch_coefficients) -> int | None:
    if batch_coefficients is None:
        return None
    value = batch_coefficients
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"batch_coefficients must be an integer >= 1 or None, got {value!r}")
    return value


def _spans(rows: int, frames: int, batch_coefficients: int | None) -> list[slice]:
    """Consecutive spans of whole frames, each of at most ``batch_coefficients // rows``
    frames (at least one; ``None``: all frames at once)."""
    step = frames if batch_coefficients is None else max(1, batch_coefficients // rows)
    return [slice(k, min(k + step, frames)) for k in range(0, frames, step)]


def check_block(estimates: tuple, mixture: tuple) -> tuple[int, ...]:
    """The shape ``(B, J, C, F, S, M)`` of ``estimates`` if a mixture block of shape
    ``mixture`` fits it, else a ValueError naming both."""
    b, j, c, f, s, m = estimates
    if tuple(mixture) != (b, c, f, s, m):
        raise ValueError(
            f"mixture block of shape {tuple(mixture)} does not fit estimates of shape "
            f"{tuple(estimates)}: expected {(b, c, f, s, m)}"
        )
    return b, j, c, f, s, m


def spatial_covariances(
    y: np.ndarray, eps: float = 1e-10, batch_coefficients: int | None = BATCH_COEFFICIENTS
) -> np.ndarray:
    """:func:`xslicq.filtering.spatial_covariances` in NumPy, laid out target first:
    estimates (B, J, C, F, nb_frames) complex -> (B, J, F, C, C) complex, Hermitian."""
    b, j, c, f, frames = y.shape
    outer = np.zeros((b, j, f, c, c), y.dtype)
    for span in _spans(f, frames, _check_batch(batch_coefficients)):
        part = np.moveaxis(y[..., span], 2, 3)  # (B, J, F, C, n)
        outer += part @ np.swapaxes(part, -1, -2).conj()  # sum_n y_c conj(y_d)
    weight = np.trace(outer, axis1=-2, axis2=-1).real / c  # sum_n v_j, (B, J, F)
    return outer / (weight[..., None, None] + eps)


def _weighted(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``sum_j v_j r_j``: ``r`` (B, J, F) real or complex, ``v`` (B, J, F, n) real ->
    (B, F, n), without a (B, J, F, n) temporary."""
    if np.iscomplexobj(r):
        out = np.empty(v.shape[:1] + v.shape[2:], r.dtype)
        out.real, out.imag = _weighted(r.real, v), _weighted(r.imag, v)
        return out
    return np.einsum("bjf,bjfn->bfn", r, v)


def _solve(r: np.ndarray, v: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """``(sum_j v_j R_j + eps I)^-1 x`` per coefficient: the mixture against its modelled
    covariance (Hermitian positive definite).

    Args:
        r: (B, J, F, C, C) complex spatial covariances.
        v: (B, J, F, n) real powers.
        x: (B, C, F, n) complex mixture.

    Returns:
        (B, C, F, n) complex.
    """
    c = x.shape[1]
    if c == 1:
        return x / (_weighted(r[..., 0, 0].real, v) + eps)[:, None]
    if c == 2:  # [[p, q], [q*, s]]^-1 = [[s, -q], [-q*, p]] / (p s - |q|^2)
        p = _weighted(r[..., 0, 0].real, v) + eps
        s = _weighted(r[..., 1, 1].real, v) + eps
        q = _weighted(r[..., 0, 1], v)
        scale = 1 / (p * s - (q.real**2 + q.imag**2))
        x0, x1 = x[:, 0], x[:, 1]
        return np.stack([(s * x0 - q * x1) * scale, (p * x1 - q.conj() * x0) * scale], 1)
    b, _, f, n = x.shape
    cxx = np.empty((b, f, n, c, c), x.dtype)
    for i in range(c):
        for k in range(c):
            cxx[..., i, k] = _weighted(r[..., i, k], v)
        cxx[..., i, i] += eps
    z = np.linalg.solve(cxx, np.moveaxis(x, 1, -1)[..., None])[..., 0]  # (B, F, n, C)
    return np.moveaxis(z, -1, 1)


def _filter(y: np.ndarray, x: np.ndarray, r: np.ndarray, eps: float) -> np.ndarray:
    """One Wiener filtering of a batch of frames.

    Args:
        y: (B, J, C, F, n) current estimates (they give the powers ``v_j``).
        x: (B, C, F, n) mixture.
        r: (B, J, F, C, C) spatial covariances.

    Returns:
        (B, J, C, F, n): ``v_j R_j (sum_k v_k R_k + eps I)^-1 x``.
    """
    c = y.shape[2]
    v = (y.real**2 + y.imag**2).mean(2)  # (B, J, F, n)
    z = _solve(r, v, x, eps)[:, None]  # (B, 1, C, F, n)
    out = np.empty_like(y)
    for i in range(c):  # (R_j z)_i = sum_k R_j[i, k] z_k
        out[:, :, i] = sum(r[:, :, :, i, k, None] * z[:, :, k] for k in range(c)) * v
    return out


def wiener_block(
    estimates: np.ndarray,
    mixture: np.ndarray,
    iterations: int = 1,
    eps: float = 1e-10,
    batch_coefficients: int | None = BATCH_COEFFICIENTS,
) -> np.ndarray:
    """Refine one block: :func:`xslicq.filtering.wiener_block` in NumPy, the same
    arguments and the same result to float tolerance.

    Args:
        estimates: (nb_samples, nb_targets, nb_channels, rows, slices, time) complex.
        mixture: (nb_samples, nb_channels, rows, slices, time) complex.

    Returns:
        refined estimates, same shape and dtype as ``estimates``.
    """
    batch_coefficients = _check_batch(batch_coefficients)
    b, j, c, f, s, m = check_block(estimates.shape, mixture.shape)
    if iterations == 0:
        return estimates
    y = estimates.reshape(b, j, c, f, s * m)
    x = mixture.reshape(b, c, f, s * m)
    spans = _spans(f, s * m, batch_coefficients)
    out = np.empty_like(y)  # the refined estimates, in place after the first iteration
    for _ in range(iterations):
        r = spatial_covariances(y, eps, batch_coefficients)
        for k in spans:  # a batch's estimates are read before they are replaced
            out[..., k] = _filter(y[..., k], x[..., k], r, eps)
        y = out
    return y.reshape(estimates.shape)


def wiener(estimates: list, mixture: list, iterations: int = 1) -> list:
    """Refine ragged estimates ``[(B, J, C, rows, S, M), ...]`` against the mixture blocks."""
    return [wiener_block(e, x, iterations) for e, x in zip(estimates, mixture)]
