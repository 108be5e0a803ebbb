"""The STFT baseline with the sliCQT's interface (one block, slices of frames).

The STFT frames are grouped into non-overlapping "slices" of ``frames_per_slice``
frames so the coefficients have the ragged layout of the sliCQT: a single block
``(batch, channels, n_fft // 2 + 1, slices, frames_per_slice)``. The same networks,
losses and RaggedToMatrix then run on it unchanged (``transform=stft``), which makes
it the baseline against which the sliCQT is judged.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class STFT(torch.nn.Module):
    """Short-time Fourier transform (Hann window, centred frames) in ragged form.

    Args:
        n_fft, hop_length: window length and hop between frames, in samples.
        sample_rate: sampling rate in Hz.
        frames_per_slice: frames grouped into one slice (a power of two).
    """

    backend = "torch"

    def __init__(
        self,
        n_fft: int = 4096,
        hop_length: int = 1024,
        sample_rate: int = 44100,
        frames_per_slice: int = 32,
    ):
        super().__init__()
        if n_fft < 2 or hop_length < 1 or hop_length > n_fft:
            raise ValueError(
                f"need n_fft >= 2 and 1 <= hop_length <= n_fft, got n_fft={n_fft}, "
                f"hop_length={hop_length}"
            )
        if frames_per_slice < 1 or frames_per_slice & (frames_per_slice - 1):
            raise ValueError(f"frames_per_slice must be a power of two, got {frames_per_slice}")
        self.n_fft, self.hop_length, self.sample_rate = n_fft, hop_length, sample_rate
        self.frames_per_slice = frames_per_slice
        self.scale_name = "stft"
        self.freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
        self.block_shapes = [(n_fft // 2 + 1, frames_per_slice)]
        # slice geometry, so that pictures and RaggedToMatrix views place frames in time
        self.slice_hop = frames_per_slice * hop_length
        self.sllen = 2 * self.slice_hop
        self.trlen = 2
        self.register_buffer(
            "window", torch.hann_window(n_fft, dtype=torch.float64), persistent=False
        )

    @property
    def nb_bins(self) -> int:
        return len(self.freqs)

    @property
    def coefs_per_second(self) -> float:
        """Complex coefficients per second of audio and channel, ``bins * rate / hop_length``."""
        return self.nb_bins * self.sample_rate / self.hop_length

    def nb_slices(self, length: int) -> int:
        return max(1, math.ceil((length // self.hop_length + 1) / self.frames_per_slice))

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop={self.hop_length}, sample_rate={self.sample_rate}, "
            f"frames_per_slice={self.frames_per_slice}"
        )

    def check_coefs(self, coefs, complex_only: bool = True):
        from .slicqt import SliCQT

        return SliCQT.check_coefs(self, coefs, complex_only)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(batch, channels, samples) -> [(batch, channels, bins, slices, frames_per_slice)]."""
        if x.ndim != 3 or x.shape[-1] == 0:
            raise ValueError(
                f"expected a non-empty 3-D (batch, channels, samples) signal, got "
                f"shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"the signal must be real floating point, got dtype {x.dtype}")
        b, c, n = x.shape
        spec = torch.stft(
            x.reshape(b * c, n),
            self.n_fft,
            self.hop_length,
            window=self.window.to(x.dtype),
            center=True,
            return_complex=True,
        )
        frames = spec.shape[-1]
        slices = self.nb_slices(n)
        spec = torch.nn.functional.pad(spec, (0, slices * self.frames_per_slice - frames))
        return [spec.reshape(b, c, -1, slices, self.frames_per_slice)]

    def inverse(self, coefs, length: int | None = None) -> torch.Tensor:
        """Ragged STFT coefficients -> (batch, channels, length)."""
        self.check_coefs(coefs)
        (block,) = coefs
        b, c, f, s, t = block.shape
        if length is None:
            length = (s * t - 1) * self.hop_length
        frames = length // self.hop_length + 1
        spec = block.reshape(b * c, f, s * t)[..., :frames]
        window = self.window.to(spec.real.dtype)
        y = torch.istft(
            spec, self.n_fft, self.hop_length, window=window, center=True, length=length
        )
        return y.reshape(b, c, length)
