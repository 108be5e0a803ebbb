"""The STFT baseline with the sliCQT's interface (one block, slices of frames).

The STFT frames are grouped into non-overlapping "slices" of ``frames_per_slice``
frames so the coefficients have the ragged layout of the sliCQT: a single block
``(batch, channels, n_fft // 2 + 1, slices, frames_per_slice)``. The same networks,
losses and RaggedToMatrix then run on it unchanged (``transform=stft``), which makes
it the baseline against which the sliCQT is judged.

Data flow of :meth:`STFT.forward` and :meth:`STFT.inverse` (``L`` samples, ``n = n_fft``,
``F = slices * frames_per_slice`` frames, frame ``f`` centred on sample ``f * hop``)::

    x (B, C, L) -> zeros: n // 2 before, up to (F - 1) * hop + n in all after
      -> frames (B, C, F, n) * window -> rfft -> (B, C, n // 2 + 1, slices, frames_per_slice)
    coefficients -> irfft * window -> overlap-add (F - 1) * hop + n samples
      -> / overlap-added squared window -> drop the n // 2 padding -> (B, C, length)

Every frame is a true frame of the zero-extended signal (none is left out or zeroed), and a
frame is centred on or after the last sample, so every sample sits where at least two
windows (or, when ``hop > n / 2``, all of them) overlap: the division by the overlap-added
squared window is well conditioned and the inverse exact for any ``n_fft`` and
``hop_length`` whose windows overlap (the NOLA condition, checked at construction).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import is_int
from .checks import SAMPLE_RATE_RANGE, check_sample_rate, check_signal
from .module import TORCH_MISSING, Module, torch

# The overlap-added squared windows may fall no lower than this fraction of their peak
# (NOLA); below it the inverse divides by almost nothing and float32 loses its digits.
NOLA_TOLERANCE = 1e-6


def overlap_envelope(window: np.ndarray, hop: int) -> np.ndarray:
    """(hop,) sum of the squared windows ``hop`` apart at every position modulo ``hop``: the
    overlap-add of ``window**2`` away from the signal's ends."""
    squared = np.asarray(window, float) ** 2
    squared = np.concatenate([squared, np.zeros((-len(squared)) % hop)])
    return squared.reshape(-1, hop).sum(axis=0)


