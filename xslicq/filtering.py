"""Multichannel Wiener-EM refinement of target estimates in the sliCQT domain.

Each target ``j`` is modelled, per coefficient, as a zero-mean complex Gaussian with a
power ``v_j`` (varying over frequency and time) and a spatial covariance ``R_j`` (one
``C x C`` matrix per frequency row). One EM iteration re-estimates ``v_j`` and ``R_j``
from the current estimates and applies the multichannel Wiener filter
``y_j = v_j R_j (sum_k v_k R_k)^-1 x`` to the mixture ``x``. Works on every block of
the ragged coefficients independently and is differentiable (torch).
"""

from __future__ import annotations

import torch


def wiener_block(
    estimates: torch.Tensor, mixture: torch.Tensor, iterations: int = 1, eps: float = 1e-10
) -> torch.Tensor:
    """Refine one block.

    Args:
        estimates: (nb_samples, nb_targets, nb_channels, rows, slices, time) complex.
        mixture: (nb_samples, nb_channels, rows, slices, time) complex.

    Returns:
        refined estimates, same shape as ``estimates``.
    """
    y = estimates
    c = mixture.shape[1]
    x = mixture.permute(0, 2, 3, 4, 1)  # (B, F, S, M, C)
    eye = torch.eye(c, dtype=mixture.dtype, device=mixture.device)
    for _ in range(iterations):
        yj = y.permute(0, 1, 3, 4, 5, 2)  # (B, J, F, S, M, C)
        v = (yj.abs() ** 2).mean(-1)  # (B, J, F, S, M)
        outer = torch.einsum("bjfsmc,bjfsmd->bjfcd", yj, yj.conj())
        r = outer / (v.sum((3, 4))[..., None, None] + eps)  # (B, J, F, C, C)
        cov = torch.einsum("bjfsm,bjfcd->bjfsmcd", v.to(r.dtype), r)  # (B, J, F, S, M, C, C)
        cxx = cov.sum(1) + eps * eye  # (B, F, S, M, C, C)
        gain = cov @ torch.linalg.inv(cxx)[:, None]  # (B, J, F, S, M, C, C)
        yj = (gain @ x[:, None, ..., None])[..., 0]  # (B, J, F, S, M, C)
        y = yj.permute(0, 1, 5, 2, 3, 4)
    return y


def wiener(estimates: list, mixture: list, iterations: int = 1) -> list:
    """Refine ragged estimates ``[(B, J, C, rows, S, M), ...]`` against the mixture blocks."""
    return [wiener_block(e, x, iterations) for e, x in zip(estimates, mixture)]
