"""What every loss shares: the input format, its checks, and the mask-sum regulariser.

Shapes (``B`` batch, ``J`` targets, ``C`` channels, ``T`` samples)::

    est_wave, ref_wave   (B, J, C, T) real waveforms per target
    est_coefs, ref_coefs list of complex blocks (B, J, C, rows, slices, time_in_block),
                         one per sliCQT time resolution (the ragged format of
                         :class:`xslicq.transform.SliCQT`, with a target axis); a
                         single tensor is taken as a one-block list
    masks                list of real blocks (B, J, C, rows, slices, time_in_block),
                         or one tensor with the target axis at dim 1

Every loss is a :class:`_Loss`: an ``nn.Module`` whose ``forward(est_wave, ref_wave,
est_coefs=None, ref_coefs=None, masks=None)`` returns ``(loss, parts)``, a scalar
tensor to minimise and a dict of detached scalar tensors for logging. Parts keyed by
a loss name hold that (unweighted) loss term; parts ending in ``_db`` hold ratios in
dB. Every loss also takes ``mask_sum``, the weight of :func:`mask_sum_penalty`, which
is logged as part ``mask_sum`` whenever masks are given.

Units, so that a weight means what it says: every term is either in dB (``sdr_mix``,
``sisdr``, ``bss_mix``) or a relative energy, an error energy divided by its reference's
(``mse``, ``complex_mse``); never a raw energy, whose size depends on the audio's level
and on the transform's normalisation (a mean squared error of sliCQT coefficients is
~1e-6 on 0.05-0.3-amplitude audio, of STFT coefficients ~20). A weight ``w`` on a term
thus means: one unit of it (a dB, or a relative energy of 1) counts ``w`` units of the
loss's main term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..transform.backend import squared_magnitude

Blocks = Sequence[torch.Tensor] | torch.Tensor

__all__ = ["Blocks", "mask_sum_penalty"]


# --------------------------------------------------------------------------- checks


def _check_same_shape(est: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    if tuple(est.shape) != tuple(ref.shape):
        raise ValueError(
            f"{what}: est shape {tuple(est.shape)} does not match ref shape {tuple(ref.shape)}"
        )


def _check_waves(est: torch.Tensor | None, ref: torch.Tensor | None, name: str) -> None:
    if est is None or ref is None:
        raise ValueError(
            f"loss {name!r} needs est_wave and ref_wave "
            f"(batch, targets, channels, samples), got None"
        )
    _check_same_shape(est, ref, f"loss {name!r} waveforms")
    if est.ndim != 4:
        raise ValueError(
            f"loss {name!r}: waveforms must be (batch, targets, channels, "
            f"samples), got shape {tuple(est.shape)}"
        )
    if est.is_complex() or ref.is_complex():
        raise ValueError(f"loss {name!r}: waveforms must be real, got {est.dtype} and {ref.dtype}")


def _as_blocks(x: Blocks) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def _check_coefs(
    est: Blocks | None, ref: Blocks | None, name: str
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if est is None or ref is None:
        missing = " and ".join(n for n, v in (("est_coefs", est), ("ref_coefs", ref)) if v is None)
        raise ValueError(
            f"loss {name!r} compares transform coefficients and needs "
            f"est_coefs and ref_coefs, but {missing} is None"
        )
    est, ref = _as_blocks(est), _as_blocks(ref)
    if len(est) != len(ref) or not est:
        raise ValueError(
            f"loss {name!r}: est_coefs has {len(est)} blocks and ref_coefs "
            f"has {len(ref)}; they must have the same number, at least one"
        )
    for i, (e, r) in enumerate(zip(est, ref)):
        _check_same_shape(e, r, f"loss {name!r} coefficient block {i}")
    return est, ref


# ---------------------------------------------------------------------- reductions


def _energy(x: torch.Tensor) -> torch.Tensor:
    """Sum of squares over the last two axes (channels, samples)."""
    return x.square().sum(dim=(-2, -1))


def _weighted_block_mean(
    values: list[torch.Tensor], weights: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """Mean over all elements of all blocks (blocks weighted by element count), or the
    mean weighted by ``weights`` (blocks of the same shapes; 0 if they are all 0)."""
    if weights is None:
        total = sum(v.sum() for v in values)
        count = sum(v.numel() for v in values)
        return total / count
    total = sum((w * v).sum() for w, v in zip(weights, values))
    norm = sum(w.sum() for w in weights)
    return total / norm.clamp_min(torch.finfo(norm.dtype).tiny)


SILENCE_FLOOR = 1e-3
"""Relative-energy floor for silent references (-30 dB): a reference quieter than this
fraction of the batch's mean reference energy (per item and target) counts as that loud,
so a silent target's relative error stays finite."""


