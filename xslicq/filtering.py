"""Multichannel Wiener-EM refinement of target estimates in the sliCQT domain.

Each target ``j`` is modelled, per coefficient, as a zero-mean complex Gaussian with a
power ``v_j`` (varying over frequency and time) and a spatial covariance ``R_j`` (one
``C x C`` matrix per frequency row). One EM iteration re-estimates ``v_j`` and ``R_j``
from the current estimates and applies the multichannel Wiener filter
``y_j = v_j R_j (sum_k v_k R_k)^-1 x`` to the mixture ``x``. Works on every block of
the ragged coefficients independently and is differentiable (torch).

Memory is bounded: one iteration is two passes over the frames of a block (its time
coefficients, slices times columns), a batch of whole frames at a time. The first pass
sums the outer products ``y_j y_j^H`` into ``R_j``; the second filters. The filter forms
no ``C x C`` matrix per coefficient and target: it solves the mixture against the
modelled mixture covariance once per coefficient, ``z = (sum_k v_k R_k + eps I)^-1 x``
(in closed form for one or two channels), and each target is then ``y_j = v_j R_j z``.
Inside a batch the work is real arithmetic on a planar layout ``(B, F, J, 2C, N)`` (the
real parts of the ``C`` channels, then the imaginary parts), where the sums over the
targets and channels are batched matrix products.
"""

from __future__ import annotations

import torch

# the frame batches, their budget and the shape check: the NumPy twin's (no torch there)
from .filtering_numpy import BATCH_COEFFICIENTS, _check_batch, _spans, check_block


def _planar(z: torch.Tensor, target_axis: bool) -> torch.Tensor:
    """Complex (B, [J,] C, F, N) -> real (B, F, [J,] 2C, N): real parts, then imaginary."""
    r = torch.view_as_real(z)  # (B, [J,] C, F, N, 2)
    order = (0, 3, 1, 5, 2, 4) if target_axis else (0, 2, 4, 1, 3)
    r = r.permute(order)  # (B, F, [J,] 2, C, N)
    return r.reshape(*r.shape[:-3], 2 * r.shape[-2], r.shape[-1])


