"""Losses that compare transform coefficients (magnitudes or complex values).

Coefficients are ragged: a list of complex blocks
(batch, targets, channels, rows, slices, time_in_block), one per sliCQT time
resolution; a single tensor is taken as a one-block list. Errors are relative
energies: per item and target, the squared error summed over every element of every
block, divided by the reference's energy (floored for silent references, see
:func:`magnitude_nmse`). So a loss's value does not depend on the audio's level or on
the transform's normalisation (a raw mean squared error is ~1e-6 for sliCQT and ~20
for STFT coefficients of the same 0.05-0.3-amplitude audio), and 1 means an error as
large as the reference.
"""

from __future__ import annotations

import torch

from ..transform.backend import magnitude
from .base import (
    SILENCE_FLOOR,
    Blocks,
    _check_coefs,
    _Loss,
    _per_target_energy,
    _relative_energy,
)

__all__ = ["magnitude_nmse", "complex_nmse", "MSELoss", "ComplexMSELoss"]


def magnitude_nmse(
    est: Blocks, ref: Blocks, name: str = "mse", floor: float = SILENCE_FLOOR
) -> torch.Tensor:
    """Normalised MSE of magnitudes: ``sum (|est| - |ref|) ** 2 / sum |ref| ** 2`` per item
    and target, the sums over every other axis of every block.

    The phase is ignored: a coefficient rotated by any angle costs nothing. A reference
    quieter than ``floor`` times the mean reference energy of the batch (per item and
    target) is taken as that loud, so a silent target gives a finite error. Scaling
    ``est`` and ``ref`` by one constant changes nothing; ``est == ref`` gives exactly 0.

    Args:
        est, ref: blocks of the same shapes, block by block.
        name: the loss named in error messages.
        floor: relative energy floor of the references (default 1e-3, -30 dB).

    Shape:
        est, ref: a list of blocks (batch, targets, channels, rows, slices, time_in_block),
            complex or real, or one such tensor.
        Returns (batch, targets).

    Examples:
        >>> import torch
        >>> from xslicq.losses import magnitude_nmse
        >>> ref = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> magnitude_nmse([1j * r for r in ref], ref)             # phase is free
        tensor([[0., 0., 0., 0.]])
        >>> magnitude_nmse([0.5 * r for r in ref], ref)            # 1/4 of the energy
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]])
        >>> magnitude_nmse([50 * r for r in ref], [100 * r for r in ref])   # any level
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]])

    References:
        F.-R. Stöter, S. Uhlich, A. Liutkus, Y. Mitsufuji, "Open-Unmix - A Reference
        Implementation for Music Source Separation", JOSS 2019: the magnitude MSE
        Open-Unmix trains with (on the STFT; one model per target, so per target as
        here). S. Hanssian, "Music Demixing with the sliCQ Transform", MDX Workshop
        2021: the same on the sliCQT.
    """
    est, ref = _check_coefs(est, ref, name)
    ref = [magnitude(r) for r in ref]
    error = _per_target_energy([magnitude(e) - r for e, r in zip(est, ref)], name)
    return _relative_energy(error, _per_target_energy(ref, name), floor)


def complex_nmse(
    est: Blocks, ref: Blocks, name: str = "complex_mse", floor: float = SILENCE_FLOOR
) -> torch.Tensor:
    """Normalised MSE of complex values: ``sum |est - ref| ** 2 / sum |ref| ** 2`` per item
    and target, the sums over every other axis of every block.

    Unlike :func:`magnitude_nmse`, a wrong phase costs as much as a wrong magnitude. The
    floor for silent references is that of :func:`magnitude_nmse`.

    Args:
        est, ref: blocks of the same shapes, block by block.
        name: the loss named in error messages.
        floor: relative energy floor of the references (default 1e-3, -30 dB).

    Shape:
        est, ref: a list of complex blocks
            (batch, targets, channels, rows, slices, time_in_block), or one such tensor.
        Returns (batch, targets).

    Examples:
        >>> import torch
        >>> from xslicq.losses import complex_nmse
        >>> ref = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> complex_nmse([1j * r for r in ref], ref)               # |i - 1|^2 = 2
        tensor([[2., 2., 2., 2.]])
        >>> complex_nmse([r + 0.5 + 0.5j for r in ref], ref)
        tensor([[0.5000, 0.5000, 0.5000, 0.5000]])

    References:
        D. S. Williamson, Y. Wang, D. Wang, "Complex Ratio Masking for Monaural Speech
        Separation", IEEE/ACM TASLP 24(3), 2016: estimating the real and imaginary
        parts, trained with a squared error on both.
    """
    est, ref = _check_coefs(est, ref, name)
    error = _per_target_energy([e - r for e, r in zip(est, ref)], name)
    return _relative_energy(error, _per_target_energy(ref, name), floor)


class MSELoss(_Loss):
    """Normalised MSE of coefficient magnitudes (:func:`magnitude_nmse`), averaged over
    batch and targets.

    A relative energy: 0 for exact magnitudes, 1 for an error as large as the
    reference (as for an estimate of zeros). The waveforms are not used and may be
    ``None``. Parts: ``mse``, ``mask_sum``.

    Args:
        mask_sum: weight of :func:`~xslicq.losses.mask_sum_penalty`, itself a relative
            energy: ``mask_sum=1`` weighs a mixture error as much as a target error.
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
    magnitudes_only = True  # its coefficient term is magnitude_nmse

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        mse = magnitude_nmse(est_coefs, ref_coefs, self.name).mean()
        return mse, {"mse": mse}


class ComplexMSELoss(_Loss):
    """Normalised MSE of complex coefficients (:func:`complex_nmse`), averaged over batch
    and targets.

    A relative energy, like :class:`MSELoss`, but a wrong phase costs too. The
    waveforms are not used and may be ``None``. Parts: ``complex_mse``, ``mask_sum``.

    Args:
        mask_sum, eps: as for :class:`MSELoss`.

    Shape:
        As for :class:`MSELoss`; the estimates must be complex coefficients.

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
        mse = complex_nmse(est_coefs, ref_coefs, self.name).mean()
        return mse, {"complex_mse": mse}
