"""Multichannel Wiener-EM refinement of target estimates in the sliCQT domain, written once
against the array API (through ``array_api_compat``): NumPy arrays for the torch-free
separator of an exported network (:mod:`xslicq.inference`), torch tensors, differentiable,
for the training system. This module imports no torch.

Each target ``j`` is modelled, per coefficient, as a zero-mean complex Gaussian with a
power ``v_j`` (varying over frequency and time) and a spatial covariance ``R_j`` (one
``C x C`` matrix per frequency row). One EM iteration re-estimates ``v_j`` and ``R_j``
from the current estimates and applies the multichannel Wiener filter
``y_j = v_j R_j (sum_k v_k R_k + eps I)^-1 x`` to the mixture ``x``. Works on every block
of the ragged coefficients independently.

Memory is bounded: one iteration is two passes over the frames of a block (its time
coefficients, slices times columns), a batch of whole frames at a time, at most
``batch_coefficients`` rows x frames. The first pass sums the outer products
``y_j y_j^H`` into ``R_j``; the second filters. The filter forms no ``C x C`` matrix per
coefficient and target: it solves the mixture against the modelled mixture covariance
once per coefficient, ``z = (sum_k v_k R_k + eps I)^-1 x`` (in closed form for one or two
channels, a batched solve for more), and each target is then ``y_j = v_j R_j z``. The
refined estimates are written into one buffer, batch by batch (in place after the first
iteration), unless a gradient flows through them: then the batches are concatenated.
"""

from __future__ import annotations

import array_api_compat

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


def _requires_grad(x) -> bool:
    """True for a torch tensor a gradient flows through (it cannot be filtered in place)."""
    return bool(getattr(x, "requires_grad", False))


def spatial_covariances(y, eps: float = 1e-10, batch_coefficients: int | None = BATCH_COEFFICIENTS):
    """The spatial covariance matrix of every target and frequency row.

    ``R_j(f) = sum_n y_j(f, n) y_j(f, n)^H / sum_n v_j(f, n)``, with ``v_j`` the power
    averaged over the channels, summed over batches of frames.

    Args:
        y: (nb_samples, nb_targets, nb_channels, rows, nb_frames) complex estimates.

    Returns:
        (nb_samples, nb_targets, rows, nb_channels, nb_channels) complex, Hermitian.
    """
    xp = array_api_compat.array_namespace(y)
    c, rows, frames = y.shape[2], y.shape[3], y.shape[4]
    outer = 0
    for span in _spans(rows, frames, _check_batch(batch_coefficients)):
        part = xp.permute_dims(y[..., span], (0, 1, 3, 2, 4))  # (B, J, F, C, n)
        outer = outer + part @ xp.conj(xp.matrix_transpose(part))  # sum_n y_c conj(y_d)
    weight = sum(xp.real(outer[..., i, i]) for i in range(c)) / c  # sum_n v_j, (B, J, F)
    return outer / (weight[..., None, None] + eps)


def _weighted(r, v):
    """``sum_j v_j r_j``: ``r`` (B, J, F) real or complex, ``v`` (B, J, F, n) real ->
    (B, F, n), a batched matrix product (a complex ``r`` as its real and imaginary parts,
    without a complex copy of ``v``)."""
    xp = array_api_compat.array_namespace(r, v)
    if xp.isdtype(r.dtype, "complex floating"):
        return _weighted(xp.real(r), v) + 1j * _weighted(xp.imag(r), v)
    rows = xp.permute_dims(r, (0, 2, 1))[:, :, None, :]  # (B, F, 1, J)
    return (rows @ xp.permute_dims(v, (0, 2, 1, 3)))[:, :, 0, :]  # (B, F, J, n) -> (B, F, n)