def _per_target_energy(blocks: list[torch.Tensor], name: str) -> torch.Tensor:
    """(batch, targets) sums of ``|x|^2`` over every other axis of every block."""
    for i, b in enumerate(blocks):
        if b.ndim < 2:
            raise ValueError(
                f"loss {name!r}: block {i} must be (batch, targets, ...), got shape "
                f"{tuple(b.shape)}"
            )
    return sum(squared_magnitude(b).reshape(b.shape[0], b.shape[1], -1).sum(-1) for b in blocks)


def _relative_energy(
    error: torch.Tensor, reference: torch.Tensor, floor: float = SILENCE_FLOOR
) -> torch.Tensor:
    """``error / max(reference, floor * mean(reference))``, elementwise: error energies
    over reference energies, both (batch, targets); the same for signals scaled by any
    constant, exactly 0 for a zero error (also for an all-silent batch)."""
    den = torch.maximum(reference, floor * reference.mean())
    return error / den.clamp_min(torch.finfo(den.dtype).tiny)


# --------------------------------------------------------------------- regulariser


def mask_sum_penalty(masks: Blocks, weights: Blocks | None = None) -> torch.Tensor:
    """How far the masks are from splitting the mixture without loss or gain.

    The mean of ``(sum over targets of masks - 1) ** 2`` over all elements of all
    blocks, weighted by ``weights``: the losses pass the mixture's energy at each
    coefficient, ``|sum over targets of ref_coefs| ** 2``, which makes the penalty a
    relative energy, ``|sum of estimates - mixture|^2 / |mixture|^2`` for estimates
    that are masked mixture coefficients (0 when the masks sum to one wherever there
    is sound; 0.25 when they sum to 1.5 everywhere). Masks over silent coefficients,
    which change no estimate, cost nothing then. Without weights
    every element counts the same (blocks weighted by their element counts); that
    plain mean spreads its gradient over every coefficient, silent ones included, and
    on audio whose energy sits in few coefficients (tones) it is ~1/13 of the weighted
    one's.

    Shape:
        masks: a list of real blocks (batch, targets, ...), the target axis at dim 1,
            or one such tensor.
        weights: ``None``, or blocks of the masks' shapes without the target axis
            (batch, ...), >= 0.
        Returns a scalar tensor.

    Examples:
        >>> import torch
        >>> from xslicq.losses import mask_sum_penalty
        >>> float(mask_sum_penalty(torch.full((1, 4, 2, 3, 5), 0.25)))   # sums to 1
        0.0
        >>> masks = [torch.full((1, 4, 2, 1, 5), 0.5),     # sums to 2
        ...          torch.full((1, 4, 2, 3, 5), 0.25)]    # sums to 1
        >>> float(mask_sum_penalty(masks))                 # 1 in a quarter of the elements
        0.25
        >>> energy = [torch.zeros(1, 2, 1, 5), torch.ones(1, 2, 3, 5)]
        >>> float(mask_sum_penalty(masks, energy))         # the first block is silent
        0.0

    References:
        S. Wisdom, J. R. Hershey, K. Wilson, J. Thorpe, M. Chinen, B. Patton,
        R. A. Saurous, "Differentiable Consistency Constraints for Improved Deep Speech
        Enhancement", ICASSP 2019: estimates that add up to the mixture (enforced there
        by a projection; asked for here by a soft penalty).
    """
    blocks = _as_blocks(masks)
    if not blocks:
        raise ValueError("mask_sum: masks is an empty list")
    for i, m in enumerate(blocks):
        if m.ndim < 2:
            raise ValueError(
                f"mask_sum: mask block {i} must have a target axis at dim 1, "
                f"got shape {tuple(m.shape)}"
            )
    if weights is not None:
        weights = _as_blocks(weights)
        if len(weights) != len(blocks):
            raise ValueError(
                f"mask_sum: {len(blocks)} mask blocks but {len(weights)} weight blocks"
            )
        for i, (m, w) in enumerate(zip(blocks, weights)):
            expected = (m.shape[0],) + tuple(m.shape[2:])
            if tuple(w.shape) != expected:
                raise ValueError(
                    f"mask_sum: weight block {i} has shape {tuple(w.shape)}; mask block "
                    f"{i} of shape {tuple(m.shape)} needs {expected} (no target axis)"
                )
    return _weighted_block_mean([squared_magnitude(m.sum(dim=1) - 1) for m in blocks], weights)


# ------------------------------------------------------------------------ base class


