"""Losses that compare transform coefficients (magnitudes or complex values).

Coefficients are ragged: a list of complex blocks
(batch, targets, channels, rows, slices, time_in_block), one per sliCQT time
resolution; a single tensor is taken as a one-block list. Means run over every
element of every block, so each block weighs by its element count.
"""

from __future__ import annotations

import torch

from .base import Blocks, _check_coefs, _Loss, _squared_abs, _weighted_block_mean

__all__ = ["magnitude_mse", "complex_mse", "MSELoss", "ComplexMSELoss"]


def magnitude_mse(est: Blocks, ref: Blocks, name: str = "mse") -> torch.Tensor:
    """Mean of ``(|est| - |ref|) ** 2`` over all elements of all blocks.

    The phase is ignored: a coefficient rotated by any angle costs nothing.

    Args:
        est, ref: blocks of the same shapes, block by block.
        name: the loss named in error messages.

    Shape:
        est, ref: a list of blocks (batch, targets, channels, rows, slices, time_in_block),
            complex or real, or one such tensor.
        Returns a scalar tensor.

    Examples:
        >>> import torch
        >>> from xslicq.losses import magnitude_mse
        >>> ref = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> float(magnitude_mse([1j * r for r in ref], ref))     # phase is free
        0.0
        >>> float(magnitude_mse([0.5 * r for r in ref], ref))
        0.25

    References:
        F.-R. Stöter, S. Uhlich, A. Liutkus, Y. Mitsufuji, "Open-Unmix - A Reference
        Implementation for Music Source Separation", JOSS 2019: the magnitude MSE
        Open-Unmix trains with (on the STFT). S. Hanssian, "Music Demixing with the
        sliCQ Transform", MDX Workshop 2021: the same on the sliCQT.
    """
    est, ref = _check_coefs(est, ref, name)
    return _weighted_block_mean([(e.abs() - r.abs()).square() for e, r in zip(est, ref)])


def complex_mse(est: Blocks, ref: Blocks, name: str = "complex_mse") -> torch.Tensor:
    """Mean of ``|est - ref| ** 2`` over all elements of all blocks.

    Unlike :func:`magnitude_mse`, a wrong phase costs as much as a wrong magnitude.

    Args:
        est, ref: blocks of the same shapes, block by block.
        name: the loss named in error messages.

    Shape:
        est, ref: a list of complex blocks
            (batch, targets, channels, rows, slices, time_in_block), or one such tensor.
        Returns a scalar tensor.

    Examples:
        >>> import torch
        >>> from xslicq.losses import complex_mse
        >>> ref = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> float(complex_mse([1j * r for r in ref], ref))       # |i - 1|^2 = 2
        2.0
        >>> float(complex_mse([r + 0.5 + 0.5j for r in ref], ref))
        0.5

    References:
        D. S. Williamson, Y. Wang, D. Wang, "Complex Ratio Masking for Monaural Speech
        Separation", IEEE/ACM TASLP 24(3), 2016: estimating the real and imaginary
        parts, trained with a squared error on both.
    """
    est, ref = _check_coefs(est, ref, name)
    return _weighted_block_mean([_squared_abs(e - r) for e, r in zip(est, ref)])


class MSELoss(_Loss):
    """MSE of coefficient magnitudes ``|est_coefs|`` vs ``|ref_coefs|`` (:func:`magnitude_mse`).

    Blocks are weighted by their element counts. The waveforms are not used and may
    be ``None``. Parts: ``mse``, ``mask_sum``.

    Args:
        mask_sum: weight of :func:`~xslicq.losses.mask_sum_penalty`.
        eps: unused here; kept so every loss takes it.

    Shape:
        est_coefs, ref_coefs: a list of complex blocks
            (batch, targets, channels, rows, slices, time_in_block).
        masks: a list of real blocks (batch, targets, ...), or ``None``.
        Returns ``(loss, parts)``: a scalar tensor and a dict of detached scalars.

    Examples:
        >>> import torch
        >>> from xslicq.losses import MSELoss
        >>> ref = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> loss, parts = MSELoss()(None, None, [0.5j * r for r in ref], ref)
        >>> float(loss), sorted(parts)
        (0.25, ['mask_sum', 'mse'])

    References:
        F.-R. Stöter, S. Uhlich, A. Liutkus, Y. Mitsufuji, "Open-Unmix - A Reference
        Implementation for Music Source Separation", JOSS 2019.
    """

    name = "mse"

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        mse = magnitude_mse(est_coefs, ref_coefs, self.name)
        return mse, {"mse": mse}


class ComplexMSELoss(_Loss):
    """MSE of complex coefficients: mean of ``|est_coefs - ref_coefs| ** 2``.

    See :func:`complex_mse`. Blocks are weighted by their element counts. The waveforms
    are not used and may be ``None``. Parts: ``complex_mse``, ``mask_sum``.

    Args:
        mask_sum: weight of :func:`~xslicq.losses.mask_sum_penalty`.
        eps: unused here; kept so every loss takes it.

    Shape:
        est_coefs, ref_coefs: a list of complex blocks
            (batch, targets, channels, rows, slices, time_in_block).
        masks: a list of real blocks (batch, targets, ...), or ``None``.
        Returns ``(loss, parts)``: a scalar tensor and a dict of detached scalars.

    Examples:
        >>> import torch
        >>> from xslicq.losses import ComplexMSELoss
        >>> ref = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> loss, parts = ComplexMSELoss()(None, None, [1j * r for r in ref], ref)
        >>> float(loss), sorted(parts)
        (2.0, ['complex_mse', 'mask_sum'])

    References:
        D. S. Williamson, Y. Wang, D. Wang, "Complex Ratio Masking for Monaural Speech
        Separation", IEEE/ACM TASLP 24(3), 2016.
    """

    name = "complex_mse"

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        mse = complex_mse(est_coefs, ref_coefs, self.name)
        return mse, {"complex_mse": mse}
