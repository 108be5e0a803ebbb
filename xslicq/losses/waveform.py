"""Losses that compare waveforms by their signal-to-distortion ratio (SDR, SI-SDR).

:func:`sdr` and :func:`sisdr` reduce over (channels, samples) only, never over batch
or targets. :class:`SDRMixLoss` scores the sums of target combinations
(CrossNet-Open-Unmix) and adds a transform-domain magnitude term, also in dB;
:class:`SISDRLoss` scores every target alone.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import torch

from .base import _check_same_shape, _check_waves, _energy, _Loss
from .spectral import magnitude_nmse

__all__ = ["sdr", "sisdr", "combination_energies", "SDRMixLoss", "SISDRLoss"]


def sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Signal-to-distortion ratio in dB over the last two axes (channels, samples).

    ``10 * log10((||ref||^2 + eps) / (||ref - est||^2 + eps))``; identical signals
    give ``10 * log10((||ref||^2 + eps) / eps)`` and ``est = 0`` gives 0 dB. Any
    error counts, a wrong gain included.

    Args:
        est, ref: real tensors of the same shape.
        eps: added to both energies, so silence and perfect estimates stay finite.

    Shape:
        est, ref: (..., channels, samples).
        Returns (...): one SDR in dB per leading index.

    Examples:
        >>> import torch
        >>> from xslicq.losses import sdr
        >>> ref = torch.ones(1, 2, 4)                  # (targets, channels, samples)
        >>> sdr(0.9 * ref, ref).round(decimals=2)      # error energy 1 / 100 of ref's
        tensor([20.])
        >>> float(sdr(torch.zeros_like(ref), ref))
        0.0

    References:
        E. Vincent, R. Gribonval, C. Févotte, "Performance Measurement in Blind Audio
        Source Separation", IEEE TASLP 14(4), 2006: the SDR. This is its plain form
        (no projection), the one CrossNet-Open-Unmix trains with.
    """
    _check_same_shape(est, ref, "sdr")
    if est.ndim < 2:
        raise ValueError(f"sdr: inputs need (..., channels, samples), got shape {tuple(est.shape)}")
    return 10.0 * torch.log10((_energy(ref) + eps) / (_energy(ref - est) + eps))


def sisdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last two axes (channels, samples).

    Both signals are made zero-mean along samples (per channel); the target is
    the orthogonal projection of ``est`` on ``ref`` (one scale for all channels),
    the noise is the rest: ``10 * log10((||target||^2 + eps) / (||noise||^2 + eps))``.
    A gain or an offset on ``est`` changes nothing.

    Args:
        est, ref: real tensors of the same shape.
        eps: added to the projection's numerator and denominator and to both energies.

    Shape:
        est, ref: (..., channels, samples).
        Returns (...): one SI-SDR in dB per leading index.

    Examples:
        >>> import torch
        >>> from xslicq.losses import sisdr
        >>> ref = torch.tensor([[1.0, -1.0, 1.0, -1.0]])     # (channels, samples)
        >>> noise = torch.tensor([[0.1, 0.1, -0.1, -0.1]])   # orthogonal, 1 / 100 energy
        >>> round(float(sisdr(3 * (ref + noise) + 0.7, ref)), 2)
        20.0

    References:
        J. Le Roux, S. Wisdom, H. Erdogan, J. R. Hershey, "SDR - Half-baked or Well
        Done?", ICASSP 2019: the scale-invariant SDR and why a plain SDR can be gamed
        by the gain.
    """
    _check_same_shape(est, ref, "sisdr")
    if est.ndim < 2:
        raise ValueError(
            f"sisdr: inputs need (..., channels, samples), got shape {tuple(est.shape)}"
        )
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = ((est * ref).sum(dim=(-2, -1), keepdim=True) + eps) / (
        _energy(ref)[..., None, None] + eps
    )
    target = scale * ref
    return 10.0 * torch.log10((_energy(target) + eps) / (_energy(est - target) + eps))


def combination_energies(x: torch.Tensor, combos: torch.Tensor) -> torch.Tensor:
    """Energies of sums of targets, ``||sum_{j in k} x_j||^2`` for every combination ``k``.

    Computed from the targets' Gram matrix ``G_ij = <x_i, x_j>`` (in float64) as
    ``m_k^T G m_k``, so no summed signal is ever built: one product of the (targets,
    samples) matrix with itself instead of a copy of the audio per combination.

    Args:
        x: (batch, targets, channels, samples) real.
        combos: (combinations, targets) 0/1 float64 matrix
            (:meth:`SDRMixLoss.combination_matrix`).

    Returns:
        (batch, combinations) float64 energies (>= 0).

    Shape:
        x: (batch, targets, channels, samples); combos: (combinations, targets).
        Returns (batch, combinations).

    Examples:
        >>> import torch
        >>> from xslicq.losses import SDRMixLoss, combination_energies
        >>> x = torch.tensor([[[[1.0, 0.0]], [[1.0, 1.0]], [[-1.0, 0.0]]]])  # 3 targets
        >>> combos = SDRMixLoss.combination_matrix(3, torch.float64)        # 1 and 2 of 3
        >>> combination_energies(x, combos).tolist()   # |x0|, |x1|, |x2|, |x0+x1|, ...
        [[1.0, 2.0, 1.0, 5.0, 0.0, 1.0]]

    References:
        R. Sawata, S. Uhlich, S. Takahashi, Y. Mitsufuji, "All for One and One for All:
        Improving Music Separation by Bridging Networks", ICASSP 2021: the combinations.
    """
    flat = x.reshape(x.shape[0], x.shape[1], -1).double()
    gram = flat @ flat.transpose(1, 2)  # (B, J, J)
    return torch.einsum("kj,bji,ki->bk", combos, gram, combos).clamp_min(0.0)


class SDRMixLoss(_Loss):
    """CrossNet-Open-Unmix combination loss: negative SDR of target mixtures, plus the
    magnitude error in dB.

    For ``J`` targets, every combination of 1 .. J-1 targets (only single targets
    when ``J == 1``) is summed on both sides, and the negative :func:`sdr` of the
    sums is averaged over combinations and batch (14 combinations for 4 targets).
    ``weight_freq`` adds the magnitude error of the transform coefficients in dB,
    ``10 log10(magnitude_nmse + eps)`` (:func:`~xslicq.losses.magnitude_nmse`: the
    error energy of the magnitudes over the reference's, per item and target; minus a
    magnitude-only SDR) averaged over batch and targets, so the coefficients are
    needed when it is above 0.

    Both terms are in dB, so ``weight_freq`` is what one dB of magnitude error is
    worth in dB of combination SDR, and the terms' gradients keep their ratio as
    training goes on (a ratio of energies would fade against a dB term: its gradient
    shrinks with the error while a dB term's grows). On 2 s of tone stems (0.05-0.3
    amplitude) with random masks, the freq term's gradient w.r.t. the masks is ~0.15
    of the time term's through the cqlog sliCQT (~0.46 near ideal ratio masks), so
    ``weight_freq=0.1`` changes the gradient by ~1.5-5 % (~3.5 % through bark, ~7 %
    through the STFT: coefficient energies weigh frequencies differently from
    samples).

    Parts: ``sdr_mix`` (negative mean SDR in dB), ``freq_db`` (the magnitude error over
    the reference in dB, lower is better), ``mask_sum``.

    Args:
        weight_time: weight (>= 0) of the negative combination SDR.
        weight_freq: weight (>= 0) of the magnitude error in dB; not both weights 0.
        mask_sum: weight of :func:`~xslicq.losses.mask_sum_penalty`, added in dB:
            ``mask_sum * 10 log10(P + eps)``, minus the SDR of the estimates' sum
            against the mixture (see :class:`~xslicq.losses.base._Loss`).
        eps: see :func:`sdr`; also added to the magnitude error, so equal magnitudes
            give ``10 log10(eps)`` (-80 dB).

    Shape:
        est_wave, ref_wave: (batch, targets, channels, samples) real.
        est_coefs, ref_coefs: a list of complex blocks
            (batch, targets, channels, rows, slices, time_in_block); ``None`` when
            ``weight_freq == 0``.
        masks: a list of real blocks (batch, targets, ...), or ``None``.
        Returns ``(loss, parts)``: a scalar tensor and a dict of detached scalars.

    Examples:
        >>> import torch
        >>> from xslicq.losses import SDRMixLoss
        >>> len(SDRMixLoss.combinations(4))
        14
        >>> ref = torch.ones(1, 4, 2, 8)                   # every combination: 20 dB
        >>> ref_c = [torch.ones(1, 4, 2, 3, 2, 5, dtype=torch.complex64)]
        >>> loss, parts = SDRMixLoss()(0.9 * ref, ref, [0.5 * c for c in ref_c], ref_c)
        >>> round(float(parts["sdr_mix"]), 2), round(float(parts["freq_db"]), 2)
        (-20.0, -6.02)
        >>> round(float(loss), 2)                          # -20 + 0.1 * 10 log10(1 / 4)
        -20.6

    References:
        R. Sawata, S. Uhlich, S. Takahashi, Y. Mitsufuji, "All for One and One for All:
        Improving Music Separation by Bridging Networks", ICASSP 2021
        (CrossNet-Open-Unmix): the mixture-combination loss in the time domain plus a
        frequency-domain term.
    """

    name = "sdr_mix"
    magnitudes_only = True  # its coefficient term is magnitude_nmse
    in_db = True

    def __init__(
        self,
        weight_time: float = 1.0,
        weight_freq: float = 0.1,
        mask_sum: float = 0.0,
        eps: float = 1e-8,
    ):
        super().__init__(mask_sum, eps)
        for n, w in (("weight_time", weight_time), ("weight_freq", weight_freq)):
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"sdr_mix: {n} must be a finite weight >= 0, got {w!r}")
        self.weight_time = float(weight_time)
        self.weight_freq = float(weight_freq)

    @staticmethod
    @cache
    def combinations(nb_targets: int) -> tuple[tuple[int, ...], ...]:
        """Target index combinations the loss sums: sizes 1 .. J-1 (size 1 if J == 1)."""
        if nb_targets < 1:
            raise ValueError(f"sdr_mix: needs at least one target, got {nb_targets}")
        sizes = range(1, max(nb_targets, 2))
        return tuple(c for k in sizes for c in itertools.combinations(range(nb_targets), k))

    @classmethod
    def combination_matrix(cls, nb_targets: int, dtype=torch.float32, device=None) -> torch.Tensor:
        """(combinations, targets) 0/1 matrix; row ``k`` selects combination ``k``."""
        combos = cls.combinations(nb_targets)
        m = torch.zeros(len(combos), nb_targets, dtype=dtype, device=device)
        for k, c in enumerate(combos):
            m[k, list(c)] = 1
        return m

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        loss = None
        parts = {}
        if self.weight_time > 0:
            _check_waves(est_wave, ref_wave, self.name)
            m = self.combination_matrix(est_wave.shape[1], torch.float64, est_wave.device)
            ref_energy = combination_energies(ref_wave, m)
            error_energy = combination_energies(ref_wave - est_wave, m)
            sdrs = 10.0 * torch.log10((ref_energy + self.eps) / (error_energy + self.eps))
            neg_sdr = -sdrs.mean().to(est_wave.dtype)
            loss = self.weight_time * neg_sdr
            parts["sdr_mix"] = neg_sdr
        if self.weight_freq > 0:
            nmse = magnitude_nmse(est_coefs, ref_coefs, self.name)
            freq = (10.0 * torch.log10(nmse + self.eps)).mean()
            loss = self.weight_freq * freq if loss is None else loss + self.weight_freq * freq
            parts["freq_db"] = freq
        if loss is None:
            raise ValueError("sdr_mix: weight_time and weight_freq are both 0")
        parts.setdefault("sdr_mix", loss.new_zeros(()))
        parts.setdefault("freq_db", loss.new_zeros(()))
        return loss, parts

    def extra_repr(self) -> str:
        return (
            f"weight_time={self.weight_time}, weight_freq={self.weight_freq}, "
            + super().extra_repr()
        )


class SISDRLoss(_Loss):
    """Negative SI-SDR (dB) per target in the time domain, averaged over batch and targets.

    Every target is scored alone with :func:`sisdr` (no mixture combinations).
    Parts: ``sisdr`` (the loss, negative mean SI-SDR in dB), ``mask_sum``.

    Args:
        mask_sum: weight of :func:`~xslicq.losses.mask_sum_penalty`, added in dB
            (``mask_sum * 10 log10(P + eps)``, see :class:`~xslicq.losses.base._Loss`).
        eps: see :func:`sisdr`.

    Shape:
        est_wave, ref_wave: (batch, targets, channels, samples) real.
        masks: a list of real blocks (batch, targets, ...), or ``None``.
        Returns ``(loss, parts)``: a scalar tensor and a dict of detached scalars.

    Examples:
        >>> import torch
        >>> from xslicq.losses import SISDRLoss
        >>> ref = torch.tensor([1.0, -1.0, 1.0, -1.0]).expand(1, 2, 1, 4)
        >>> noise = torch.tensor([0.1, 0.1, -0.1, -0.1])      # orthogonal, 1 / 100 energy
        >>> loss, parts = SISDRLoss()(2 * (ref + noise), ref)
        >>> round(float(loss), 2), sorted(parts)
        (-20.0, ['mask_sum', 'sisdr'])

    References:
        J. Le Roux, S. Wisdom, H. Erdogan, J. R. Hershey, "SDR - Half-baked or Well
        Done?", ICASSP 2019.
    """

    name = "sisdr"
    in_db = True

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        _check_waves(est_wave, ref_wave, self.name)
        loss = -sisdr(est_wave, ref_wave, self.eps).mean()
        return loss, {"sisdr": loss}