class STFT(Module):
    """Short-time Fourier transform (periodic Hann window, centred frames) in ragged form.

    Args:
        n_fft, hop_length: window length and hop between frames, in samples; any pair whose
            windows overlap (``hop_length < n_fft``), odd or even.
        sample_rate: sampling rate in Hz.
        frames_per_slice: frames grouped into one slice (a power of two).
        sample_rate_range: ``(lowest, highest)`` sample rate accepted, in Hz.

    Signals of any length work (they are padded with zeros and trimmed back); float16 and
    bfloat16 signals are computed in float32 (complex64 coefficients, float32 inverse).
    """

    backend = "torch"

    def __init__(
        self,
        n_fft: int = 4096,
        hop_length: int = 1024,
        sample_rate: int = 44100,
        frames_per_slice: int = 32,
        sample_rate_range: tuple[float, float] = SAMPLE_RATE_RANGE,
    ):
        super().__init__()
        if torch is None:
            raise RuntimeError(f"the STFT runs on torch only: {TORCH_MISSING}")
        if not (is_int(n_fft) and n_fft >= 2):
            raise ValueError(f"n_fft must be an integer >= 2, got n_fft={n_fft!r}")
        if not (is_int(hop_length) and hop_length >= 1):
            raise ValueError(f"hop_length must be a positive integer, got {hop_length!r}")
        if not (is_int(frames_per_slice) and frames_per_slice >= 1) or (
            frames_per_slice & (frames_per_slice - 1)
        ):
            raise ValueError(f"frames_per_slice must be a power of two, got {frames_per_slice!r}")
        sample_rate = check_sample_rate(sample_rate, sample_rate_range)
        n_fft, hop_length = int(n_fft), int(hop_length)
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        envelope = overlap_envelope(window.numpy(), hop_length)
        if envelope.min() <= NOLA_TOLERANCE * envelope.max():
            raise ValueError(
                f"n_fft={n_fft}, hop_length={hop_length} is not invertible: the Hann windows "
                f"{hop_length} samples apart leave samples where their squares sum to "
                f"{envelope.min() / envelope.max():.2g} of their peak (the NOLA condition "
                f"needs more than {NOLA_TOLERANCE:g}); use a shorter hop, e.g. "
                f"hop_length={max(n_fft // 4, 1)}"
            )
        self.n_fft, self.hop_length, self.sample_rate = n_fft, hop_length, sample_rate
        self.frames_per_slice = int(frames_per_slice)
        self.scale_name = "stft"
        self.freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
        self.block_shapes = [(n_fft // 2 + 1, self.frames_per_slice)]
        # slice geometry, so that pictures and RaggedToMatrix views place frames in time
        self.slice_hop = self.frames_per_slice * hop_length
        self.sllen = 2 * self.slice_hop
        self.trlen = 2
        self.register_buffer("window", window, persistent=False)

    @property
    def nb_bins(self) -> int:
        return len(self.freqs)

    @property
    def coefs_per_second(self) -> float:
        """Complex coefficients per second of audio and channel, ``bins * rate / hop_length``."""
        return self.nb_bins * self.sample_rate / self.hop_length

    def nb_frames(self, length: int) -> int:
        """Frames that cover ``length`` samples: centred on ``0, hop, ...`` up to the first
        centre at or after the last sample."""
        if not (is_int(length) and length >= 1):
            raise ValueError(f"length must be a positive number of samples, got {length!r}")
        return -(-(int(length) - 1) // self.hop_length) + 1

    def nb_slices(self, length: int) -> int:
        """Number of slices the forward transform gives for ``length`` samples."""
        return max(1, math.ceil(self.nb_frames(length) / self.frames_per_slice))

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop={self.hop_length}, sample_rate={self.sample_rate}, "
            f"frames_per_slice={self.frames_per_slice}"
        )

    def check_coefs(self, coefs, complex_only: bool = True):
        from .slicqt import SliCQT

        return SliCQT.check_coefs(self, coefs, complex_only)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(batch, channels, samples) -> [(batch, channels, bins, slices, frames_per_slice)].

        Raises:
            TypeError, ValueError: as :meth:`SliCQT.forward <xslicq.transform.SliCQT.forward>`
                does (not a 3-D real torch signal, empty, NaN or inf values).
        """
        _, x = check_signal(x, self.backend, "STFT")
        b, c, n = x.shape
        frames = self.nb_slices(n) * self.frames_per_slice
        padded = (frames - 1) * self.hop_length + self.n_fft
        half = self.n_fft // 2
        x = torch.nn.functional.pad(x.reshape(b * c, n), (half, padded - half - n))
        spec = torch.stft(
            x,
            self.n_fft,
            self.hop_length,
            window=self.window.to(device=x.device, dtype=x.dtype),
            center=False,
            return_complex=True,
        )
        return [spec.reshape(b, c, -1, frames // self.frames_per_slice, self.frames_per_slice)]

    def inverse(self, coefs, length: int | None = None) -> torch.Tensor:
        """Ragged STFT coefficients -> (batch, channels, length).

        Args:
            coefs: ``[(batch, channels, bins, slices, frames_per_slice)]`` complex.
            length: samples to return, at most ``(frames - 1) * hop_length + 1`` (up to the
                last frame's centre); ``None`` gives ``(frames - 1) * hop_length``.

        Returns:
            (batch, channels, length) float32 or float64 (the coefficients' precision);
            equal to the analysed signal when the coefficients are unmodified.
        """
        self.check_coefs(coefs)
        (block,) = coefs
        if block.dtype == torch.complex32:
            block = block.to(torch.complex64)
        b, c, f, s, t = block.shape
        frames = s * t
        longest = (frames - 1) * self.hop_length + 1
        if length is None:
            length = max(longest - 1, 1)
        if not (is_int(length) and 1 <= length <= longest):
            raise ValueError(
                f"length must be an integer in [1, {longest}] for {s} slices of {t} frames, "
                f"got {length!r}"
            )
        spec = block.reshape(b * c, f, frames)
        window = self.window.to(device=spec.device, dtype=spec.real.dtype)
        segments = torch.fft.irfft(spec.transpose(1, 2), n=self.n_fft) * window
        y = self._overlap_add(segments)
        envelope = self._overlap_add((window**2).expand(1, frames, self.n_fft))
        keep = slice(self.n_fft // 2, self.n_fft // 2 + int(length))
        return (y[:, keep] / envelope[:, keep]).reshape(b, c, int(length))

    def _overlap_add(self, segments: torch.Tensor) -> torch.Tensor:
        """(N, frames, n_fft) -> (N, (frames - 1) * hop_length + n_fft): each segment added
        in at ``frame * hop_length``, as ``ceil(n_fft / hop)`` sums of hop-long pieces."""
        n, frames, size = segments.shape
        hop = self.hop_length
        pieces = -(-size // hop)
        segments = torch.nn.functional.pad(segments, (0, pieces * hop - size))
        segments = segments.reshape(n, frames, pieces, hop)
        out = segments.new_zeros(n, frames + pieces - 1, hop)
        for k in range(pieces):
            out[:, k : k + frames] += segments[:, :, k]
        return out.reshape(n, -1)[:, : (frames - 1) * hop + size]
