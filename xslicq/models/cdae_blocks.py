"""xumx-sliCQ-V2 style baseline: one convolutional denoising autoencoder per block per target.

The network works on the ragged sliCQT blocks directly (no matrix form). Data flow of
:meth:`CDAEBlocks.forward` for block ``i`` (``B`` nb_samples, ``C`` nb_channels,
``R`` rows of the block, ``S`` nb_slices, ``M`` time coefficients per slice of the
block, ``J`` nb_targets, ``h`` hidden)::

    block (B, C, R, S, M)               non-negative mixture magnitudes
      -> (x + shift[r]) * scale[r]        per-row input normalisation of the block, learned
      -> fold_overlap (B, 2C, R, L)        the two copies of every half-slice as channels,
                                          L = (S + 1) * M / 2 (see common.py)
      -> zero-pad R and L to multiples of 2^depth
      -> per target j: CDAE_ij            depth x [conv 4x4 stride 2, GroupNorm, ReLU]
                                          (2C -> h -> 2h ...), then the mirrored transposed
                                          convs back to 2C channels, no skips
      -> crop, unfold_overlap, sigmoid
    masks (B, J, C, R, S, M) in [0, 1]

The first convolution of every CDAE folds the 50% slice overlap in: it runs over the
half-slice time line with both overlapping slices' copies of each column as channels, at
time stride 2 (see :mod:`xslicq.models.common`); the last transposed convolution writes both
copies back and :func:`~xslicq.models.common.unfold_overlap` puts them in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .common import (
    ConvDecoder,
    ConvEncoder,
    PerBinAffine,
    check_input,
    check_positive_int,
    check_power_of_two,
    fold_overlap,
    pad_to_multiple,
    unfold_overlap,
)


class CDAE(nn.Module):
    """One convolutional denoising autoencoder for one block and one target.

    Input (nb_samples, 2 * nb_channels, rows, frames) folded magnitudes, rows and
    frames multiples of ``2 ** depth``; output logits of the same shape.
    """

    def __init__(self, channels: int, hidden: int, depth: int):
        super().__init__()
        widths = [2 * channels] + [hidden * 2**i for i in range(depth)]
        self.encoder = ConvEncoder(widths)
        self.decoder = ConvDecoder(widths, 2 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)[-1])


class CDAEBlocks(nn.Module):
    """Per-block, per-target CDAEs on the ragged sliCQT magnitudes.

    Args:
        block_shapes: ``[(rows_in_block, time_in_block), ...]`` of the transform
            (``SliCQT.block_shapes``); every ``time_in_block`` a power of two >= 2.
        channels: C, audio channels.
        targets: J, separated sources.
        hidden: channels of every CDAE's first level (doubled at every further level).
        depth: levels of every CDAE.

    Input: list of blocks ``(nb_samples, nb_channels, rows_in_block, nb_slices,
    time_in_block)``; output: list of masks ``(nb_samples, nb_targets, nb_channels,
    rows_in_block, nb_slices, time_in_block)`` in [0, 1], one per block.
    """

    input_form = "ragged"  # how the system feeds the mixture: list of blocks
    columns_per_second = None  # every block at its own time resolution

    def __init__(
        self,
        block_shapes: Sequence,
        channels: int = 2,
        targets: int = 4,
        hidden: int = 16,
        depth: int = 2,
    ):
        super().__init__()
        shapes = [tuple(shape) for shape in block_shapes]
        if not shapes or any(len(shape) != 2 for shape in shapes):
            raise ValueError(
                f"block_shapes must be a non-empty list of (rows, time) pairs, got {block_shapes!r}"
            )
        self.block_shapes = [
            (check_positive_int("block rows", r), check_power_of_two("block time size", m))
            for r, m in shapes
        ]
        self.nb_channels = check_positive_int("channels", channels)
        self.nb_targets = check_positive_int("targets", targets)
        self.hidden = check_positive_int("hidden", hidden)
        self.depth = check_positive_int("depth", depth)
        self.input_norms = nn.ModuleList(
            PerBinAffine(rows, dim=-3) for rows, _ in self.block_shapes
        )
        self.cdaes = nn.ModuleList(
            nn.ModuleList(
                CDAE(self.nb_channels, self.hidden, self.depth) for _ in range(self.nb_targets)
            )
            for _ in self.block_shapes
        )

    def extra_repr(self) -> str:
        return (
            f"blocks={len(self.block_shapes)}, channels={self.nb_channels}, "
            f"targets={self.nb_targets}, hidden={self.hidden}, depth={self.depth}"
        )

    def _check(self, blocks):
        if not isinstance(blocks, (list, tuple)) or len(blocks) != len(self.block_shapes):
            got = len(blocks) if isinstance(blocks, (list, tuple)) else type(blocks).__name__
            raise ValueError(
                f"expected a list of {len(self.block_shapes)} blocks "
                f"(nb_samples, nb_channels, rows, nb_slices, time), got {got}"
            )
        check_input(
            blocks[0],
            (None, self.nb_channels) + (None,) * 3,
            ("nb_samples", "nb_channels", "rows", "nb_slices", "time"),
            "block 0",
        )
        b, s = blocks[0].shape[0], blocks[0].shape[3]
        for i, (blk, (rows, m)) in enumerate(zip(blocks, self.block_shapes)):
            check_input(
                blk,
                (b, self.nb_channels, rows, s, m),
                ("nb_samples", "nb_channels", "rows", "nb_slices", "time"),
                f"block {i}",
            )

    def forward(self, blocks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Masks for every block and target.

        Args:
            blocks: list of (nb_samples, nb_channels, rows_in_block, nb_slices,
                time_in_block) mixture magnitudes, one per block.

        Returns:
            list of (nb_samples, nb_targets, nb_channels, rows_in_block, nb_slices,
            time_in_block) masks in [0, 1].
        """
        self._check(blocks)
        factor = 2**self.depth
        out = []
        for blk, norm, cdaes in zip(blocks, self.input_norms, self.cdaes):
            nb_slices = blk.shape[3]
            z = fold_overlap(norm(blk))  # (B, 2C, R, L)
            rows, frames = z.shape[-2:]
            z = pad_to_multiple(z, factor, factor)
            masks = [unfold_overlap(cdae(z)[..., :rows, :frames], nb_slices) for cdae in cdaes]
            out.append(torch.sigmoid(torch.stack(masks, dim=1)))
        return out
