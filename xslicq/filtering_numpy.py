"""Multichannel Wiener-EM refinement in NumPy: the torch-free twin of
:mod:`xslicq.filtering`, for the separator of an exported network
(:mod:`xslicq.inference`).

The same model and the same iteration, step for step (see :mod:`xslicq.filtering`): per
target ``j`` a power ``v_j`` per coefficient and a spatial covariance ``R_j`` per frequency
row; each iteration re-estimates both from the current estimates and applies
``y_j = v_j R_j (sum_k v_k R_k)^-1 x`` to the mixture ``x``. Equal to the torch version to
float tolerance (tested).
"""

from __future__ import annotations

import numpy as np


def wiener_block(
    estimates: np.ndarray, mixture: np.ndarray, iterations: int = 1, eps: float = 1e-10
) -> np.ndarray:
    """Refine one block.

    Args:
        estimates: (nb_samples, nb_targets, nb_channels, rows, slices, time) complex.
        mixture: (nb_samples, nb_channels, rows, slices, time) complex.

    Returns:
        refined estimates, same shape and dtype as ``estimates``.
    """
    y = estimates
    c = mixture.shape[1]
    x = np.moveaxis(mixture, 1, -1)  # (B, F, S, M, C)
    eye = np.eye(c, dtype=mixture.dtype)
    for _ in range(iterations):
        yj = np.moveaxis(y, 2, -1)  # (B, J, F, S, M, C)
        v = (np.abs(yj) ** 2).mean(-1)  # (B, J, F, S, M)
        outer = np.einsum("bjfsmc,bjfsmd->bjfcd", yj, yj.conj())
        r = outer / (v.sum((3, 4))[..., None, None] + eps)  # (B, J, F, C, C)
        cov = np.einsum("bjfsm,bjfcd->bjfsmcd", v.astype(r.dtype), r)  # (B, J, F, S, M, C, C)
        cxx = cov.sum(1) + eps * eye  # (B, F, S, M, C, C)
        gain = cov @ np.linalg.inv(cxx)[:, None]  # (B, J, F, S, M, C, C)
        yj = (gain @ x[:, None, ..., None])[..., 0]  # (B, J, F, S, M, C)
        y = np.moveaxis(yj, -1, 2).astype(estimates.dtype, copy=False)
    return y


def wiener(estimates: list, mixture: list, iterations: int = 1) -> list:
    """Refine ragged estimates ``[(B, J, C, rows, S, M), ...]`` against the mixture blocks."""
    return [wiener_block(e, x, iterations) for e, x in zip(estimates, mixture)]