def _solve(r, v, x, eps: float):
    """``(sum_j v_j R_j + eps I)^-1 x`` per coefficient: the mixture against its modelled
    covariance (Hermitian positive definite).

    Args:
        r: (B, J, F, C, C) complex spatial covariances.
        v: (B, J, F, n) real powers.
        x: (B, C, F, n) complex mixture.

    Returns:
        (B, C, F, n) complex.
    """
    xp = array_api_compat.array_namespace(r, v, x)
    c = x.shape[1]
    if c == 1:
        return x / (_weighted(xp.real(r[..., 0, 0]), v) + eps)[:, None]
    if c == 2:  # [[p, q], [q*, s]]^-1 = [[s, -q], [-q*, p]] / (p s - |q|^2)
        p = _weighted(xp.real(r[..., 0, 0]), v) + eps
        s = _weighted(xp.real(r[..., 1, 1]), v) + eps
        q = _weighted(r[..., 0, 1], v)
        scale = 1 / (p * s - (xp.real(q) ** 2 + xp.imag(q) ** 2))
        x0, x1 = x[:, 0], x[:, 1]
        return xp.stack([(s * x0 - q * x1) * scale, (p * x1 - xp.conj(q) * x0) * scale], axis=1)
    rows = [[_weighted(r[..., i, k], v) for k in range(c)] for i in range(c)]
    for i in range(c):
        rows[i][i] = rows[i][i] + eps
    cxx = xp.stack([xp.stack(row, axis=-1) for row in rows], axis=-2)  # (B, F, n, C, C)
    z = xp.linalg.solve(cxx, xp.permute_dims(x, (0, 2, 3, 1))[..., None])  # (B, F, n, C, 1)
    return xp.permute_dims(z[..., 0], (0, 3, 1, 2))


def _filter(y, x, r, eps: float):
    """One Wiener filtering of a batch of frames.

    Args:
        y: (B, J, C, F, n) current estimates (they give the powers ``v_j``).
        x: (B, C, F, n) mixture.
        r: (B, J, F, C, C) spatial covariances.

    Returns:
        (B, J, C, F, n): ``v_j R_j (sum_k v_k R_k + eps I)^-1 x``.
    """
    xp = array_api_compat.array_namespace(y, x, r)
    c = y.shape[2]
    v = xp.mean(xp.real(y) ** 2 + xp.imag(y) ** 2, axis=2)  # (B, J, F, n)
    z = _solve(r, v, x, eps)[:, None]  # (B, 1, C, F, n)
    rows = [  # (R_j z)_i = sum_k R_j[i, k] z_k
        sum(r[:, :, :, i, k, None] * z[:, :, k] for k in range(c)) * v for i in range(c)
    ]
    return xp.stack(rows, axis=2)


def wiener_block(
    estimates,
    mixture,
    iterations: int = 1,
    eps: float = 1e-10,
    batch_coefficients: int | None = BATCH_COEFFICIENTS,
):
    """Refine one block (NumPy arrays or torch tensors, differentiable).

    Args:
        estimates: (nb_samples, nb_targets, nb_channels, rows, slices, time) complex.
        mixture: (nb_samples, nb_channels, rows, slices, time) complex.
        iterations: EM iterations (0: the estimates unchanged).
        eps: regularisation of the covariances.
        batch_coefficients: coefficients per target and channel filtered at once (whole
            frames of the block, at least one), which bounds the working memory;
            ``None``: the whole block at once.

    Returns:
        refined estimates, same shape, dtype and array library as ``estimates``.
    """
    batch_coefficients = _check_batch(batch_coefficients)
    b, j, c, f, s, m = check_block(tuple(estimates.shape), tuple(mixture.shape))
    if iterations == 0:
        return estimates
    xp = array_api_compat.array_namespace(estimates, mixture)
    y = xp.reshape(estimates, (b, j, c, f, s * m))
    x = xp.reshape(mixture, (b, c, f, s * m))
    spans = _spans(f, s * m, batch_coefficients)
    in_place = not (_requires_grad(estimates) or _requires_grad(mixture))
    out = xp.empty_like(y) if in_place else None  # refined in place after the first iteration
    for _ in range(iterations):
        r = spatial_covariances(y, eps, batch_coefficients)
        if in_place:
            for k in spans:  # a batch's estimates are read before they are replaced
                out[..., k] = _filter(y[..., k], x[..., k], r, eps)
            y = out
        else:
            y = xp.concat([_filter(y[..., k], x[..., k], r, eps) for k in spans], axis=-1)
    return xp.reshape(y, tuple(estimates.shape))


def wiener(
    estimates: list,
    mixture: list,
    iterations: int = 1,
    batch_coefficients: int | None = BATCH_COEFFICIENTS,
) -> list:
    """Refine ragged estimates ``[(B, J, C, rows, S, M), ...]`` against the mixture blocks."""
    return [
        wiener_block(e, x, iterations, batch_coefficients=batch_coefficients)
        for e, x in zip(estimates, mixture)
    ]
