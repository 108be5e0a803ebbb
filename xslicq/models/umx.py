"""Open-Unmix reference with CrossNet (X-UMX) bridging, on frames of magnitudes.

Data flow of :meth:`OpenUnmix.forward` (``B`` nb_samples, ``C`` nb_channels, ``F``
nb_bins, ``N`` nb_frames, ``J`` nb_targets, ``H`` hidden, ``K = max_bin``)::

    x (B, C, F, N)                       mixture magnitudes (STFT frames, or a matrix
                                          form flattened along time, N = S * T)
      -> frames (N, B, C, K)              the first K bins
      -> (x + shift[k]) * scale[k]          per-bin input normalisation, learned
      -> per target: fc (C K -> H), BatchNorm, tanh
      -> bridge 1: mean over targets
      -> per target: 3-layer BLSTM (H / 2 per direction; unidirectional: one LSTM of
                                          H units); skip: [input, output] (2H)
      -> bridge 2: mean over targets
      -> per target: fc (2H -> H), BatchNorm, ReLU, fc (H -> C F), BatchNorm
      -> * out_scale[j, f] + out_shift[j, f], sigmoid
    masks (B, J, C, F, N) in [0, 1]

Unlike the classic Open-Unmix (ReLU output multiplied with the mixture), the output is a
sigmoid mask, like every network of :mod:`xslicq.models`.

Causal use: with ``unidirectional=True`` (and in eval mode, where BatchNorm uses its running
statistics) the mask of frame ``n`` depends on frames ``0 .. n`` only, and :meth:`OpenUnmix.step`
runs the network on a few frames at a time with the LSTM state carried between calls, giving
what :meth:`OpenUnmix.forward` gives on the whole sequence (:mod:`xslicq.stream`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .common import PerBinAffine, check_input, check_positive_int


class _TargetUnmix(nn.Module):
    """The per-target layers of :class:`OpenUnmix` (everything but the bridges)."""

    def __init__(
        self,
        nb_in: int,
        nb_out: int,
        hidden: int,
        layers: int,
        dropout: float,
        unidirectional: bool = False,
    ):
        super().__init__()
        self.fc1 = nn.Linear(nb_in, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lstm = nn.LSTM(
            hidden,
            hidden if unidirectional else hidden // 2,
            num_layers=layers,
            bidirectional=not unidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = nn.Linear(hidden, nb_out, bias=False)
        self.bn3 = nn.BatchNorm1d(nb_out)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, C K) -> (N, B, H)."""
        n, b, _ = x.shape
        return torch.tanh(self.bn1(self.fc1(x.reshape(n * b, -1))).reshape(n, b, -1))

    def recur(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
        """(N, B, H) -> ((N, B, 2H), (h, c)): the LSTM output next to its input (skip
        connection), and the LSTM's state after the last frame (``state``: the one before
        the first frame, ``None`` for zeros)."""
        y, state = self.lstm(x, state)
        return torch.cat([x, y], dim=-1), state

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, 2H) -> (N, B, C F) logits before the output affine."""
        n, b, _ = x.shape
        x = torch.relu(self.bn2(self.fc2(x.reshape(n * b, -1))))
        return self.bn3(self.fc3(x)).reshape(n, b, -1)


class OpenUnmix(nn.Module):
    """Open-Unmix with X-UMX bridging and sigmoid masks.

    Args:
        nb_bins: F, frequency bins of the input.
        channels: C, audio channels.
        targets: J, separated sources.
        hidden: H, width of the fully-connected bottleneck (even; H / 2 LSTM units per
            direction).
        layers: LSTM layers.
        max_bin: only the first ``max_bin`` bins enter the network (``None``: all);
            the masks always cover all ``nb_bins``.
        stats: optional ``(mean, std)``, each (nb_bins,), initialising the input
            normalisation.
        dropout: dropout between LSTM layers (Open-Unmix uses 0.4).
        unidirectional: one forward LSTM of H units instead of the BLSTM: causal, for
            streaming (:meth:`step`).

    Input ``(nb_samples, nb_channels, nb_bins, nb_frames)``, any ``nb_frames >= 1``;
    output masks ``(nb_samples, nb_targets, nb_channels, nb_bins, nb_frames)`` in [0, 1].
    """

    input_form = "frames"  # how the system feeds the mixture: (B, C, F, S*T)
    columns_per_second = 35.0  # frames per second fed to the LSTM, unless configured

    def __init__(
        self,
        nb_bins: int,
        channels: int = 2,
        targets: int = 4,
        hidden: int = 256,
        layers: int = 3,
        max_bin: int | None = None,
        stats=None,
        dropout: float = 0.4,
        unidirectional: bool = False,
    ):
        super().__init__()
        self.nb_bins = check_positive_int("nb_bins", nb_bins)
        self.max_bin = self.nb_bins if max_bin is None else check_positive_int("max_bin", max_bin)
        if self.max_bin > self.nb_bins:
            raise ValueError(f"max_bin must be at most nb_bins={self.nb_bins}, got {max_bin}")
        self.nb_channels = check_positive_int("channels", channels)
        self.nb_targets = check_positive_int("targets", targets)
        self.hidden = check_positive_int("hidden", hidden)
        if self.hidden % 2:
            raise ValueError(
                f"hidden must be even (hidden / 2 LSTM units per direction), got {hidden}"
            )
        self.layers = check_positive_int("layers", layers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(unidirectional, bool):
            raise ValueError(f"unidirectional must be true or false, got {unidirectional!r}")
        self.unidirectional = unidirectional
        self.input_norm = PerBinAffine(self.max_bin, dim=-1)
        self.nets = nn.ModuleList(
            _TargetUnmix(
                self.max_bin * self.nb_channels,
                self.nb_bins * self.nb_channels,
                self.hidden,
                self.layers,
                dropout,
                unidirectional,
            )
            for _ in range(self.nb_targets)
        )
        self.output_scale = nn.Parameter(torch.ones(self.nb_targets, self.nb_bins))
        self.output_shift = nn.Parameter(torch.zeros(self.nb_targets, self.nb_bins))
        if stats is not None:
            self.init_from_stats(*stats)

    def extra_repr(self) -> str:
        return (
            f"nb_bins={self.nb_bins}, max_bin={self.max_bin}, channels={self.nb_channels}, "
            f"targets={self.nb_targets}, hidden={self.hidden}, layers={self.layers}, "
            f"unidirectional={self.unidirectional}"
        )

    @property
    def causal(self) -> bool:
        """Whether the mask of a frame depends on that frame and earlier ones only (in eval
        mode): true for the unidirectional network, which :meth:`step` can stream."""
        return self.unidirectional

    def init_from_stats(self, mean, std):
        """Initialise the input normalisation from per-bin ``mean`` and ``std`` (nb_bins,)."""
        mean, std = np.asarray(mean), np.asarray(std)
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (self.nb_bins,):
                raise ValueError(
                    f"stats {name}: expected shape ({self.nb_bins},) (nb_bins,), got {value.shape}"
                )
        self.input_norm.init_from_stats(mean[: self.max_bin], std[: self.max_bin])
        return self

    def _check(self, x):
        check_input(
            x,
            (None, self.nb_channels, self.nb_bins, None),
            ("nb_samples", "nb_channels", "nb_bins", "nb_frames"),
            "OpenUnmix input",
        )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised network input, (nb_samples, nb_channels, max_bin, nb_frames)."""
        self._check(x)
        return self.input_norm(x[:, :, : self.max_bin].transpose(-1, -2)).transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Masks for every target.

        Args:
            x: (nb_samples, nb_channels, nb_bins, nb_frames) mixture magnitudes.

        Returns:
            (nb_samples, nb_targets, nb_channels, nb_bins, nb_frames) masks in [0, 1].
        """
        return self._masks(x, None)[0]

    def initial_state(self, nb_samples: int = 1, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The state :meth:`step` starts a stream with: ``(h, c)`` zeros, each
        (nb_targets, layers, nb_samples, hidden) (the same as ``state=None``)."""
        lstm = self.nets[0].lstm
        shape = (self.nb_targets, lstm.num_layers, nb_samples, lstm.hidden_size)
        zeros = torch.zeros(shape, device=device, dtype=self.output_scale.dtype)
        return zeros, zeros.clone()

    def step(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
        """Masks for the next frames of a stream (a causal network only).

        Calls on consecutive runs of frames, each with the state the previous call
        returned, give the masks :meth:`forward` gives on all the frames at once.

        Args:
            x: (nb_samples, nb_channels, nb_bins, nb_frames) the next mixture magnitudes.
            state: ``(h, c)``, each (nb_targets, layers, nb_samples, hidden), the LSTM
                states after the frames before ``x``; ``None`` at the start (zeros).

        Returns:
            (masks (nb_samples, nb_targets, nb_channels, nb_bins, nb_frames), state after
            the last frame of ``x``).
        """
        if not self.unidirectional:
            raise ValueError(
                "OpenUnmix.step needs a causal network (unidirectional=True): the "
                "bidirectional LSTM reads every frame of the sequence"
            )
        return self._masks(x, state)

    def _masks(self, x: torch.Tensor, state) -> tuple[torch.Tensor, tuple]:
        self._check(x)
        b, c, f, n = x.shape
        frames = self.input_norm(x[:, :, : self.max_bin].permute(3, 0, 1, 2))  # (N, B, C, K)
        frames = frames.reshape(n, b, c * self.max_bin)
        bridge = torch.stack([net.encode(frames) for net in self.nets]).mean(dim=0)
        h0 = [None] * self.nb_targets if state is None else list(zip(*state))
        recurred, states = zip(*[net.recur(bridge, s) for net, s in zip(self.nets, h0)])
        bridge = torch.stack(recurred).mean(dim=0)
        logits = torch.stack([net.decode(bridge) for net in self.nets], dim=2)  # (N, B, J, C F)
        logits = logits.reshape(n, b, self.nb_targets, c, f)
        logits = logits * self.output_scale[:, None] + self.output_shift[:, None]
        state = tuple(torch.stack(part) for part in zip(*states))  # (h, c), (J, layers, B, H)
        return torch.sigmoid(logits.permute(1, 2, 3, 4, 0)), state