class _Loss(torch.nn.Module):
    """Base of every loss: the loss's own terms plus the mask-sum regulariser.

    A subclass sets ``name`` (the name of its file in ``conf/loss/``) and ``in_db``
    (whether its terms are in dB) and implements :meth:`terms`; ``forward`` checks
    ``masks`` and adds ``mask_sum`` times :func:`mask_sum_penalty` ``P`` (weighted by
    the mixture's energy when ``ref_coefs`` are given) in the loss's units: ``P``
    itself for a loss of relative energies, ``10 log10(P + eps)`` for a loss in dB
    (minus the SDR of the estimates' sum against the mixture), so one unit of the
    penalty counts as one unit of the main term in both. Part ``mask_sum`` logs ``P``.

    Args:
        mask_sum: weight (>= 0) of the mask-sum penalty in the loss: one dB (or relative
            energy) of it counts ``mask_sum`` dB (or relative energies) of the main term;
            with 0 the penalty is only logged (when masks are given).
        eps: small positive number that keeps ratios and solves finite.

    Shape:
        est_wave, ref_wave: (batch, targets, channels, samples) real, or ``None`` for
            losses that only compare coefficients.
        est_coefs, ref_coefs: a list of complex blocks
            (batch, targets, channels, rows, slices, time_in_block), or ``None`` for
            losses that only compare waveforms.
        masks: a list of real blocks (batch, targets, ...), or ``None``.
        Returns ``(loss, parts)``: a scalar tensor and a dict of detached scalars.

    Examples:
        >>> import torch
        >>> class L1(_Loss):
        ...     name = "l1"
        ...     def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        ...         l1 = (est_wave - ref_wave).abs().mean()
        ...         return l1, {"l1": l1}
        >>> ref = torch.ones(1, 2, 1, 4)
        >>> loss, parts = L1(mask_sum=1.0)(0.5 * ref, ref, masks=torch.ones(1, 2, 1, 4))
        >>> float(loss), sorted(parts)
        (1.5, ['l1', 'mask_sum'])

    References:
        Asteroid (M. Pariente et al., "Asteroid: the PyTorch-based audio source
        separation toolkit for researchers", Interspeech 2020) for the layout: one
        module per loss family, a shared base.
    """

    name = "loss"
    in_db = False
    # True when the loss reads only the magnitudes of ``est_coefs``: a caller may then pass
    # real values whose absolute values are the magnitudes instead of complex coefficients
    # (the system passes mask * |mixture|)
    magnitudes_only = False

    def __init__(self, mask_sum: float = 0.0, eps: float = 1e-8):
        super().__init__()
        if not (math.isfinite(mask_sum) and mask_sum >= 0):
            raise ValueError(
                f"{self.name}: mask_sum must be a finite weight >= 0, got {mask_sum!r}"
            )
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"{self.name}: eps must be a finite number > 0, got {eps!r}")
        self.mask_sum = float(mask_sum)
        self.eps = float(eps)

    def terms(
        self, est_wave, ref_wave, est_coefs, ref_coefs
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss without the regulariser: ``(scalar, parts)``."""
        raise NotImplementedError

    def forward(
        self,
        est_wave: torch.Tensor | None,
        ref_wave: torch.Tensor | None,
        est_coefs: Blocks | None = None,
        ref_coefs: Blocks | None = None,
        masks: Blocks | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args:
            est_wave, ref_wave: (batch, targets, channels, samples).
            est_coefs, ref_coefs: ragged blocks (batch, targets, channels, rows, slices, time).
            masks: ragged real blocks (batch, targets, channels, rows, slices, time),
                the shapes of ``ref_coefs`` when those are given.
        Returns:
            ``(loss, parts)``: scalar loss and a dict of detached scalar parts.
        """
        if self.mask_sum > 0 and masks is None:
            raise ValueError(
                f"loss {self.name!r} has mask_sum={self.mask_sum} > 0 and needs masks, got None"
            )
        loss, parts = self.terms(est_wave, ref_wave, est_coefs, ref_coefs)
        if masks is not None:
            weights = None
            if ref_coefs is not None:
                # the mixture's energy per coefficient: the references add up to it
                weights = [squared_magnitude(r.detach().sum(dim=1)) for r in _as_blocks(ref_coefs)]
            penalty = mask_sum_penalty(masks, weights)
            if self.mask_sum > 0:
                term = 10.0 * torch.log10(penalty + self.eps) if self.in_db else penalty
                loss = loss + self.mask_sum * term
        else:
            penalty = loss.new_zeros(())
        parts["mask_sum"] = penalty
        return loss, {k: v.detach() for k, v in parts.items()}

    def extra_repr(self) -> str:
        return f"mask_sum={self.mask_sum}, eps={self.eps}"
