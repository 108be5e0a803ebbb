"""CrossNet-Open-Unmix style convolutional separator on the sliCQT's matrix form.

Data flow of :meth:`XUMXMatrix.forward`, one line per step (``B`` nb_samples,
``C`` nb_channels, ``F`` nb_bins, ``S`` nb_slices, ``T`` columns per slice,
``J`` nb_targets, ``h`` hidden, ``D`` depth)::

    x (B, C, F, S, T)                 non-negative mixture magnitudes (RaggedToMatrix)
      -> (x + shift[f]) * scale[f]      per-row input normalisation, learned
      -> fold_overlap (B, 2C, F, L)      the two copies of every half-slice as channels,
                                        L = (S + 1) * T / 2 (see common.py)
      -> zero-pad F and L to multiples of 2^D
      -> per target j: encoder_j         D x [conv 4x4 stride 2, GroupNorm, ReLU]
                                        widths 2C -> h -> 2h -> ... -> h 2^(D-1)
      -> bridge = mean_j bottleneck_j   CrossNet bridging: every decoder starts from it
      -> per target j: decoder_j         D x [transposed conv 4x4 stride 2], additive
                                        skips from encoder_j, last level -> 2C channels
      -> crop, unfold_overlap           (B, C, F, S, T) per target
      -> * out_scale[j, f] + out_shift[j, f], sigmoid
    masks (B, J, C, F, S, T) in [0, 1]

The slice overlap is folded into the first encoder convolution. :func:`fold_overlap` pads
the flat ``S * T`` time axis by ``T / 2`` columns at both ends, cuts it into ``S + 1`` runs
of ``T`` columns (second half of slice ``s - 1``, first half of slice ``s``: the same
stretch of audio twice) and stacks each run's two halves as channels. The first
convolution (4x4 kernel, stride 2 in rows and time) thus sees, at every output step, 4
matching columns of *both* overlapping slices, and its time stride halves the audio time
line of ``(S + 1) T / 2`` columns (not the doubled ``S T`` one) to ``(S + 1) T / 4`` steps.
The decoder's last transposed convolution writes both copies back (``2C`` output
channels) and :func:`unfold_overlap` puts every one in its place, so every matrix column
gets its own mask value.
"""

from __future__ import annotations

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


class XUMXMatrix(nn.Module):
    """Convolutional encoder/decoder per target with CrossNet bridging, on matrix magnitudes.

    Args:
        nb_bins: F, frequency rows of the matrix.
        T: columns per slice (a power of two >= 2).
        channels: C, audio channels.
        targets: J, separated sources.
        hidden: channels of the first encoder level (doubled at every further level).
        depth: encoder levels; each halves the rows and the half-slice time line.
        stats: optional ``(mean, std)``, each (nb_bins,): per-row statistics of the
            input magnitudes, which initialise the input normalisation.

    Input ``(nb_samples, nb_channels, nb_bins, nb_slices, T)``, any ``nb_slices >= 1``;
    output masks ``(nb_samples, nb_targets, nb_channels, nb_bins, nb_slices, T)`` in [0, 1].
    """

    input_form = "matrix"  # how the system feeds the mixture: (B, C, F, S, T)
    columns_per_second = 70.0  # its time grid, unless the system config sets one (networks.md)

    def __init__(
        self,
        nb_bins: int,
        T: int,
        channels: int = 2,
        targets: int = 4,
        hidden: int = 32,
        depth: int = 3,
        stats=None,
    ):
        super().__init__()
        self.nb_bins = check_positive_int("nb_bins", nb_bins)
        self.T = check_power_of_two("T", T)
        self.nb_channels = check_positive_int("channels", channels)
        self.nb_targets = check_positive_int("targets", targets)
        self.hidden = check_positive_int("hidden", hidden)
        self.depth = check_positive_int("depth", depth)
        widths = [2 * self.nb_channels] + [self.hidden * 2**i for i in range(self.depth)]
        self.input_norm = PerBinAffine(self.nb_bins, dim=-3)
        self.encoders = nn.ModuleList(ConvEncoder(widths) for _ in range(self.nb_targets))
        self.decoders = nn.ModuleList(
            ConvDecoder(widths, 2 * self.nb_channels) for _ in range(self.nb_targets)
        )
        self.output_scale = nn.Parameter(torch.ones(self.nb_targets, self.nb_bins))
        self.output_shift = nn.Parameter(torch.zeros(self.nb_targets, self.nb_bins))
        if stats is not None:
            self.init_from_stats(*stats)
        # channels-last convolutions (weights here, activations in forward whenever the
        # weights are): the same values, faster on the CPU (oneDNN) as on GPUs; loaded state
        # dicts keep the layout; the ONNX export turns it back to contiguous
        self.to(memory_format=torch.channels_last)

    def extra_repr(self) -> str:
        return (
            f"nb_bins={self.nb_bins}, T={self.T}, channels={self.nb_channels}, "
            f"targets={self.nb_targets}, hidden={self.hidden}, depth={self.depth}"
        )

    def init_from_stats(self, mean, std):
        """Initialise the input normalisation from per-row ``mean`` and ``std`` (nb_bins,)."""
        self.input_norm.init_from_stats(mean, std)
        return self

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised input the encoders see,
        (nb_samples, nb_channels, nb_bins, nb_slices, T)."""
        self._check(x)
        return self.input_norm(x)

    def _check(self, x):
        check_input(
            x,
            (None, self.nb_channels, self.nb_bins, None, self.T),
            ("nb_samples", "nb_channels", "nb_bins", "nb_slices", "T"),
            "XUMXMatrix input",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Masks for every target.

        Args:
            x: (nb_samples, nb_channels, nb_bins, nb_slices, T) mixture magnitudes.

        Returns:
            (nb_samples, nb_targets, nb_channels, nb_bins, nb_slices, T) masks in [0, 1].
        """
        self._check(x)
        nb_slices = x.shape[3]
        z = fold_overlap(self.input_norm(x))  # (B, 2C, F, L)
        rows, frames = z.shape[-2:]
        z = pad_to_multiple(z, 2**self.depth, 2**self.depth)
        first = self.encoders[0].levels[0][0].weight
        if first.is_contiguous(memory_format=torch.channels_last):  # activations follow
            z = z.contiguous(memory_format=torch.channels_last)  # (export: contiguous)
        encoded = [encoder(z) for encoder in self.encoders]
        bridge = torch.stack([levels[-1] for levels in encoded]).mean(dim=0)
        masks = []
        for decoder, levels in zip(self.decoders, encoded):
            y = decoder(bridge, levels[:-1])[..., :rows, :frames]
            masks.append(unfold_overlap(y, nb_slices))  # (B, C, F, S, T)
        masks = torch.stack(masks, dim=1)  # (B, J, C, F, S, T)
        view = (1, self.nb_targets, 1, self.nb_bins, 1, 1)
        return torch.sigmoid(masks * self.output_scale.view(view) + self.output_shift.view(view))
