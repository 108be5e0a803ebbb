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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

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


def _weighted_block_mean(values: list[torch.Tensor]) -> torch.Tensor:
    """Mean over all elements of all blocks (blocks weighted by element count)."""
    total = sum(v.sum() for v in values)
    count = sum(v.numel() for v in values)
    return total / count


def _squared_abs(x: torch.Tensor) -> torch.Tensor:
    # |x|^2 without a square root, so the gradient is smooth at zero
    if x.is_complex():
        return x.real.square() + x.imag.square()
    return x.square()


# --------------------------------------------------------------------- regulariser


def mask_sum_penalty(masks: Blocks) -> torch.Tensor:
    """How far the masks are from splitting the mixture without loss or gain.

    ``mean((sum over targets of masks - 1) ** 2)`` over all elements of all blocks,
    blocks weighted by their element counts. Masks that sum to one over the targets
    give estimates that add up to the mixture.

    Shape:
        masks: a list of real blocks (batch, targets, ...), the target axis at dim 1,
            or one such tensor.
        Returns a scalar tensor.

    Examples:
        >>> import torch
        >>> from xslicq.losses import mask_sum_penalty
        >>> float(mask_sum_penalty(torch.full((1, 4, 2, 3, 5), 0.25)))   # sums to 1
        0.0
        >>> float(mask_sum_penalty([torch.full((1, 4, 2, 1, 5), 0.5),    # sums to 2
        ...                         torch.full((1, 4, 2, 3, 5), 0.25)]))  # sums to 1
        0.25

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
    return _weighted_block_mean([_squared_abs(m.sum(dim=1) - 1) for m in blocks])


# ------------------------------------------------------------------------ base class


class _Loss(torch.nn.Module):
    """Base of every loss: the loss's own terms plus the mask-sum regulariser.

    A subclass sets ``name`` (the name of its file in ``conf/loss/``) and implements
    :meth:`terms`; ``forward`` checks ``masks`` and adds ``mask_sum`` times
    :func:`mask_sum_penalty`.

    Args:
        mask_sum: weight (>= 0) of :func:`mask_sum_penalty` in the loss; with 0 the
            penalty is only logged (when masks are given).
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
            masks: ragged real blocks (batch, targets, channels, rows, slices, time).
        Returns:
            ``(loss, parts)``: scalar loss and a dict of detached scalar parts.
        """
        if self.mask_sum > 0 and masks is None:
            raise ValueError(
                f"loss {self.name!r} has mask_sum={self.mask_sum} > 0 and needs masks, got None"
            )
        loss, parts = self.terms(est_wave, ref_wave, est_coefs, ref_coefs)
        if masks is not None:
            penalty = mask_sum_penalty(masks)
            if self.mask_sum > 0:
                loss = loss + self.mask_sum * penalty
        else:
            penalty = loss.new_zeros(())
        parts["mask_sum"] = penalty
        return loss, {k: v.detach() for k, v in parts.items()}

    def extra_repr(self) -> str:
        return f"mask_sum={self.mask_sum}, eps={self.eps}"