def _complex(y: torch.Tensor) -> torch.Tensor:
    """Real (B, F, J, 2C, N) -> complex (B, J, C, F, N) view: the inverse of :func:`_planar`
    (``torch.cat`` of these views makes the one copy)."""
    b, f, j, c2, n = y.shape
    y = y.reshape(b, f, j, 2, c2 // 2, n).permute(0, 2, 4, 1, 5, 3)  # (B, J, C, F, N, 2)
    return torch.complex(y[..., 0], y[..., 1])


def spatial_covariances(
    y: torch.Tensor, eps: float = 1e-10, batch_coefficients: int | None = BATCH_COEFFICIENTS
) -> torch.Tensor:
    """The spatial covariance matrix of every target and frequency row.

    ``R_j(f) = sum_n y_j(f, n) y_j(f, n)^H / sum_n v_j(f, n)``, with ``v_j`` the power
    averaged over the channels, summed over batches of frames.

    Args:
        y: (nb_samples, nb_targets, nb_channels, rows, nb_frames) complex estimates.

    Returns:
        (nb_samples, rows, nb_targets, nb_channels, nb_channels) complex, Hermitian.
    """
    c, rows, frames = y.shape[2], y.shape[3], y.shape[4]
    gram = 0
    for span in _spans(rows, frames, _check_batch(batch_coefficients)):
        part = _planar(y[..., span], True)  # (B, F, J, 2C, n)
        gram = gram + part @ part.transpose(-1, -2)  # (B, F, J, 2C, 2C)
    rr, ri, ir, ii = gram[..., :c, :c], gram[..., :c, c:], gram[..., c:, :c], gram[..., c:, c:]
    outer = torch.complex(rr + ii, ir - ri)  # sum_n y_c conj(y_d)
    weight = torch.diagonal(rr + ii, dim1=-2, dim2=-1).sum(-1) / c  # sum_n v_j
    return outer / (weight[..., None, None] + eps)


def _solve(cxx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``cxx^-1 x`` per coefficient, planar.

    Args:
        cxx: (B, F, C, C, 2, N) real: the Hermitian positive definite mixture covariance
            of every coefficient (real and imaginary parts along the fifth axis).
        x: (B, F, 2C, N) real, planar.

    Returns:
        (B, F, 2C, N) real, planar.
    """
    c = x.shape[2] // 2
    if c == 1:
        return x / cxx[:, :, 0, 0, 0][:, :, None]
    if c == 2:  # [[p, q], [q*, r]]^-1 = [[r, -q], [-q*, p]] / (p r - |q|^2)
        p, r = cxx[:, :, 0, 0, 0], cxx[:, :, 1, 1, 0]
        qr, qi = cxx[:, :, 0, 1, 0], cxx[:, :, 0, 1, 1]
        det = p * r - qr.square() - qi.square()
        x0r, x1r, x0i, x1i = x.unbind(2)
        z = (
            r * x0r - qr * x1r + qi * x1i,  # r x0 - q x1
            p * x1r - qr * x0r - qi * x0i,  # p x1 - q* x0
            r * x0i - qr * x1i - qi * x1r,
            p * x1i - qr * x0i + qi * x0r,
        )
        return torch.stack(z, 2) / det[:, :, None]
    a = torch.view_as_complex(cxx.permute(0, 1, 5, 2, 3, 4).contiguous())  # (B, F, N, C, C)
    xc = torch.complex(x[:, :, :c], x[:, :, c:]).transpose(-1, -2)[..., None]  # (B, F, N, C, 1)
    z = torch.linalg.solve(a, xc)[..., 0].transpose(-1, -2)  # (B, F, C, N)
    return torch.cat([z.real, z.imag], 2)


def _filter(y: torch.Tensor, x: torch.Tensor, r: torch.Tensor, eps: float) -> torch.Tensor:
    """One Wiener filtering of a batch of frames, planar.

    Args:
        y: (B, F, J, 2C, N) current estimates (they give the powers ``v_j``).
        x: (B, F, 2C, N) mixture.
        r: (B, F, J, C, C) complex spatial covariances.

    Returns:
        (B, F, J, 2C, N): ``v_j R_j (sum_k v_k R_k + eps I)^-1 x``.
    """
    b, f, j, c2, n = y.shape
    c = c2 // 2
    # C v_j, the power summed over the channels, goes with R_j / C
    power = y.square().sum(3)  # (B, F, J, N)
    r = r / c
    entries = torch.view_as_real(r).reshape(b, f, j, 2 * c * c).transpose(-1, -2)
    cxx = (entries @ power).reshape(b, f, c, c, 2, n)  # sum_j v_j R_j, (B, F, C, C, 2, N)
    for k in range(c):
        cxx[:, :, k, k, 0] += eps
    z = _solve(cxx, x)  # (B, F, 2C, N)
    real = torch.cat(  # R_j as the real matrix [[Re, -Im], [Im, Re]], (B, F, J, 2C, 2C)
        [torch.cat([r.real, -r.imag], -1), torch.cat([r.imag, r.real], -1)], -2
    )
    out = real.reshape(b, f, j * c2, c2) @ z  # (B, F, J * 2C, N)
    return out.reshape(b, f, j, c2, n) * power[:, :, :, None]


def wiener_block(
    estimates: torch.Tensor,
    mixture: torch.Tensor,
    iterations: int = 1,
    eps: float = 1e-10,
    batch_coefficients: int | None = BATCH_COEFFICIENTS,
) -> torch.Tensor:
    """Refine one block.

    Args:
        estimates: (nb_samples, nb_targets, nb_channels, rows, slices, time) complex.
        mixture: (nb_samples, nb_channels, rows, slices, time) complex.
        iterations: EM iterations (0: the estimates unchanged).
        eps: regularisation of the covariances.
        batch_coefficients: coefficients per target and channel filtered at once (whole
            frames of the block, at least one), which bounds the working memory;
            ``None``: the whole block at once.

    Returns:
        refined estimates, same shape as ``estimates``.
    """
    batch_coefficients = _check_batch(batch_coefficients)
    b, j, c, f, s, m = check_block(tuple(estimates.shape), tuple(mixture.shape))
    if iterations == 0:
        return estimates
    y = estimates.reshape(b, j, c, f, s * m)
    x = mixture.reshape(b, c, f, s * m)
    spans = _spans(f, s * m, batch_coefficients)
    for _ in range(iterations):
        r = spatial_covariances(y, eps, batch_coefficients)
        parts = [
            _complex(_filter(_planar(y[..., k], True), _planar(x[..., k], False), r, eps))
            for k in spans
        ]
        y = torch.cat(parts, -1)
    return y.reshape(estimates.shape)


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
