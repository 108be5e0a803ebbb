"""Differentiable training losses (time domain and sliCQT domain).

Shapes (``B`` batch, ``J`` targets, ``C`` channels, ``T`` samples)::

    est_wave, ref_wave   (B, J, C, T) real waveforms per target
    est_coefs, ref_coefs list of complex blocks (B, J, C, rows, slices, time_in_block),
                         one per sliCQT time resolution (the ragged format of
                         :class:`xslicq.transform.SliCQT`, with a target axis); a
                         single tensor is taken as a one-block list
    masks                list of real blocks (B, J, C, rows, slices, time_in_block),
                         or one tensor with the target axis at dim 1

Functions (no reduction over batch or targets):

* :func:`sdr` -- signal-to-distortion ratio in dB over (channels, samples).
* :func:`sisdr` -- scale-invariant SDR in dB over (channels, samples).

Every loss is an ``nn.Module`` whose ``forward(est_wave, ref_wave, est_coefs=None,
ref_coefs=None, masks=None)`` returns ``(loss, parts)``: a scalar tensor to
minimise and a dict of detached scalar tensors for logging. Parts keyed by a loss
name hold that (unweighted) loss term; parts ending in ``_db`` hold ratios in dB.

* :class:`SDRMixLoss` (``sdr_mix``) -- negative SDR of the sums of every
  combination of 1 .. J-1 targets (CrossNet-Open-Unmix's mixture combinations),
  plus ``weight_freq`` times the magnitude MSE in the transform domain.
* :class:`MSELoss` (``mse``) -- MSE of coefficient magnitudes.
* :class:`ComplexMSELoss` (``complex_mse``) -- MSE of complex coefficients.
* :class:`SISDRLoss` (``sisdr``) -- negative mean SI-SDR per target.
* :class:`BSSMixLoss` (``bss_mix``) -- negative weighted sum of differentiable
  BSS-eval-style SDR, SIR, SAR and ISR terms.

Every loss also takes ``mask_sum``: the weight of a regulariser
``mean((sum over targets of masks - 1) ** 2)`` that asks the masks to split the
mixture without loss or gain. The regulariser is logged as part ``mask_sum``
whenever masks are given.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Sequence

import torch

Blocks = Sequence[torch.Tensor] | torch.Tensor

__all__ = ["sdr", "sisdr", "SDRMixLoss", "MSELoss", "ComplexMSELoss", "SISDRLoss",
           "BSSMixLoss", "LOSSES"]


# --------------------------------------------------------------------------- checks

def _check_same_shape(est: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    if tuple(est.shape) != tuple(ref.shape):
        raise ValueError(f"{what}: est shape {tuple(est.shape)} does not match "
                         f"ref shape {tuple(ref.shape)}")


def _check_waves(est: torch.Tensor | None, ref: torch.Tensor | None, name: str) -> None:
    if est is None or ref is None:
        raise ValueError(f"loss {name!r} needs est_wave and ref_wave "
                         f"(batch, targets, channels, samples), got None")
    _check_same_shape(est, ref, f"loss {name!r} waveforms")
    if est.ndim != 4:
        raise ValueError(f"loss {name!r}: waveforms must be (batch, targets, channels, "
                         f"samples), got shape {tuple(est.shape)}")
    if est.is_complex() or ref.is_complex():
        raise ValueError(f"loss {name!r}: waveforms must be real, got {est.dtype} "
                         f"and {ref.dtype}")


def _as_blocks(x: Blocks) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def _check_coefs(est: Blocks | None, ref: Blocks | None,
                 name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if est is None or ref is None:
        missing = " and ".join(n for n, v in (("est_coefs", est), ("ref_coefs", ref))
                               if v is None)
        raise ValueError(f"loss {name!r} compares transform coefficients and needs "
                         f"est_coefs and ref_coefs, but {missing} is None")
    est, ref = _as_blocks(est), _as_blocks(ref)
    if len(est) != len(ref) or not est:
        raise ValueError(f"loss {name!r}: est_coefs has {len(est)} blocks and ref_coefs "
                         f"has {len(ref)}; they must have the same number, at least one")
    for i, (e, r) in enumerate(zip(est, ref)):
        _check_same_shape(e, r, f"loss {name!r} coefficient block {i}")
    return est, ref


# ------------------------------------------------------------------------ functions

def _energy(x: torch.Tensor) -> torch.Tensor:
    """Sum of squares over the last two axes (channels, samples)."""
    return x.square().sum(dim=(-2, -1))


def sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Signal-to-distortion ratio in dB over the last two axes (channels, samples).

    ``10 * log10((||ref||^2 + eps) / (||ref - est||^2 + eps))``; identical signals
    give ``10 * log10((||ref||^2 + eps) / eps)`` and ``est = 0`` gives 0 dB.

    Args:
        est, ref: (..., channels, samples) real tensors of the same shape.
    Returns:
        (...) tensor of SDRs in dB.
    """
    _check_same_shape(est, ref, "sdr")
    if est.ndim < 2:
        raise ValueError(f"sdr: inputs need (..., channels, samples), got shape "
                         f"{tuple(est.shape)}")
    return 10.0 * torch.log10((_energy(ref) + eps) / (_energy(ref - est) + eps))


def sisdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last two axes (channels, samples).

    Both signals are made zero-mean along samples (per channel); the target is
    the orthogonal projection of ``est`` on ``ref`` (one scale for all channels),
    the noise is the rest: ``10 * log10((||target||^2 + eps) / (||noise||^2 + eps))``.

    Args:
        est, ref: (..., channels, samples) real tensors of the same shape.
    Returns:
        (...) tensor of SI-SDRs in dB.
    """
    _check_same_shape(est, ref, "sisdr")
    if est.ndim < 2:
        raise ValueError(f"sisdr: inputs need (..., channels, samples), got shape "
                         f"{tuple(est.shape)}")
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = ((est * ref).sum(dim=(-2, -1), keepdim=True) + eps) / (
        _energy(ref)[..., None, None] + eps)
    target = scale * ref
    return 10.0 * torch.log10((_energy(target) + eps) / (_energy(est - target) + eps))


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


def magnitude_mse(est: Blocks, ref: Blocks, name: str = "mse") -> torch.Tensor:
    """Mean of ``(|est| - |ref|)^2`` over all elements of all blocks."""
    est, ref = _check_coefs(est, ref, name)
    return _weighted_block_mean([(e.abs() - r.abs()).square() for e, r in zip(est, ref)])


def complex_mse(est: Blocks, ref: Blocks, name: str = "complex_mse") -> torch.Tensor:
    """Mean of ``|est - ref|^2`` over all elements of all blocks."""
    est, ref = _check_coefs(est, ref, name)
    return _weighted_block_mean([_squared_abs(e - r) for e, r in zip(est, ref)])


def mask_sum_penalty(masks: Blocks) -> torch.Tensor:
    """``mean((sum over targets of masks - 1)^2)``, the target axis at dim 1 of every block."""
    blocks = _as_blocks(masks)
    if not blocks:
        raise ValueError("mask_sum: masks is an empty list")
    for i, m in enumerate(blocks):
        if m.ndim < 2:
            raise ValueError(f"mask_sum: mask block {i} must have a target axis at dim 1, "
                             f"got shape {tuple(m.shape)}")
    return _weighted_block_mean([_squared_abs(m.sum(dim=1) - 1) for m in blocks])


# --------------------------------------------------------------------------- losses

class _Loss(torch.nn.Module):
    """Shared ``forward``: the loss's own terms plus the mask-sum regulariser."""

    name = "loss"

    def __init__(self, mask_sum: float = 0.0, eps: float = 1e-8):
        super().__init__()
        if not (math.isfinite(mask_sum) and mask_sum >= 0):
            raise ValueError(f"{self.name}: mask_sum must be a finite weight >= 0, "
                             f"got {mask_sum!r}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"{self.name}: eps must be a finite number > 0, got {eps!r}")
        self.mask_sum = float(mask_sum)
        self.eps = float(eps)

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss without the regulariser: ``(scalar, parts)``."""
        raise NotImplementedError

    def forward(self, est_wave: torch.Tensor | None, ref_wave: torch.Tensor | None,
                est_coefs: Blocks | None = None, ref_coefs: Blocks | None = None,
                masks: Blocks | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args:
            est_wave, ref_wave: (batch, targets, channels, samples).
            est_coefs, ref_coefs: ragged blocks (batch, targets, channels, rows, slices, time).
            masks: ragged real blocks (batch, targets, channels, rows, slices, time).
        Returns:
            ``(loss, parts)``: scalar loss and a dict of detached scalar parts.
        """
        if self.mask_sum > 0 and masks is None:
            raise ValueError(f"loss {self.name!r} has mask_sum={self.mask_sum} > 0 and "
                             f"needs masks, got None")
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


class SDRMixLoss(_Loss):
    """CrossNet-Open-Unmix combination loss: negative SDR of target mixtures.

    For ``J`` targets, every combination of 1 .. J-1 targets (only single targets
    when ``J == 1``) is summed on both sides, and the negative :func:`sdr` of the
    sums is averaged over combinations and batch (14 combinations for 4 targets).
    ``weight_freq`` adds the magnitude MSE of the transform coefficients.

    Parts: ``sdr_mix`` (negative mean SDR in dB), ``freq_mse``, ``mask_sum``.
    """

    name = "sdr_mix"

    def __init__(self, weight_time: float = 1.0, weight_freq: float = 0.1,
                 mask_sum: float = 0.0, eps: float = 1e-8):
        super().__init__(mask_sum, eps)
        for n, w in (("weight_time", weight_time), ("weight_freq", weight_freq)):
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"sdr_mix: {n} must be a finite weight >= 0, got {w!r}")
        self.weight_time = float(weight_time)
        self.weight_freq = float(weight_freq)

    @staticmethod
    @lru_cache(maxsize=None)
    def combinations(nb_targets: int) -> tuple[tuple[int, ...], ...]:
        """Target index combinations the loss sums: sizes 1 .. J-1 (size 1 if J == 1)."""
        if nb_targets < 1:
            raise ValueError(f"sdr_mix: needs at least one target, got {nb_targets}")
        sizes = range(1, max(nb_targets, 2))
        return tuple(c for k in sizes for c in itertools.combinations(range(nb_targets), k))

    @classmethod
    def combination_matrix(cls, nb_targets: int, dtype=torch.float32,
                           device=None) -> torch.Tensor:
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
            m = self.combination_matrix(est_wave.shape[1], est_wave.dtype, est_wave.device)
            est_mix = torch.einsum("kj,bjct->bkct", m, est_wave)
            ref_mix = torch.einsum("kj,bjct->bkct", m, ref_wave)
            neg_sdr = -sdr(est_mix, ref_mix, self.eps).mean()
            loss = self.weight_time * neg_sdr
            parts["sdr_mix"] = neg_sdr
        if self.weight_freq > 0:
            mse = magnitude_mse(est_coefs, ref_coefs, self.name)
            loss = self.weight_freq * mse if loss is None else loss + self.weight_freq * mse
            parts["freq_mse"] = mse
        if loss is None:
            raise ValueError("sdr_mix: weight_time and weight_freq are both 0")
        parts.setdefault("sdr_mix", loss.new_zeros(()))
        parts.setdefault("freq_mse", loss.new_zeros(()))
        return loss, parts

    def extra_repr(self) -> str:
        return (f"weight_time={self.weight_time}, weight_freq={self.weight_freq}, "
                + super().extra_repr())


class MSELoss(_Loss):
    """MSE of coefficient magnitudes ``|est_coefs|`` vs ``|ref_coefs|``.

    Blocks are weighted by their element counts. Parts: ``mse``, ``mask_sum``.
    """

    name = "mse"

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        mse = magnitude_mse(est_coefs, ref_coefs, self.name)
        return mse, {"mse": mse}


class ComplexMSELoss(_Loss):
    """MSE of complex coefficients, mean of ``|est_coefs - ref_coefs|^2``.

    Blocks are weighted by their element counts. Parts: ``complex_mse``, ``mask_sum``.
    """

    name = "complex_mse"

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        mse = complex_mse(est_coefs, ref_coefs, self.name)
        return mse, {"complex_mse": mse}


class SISDRLoss(_Loss):
    """Negative SI-SDR (dB) per target in the time domain, averaged over batch and targets.

    Parts: ``sisdr`` (the loss, negative mean SI-SDR in dB), ``mask_sum``.
    """

    name = "sisdr"

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        _check_waves(est_wave, ref_wave, self.name)
        loss = -sisdr(est_wave, ref_wave, self.eps).mean()
        return loss, {"sisdr": loss}


# ------------------------------------------------------------ BSS-eval decomposition

def _regularised_solve(gram: torch.Tensor, rhs: torch.Tensor, eps: float) -> torch.Tensor:
    """Solve ``(gram + eps * (mean diag + 1) * I) x = rhs`` over the last two axes."""
    n = gram.shape[-1]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(dim=-1)[..., None, None] + 1
    return torch.linalg.solve(gram + eps * scale * eye, rhs)


def _next_fft_len(n: int) -> int:
    """Smallest length >= n with no prime factor above 5."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def bss_decomposition(est: torch.Tensor, ref: torch.Tensor, filter_len: int = 0,
                      eps: float = 1e-8) -> tuple[torch.Tensor, ...]:
    """Differentiable BSS-eval decomposition ``est_j = s_target + e_interf + e_artif``.

    ``s_target`` is the orthogonal projection of ``est_j`` on ``ref_j`` and
    ``s_target + e_interf`` its projection on the span of all references, per
    item and channel. With ``filter_len <= 1`` the span is the references
    themselves (one scale each); with ``filter_len = L > 1`` it holds their
    delays by 0 .. L-1 samples (BSS-eval's distortion filters, via FFT
    correlations), and all signals grow to ``samples + L - 1``.

    Args:
        est, ref: (batch, targets, channels, samples).
    Returns:
        ``(s_target, e_interf, e_artif, ref)``, each (batch, targets, channels, samples')
        with ``ref`` zero-padded to the same length.
    """
    if filter_len <= 1:
        # gram[b, c, j, k] = <ref_j, ref_k>, rhs[b, c, k, j] = <ref_k, est_j>
        gram = torch.einsum("bjct,bkct->bcjk", ref, ref)
        rhs = torch.einsum("bkct,bjct->bckj", ref, est)
        own = rhs.diagonal(dim1=-2, dim2=-1)                  # (b, c, j): <ref_j, est_j>
        energy = gram.diagonal(dim1=-2, dim2=-1)
        scale_t = own / (energy + eps * (energy.mean(dim=-1, keepdim=True) + 1))
        s_target = scale_t.permute(0, 2, 1)[..., None] * ref
        coef = _regularised_solve(gram, rhs, eps)             # (b, c, k, j)
        s_all = torch.einsum("bckj,bkct->bjct", coef, ref)
        return s_target, s_all - s_target, est - s_all, ref

    L = int(filter_len)
    B, J, C, T = ref.shape
    n = _next_fft_len(T + L - 1)
    R = torch.fft.rfft(ref, n=n)                               # (b, j, c, f)
    E = torch.fft.rfft(est, n=n)
    # corr[b, c, j, k, tau] = sum_u ref_j(u) ref_k(u + tau), tau taken mod n
    corr = torch.fft.irfft(torch.einsum("bjcf,bkcf->bcjkf", R.conj(), R), n=n)
    lag = torch.arange(L, device=ref.device)
    toeplitz = (lag[:, None] - lag[None, :]) % n               # [l, m] -> l - m
    gram = corr[..., toeplitz]                                 # (b, c, j, k, l, m)
    gram = gram.permute(0, 1, 2, 4, 3, 5).reshape(B, C, J * L, J * L)
    # rhs[b, c, k, l, j] = sum_u ref_k(u) est_j(u + l)
    xcorr = torch.fft.irfft(torch.einsum("bkcf,bjcf->bckjf", R.conj(), E), n=n)[..., :L]
    rhs = xcorr.permute(0, 1, 2, 4, 3).reshape(B, C, J * L, J)
    coef = _regularised_solve(gram, rhs, eps).reshape(B, C, J, L, J)   # (b, c, k, l, j)
    # projections are sums of references convolved with the solved filters
    Fc = torch.fft.rfft(coef, n=n, dim=3)                      # (b, c, k, f, j)
    s_all = torch.fft.irfft(torch.einsum("bckfj,bkcf->bjcf", Fc, R), n=n)[..., :T + L - 1]
    own_gram = gram.reshape(B, C, J, L, J, L).diagonal(dim1=2, dim2=4)  # (b, c, l, m, j)
    own_gram = own_gram.permute(0, 1, 4, 2, 3)                          # (b, c, j, l, m)
    own_rhs = xcorr.diagonal(dim1=2, dim2=3).permute(0, 1, 3, 2)        # (b, c, j, l)
    own_coef = _regularised_solve(own_gram, own_rhs[..., None], eps)[..., 0]
    Ft = torch.fft.rfft(own_coef, n=n).permute(0, 2, 1, 3)              # (b, j, c, f)
    s_target = torch.fft.irfft(Ft * R, n=n)[..., :T + L - 1]
    pad = (0, L - 1)
    est_p = torch.nn.functional.pad(est, pad)
    return s_target, s_all - s_target, est_p - s_all, torch.nn.functional.pad(ref, pad)


class BSSMixLoss(_Loss):
    """Negative weighted sum of differentiable BSS-eval-style ratios per target.

    With the decomposition of :func:`bss_decomposition` (energies over channels
    and samples, ``eps`` added to every numerator and denominator)::

        SDR = 10 log10(|s_target|^2 / |e_interf + e_artif|^2)
        SIR = 10 log10(|s_target|^2 / |e_interf|^2)
        SAR = 10 log10(|s_target + e_interf|^2 / |e_artif|^2)
        ISR = 10 log10(|ref_j|^2 / |s_target - ref_j|^2)

    loss = -(weight_sdr SDR + weight_sir SIR + weight_sar SAR + weight_isr ISR),
    averaged over batch and targets. Parts: ``bss_mix`` (the loss), ``sdr_db``,
    ``sir_db``, ``sar_db``, ``isr_db`` (means in dB), ``mask_sum``.

    Args:
        filter_len: 0 (or 1) projects with one scale per channel; ``L > 1`` allows
            FIR distortion filters of ``L`` taps as BSS-eval does (a ``J*L``-square
            solve per item and channel: keep ``L`` small when training).
    """

    name = "bss_mix"

    def __init__(self, weight_sdr: float = 1.0, weight_sir: float = 0.0,
                 weight_sar: float = 0.0, weight_isr: float = 0.0, filter_len: int = 0,
                 mask_sum: float = 0.0, eps: float = 1e-8):
        super().__init__(mask_sum, eps)
        weights = dict(weight_sdr=weight_sdr, weight_sir=weight_sir,
                       weight_sar=weight_sar, weight_isr=weight_isr)
        for n, w in weights.items():
            if not math.isfinite(w):
                raise ValueError(f"bss_mix: {n} must be finite, got {w!r}")
        if all(w == 0 for w in weights.values()):
            raise ValueError("bss_mix: all of weight_sdr, weight_sir, weight_sar, "
                             "weight_isr are 0")
        if isinstance(filter_len, bool) or not isinstance(filter_len, int) or filter_len < 0:
            raise ValueError(f"bss_mix: filter_len must be an int >= 0, got {filter_len!r}")
        self.weight_sdr, self.weight_sir = float(weight_sdr), float(weight_sir)
        self.weight_sar, self.weight_isr = float(weight_sar), float(weight_isr)
        self.filter_len = filter_len

    def ratios(self, est_wave: torch.Tensor, ref_wave: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        """Per item and target ratios in dB: ``{"sdr", "sir", "sar", "isr"}``, each (B, J)."""
        _check_waves(est_wave, ref_wave, self.name)
        s_t, e_i, e_a, ref = bss_decomposition(est_wave, ref_wave, self.filter_len, self.eps)
        eps = self.eps

        def db(num, den):
            return 10.0 * torch.log10((_energy(num) + eps) / (_energy(den) + eps))

        return {"sdr": db(s_t, e_i + e_a), "sir": db(s_t, e_i),
                "sar": db(s_t + e_i, e_a), "isr": db(ref, s_t - ref)}

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        r = self.ratios(est_wave, ref_wave)
        total = (self.weight_sdr * r["sdr"] + self.weight_sir * r["sir"]
                 + self.weight_sar * r["sar"] + self.weight_isr * r["isr"])
        loss = -total.mean()
        parts = {"bss_mix": loss}
        parts.update({f"{k}_db": v.mean() for k, v in r.items()})
        return loss, parts

    def extra_repr(self) -> str:
        return (f"weight_sdr={self.weight_sdr}, weight_sir={self.weight_sir}, "
                f"weight_sar={self.weight_sar}, weight_isr={self.weight_isr}, "
                f"filter_len={self.filter_len}, " + super().extra_repr())


LOSSES: dict[str, type[_Loss]] = {
    cls.name: cls for cls in (SDRMixLoss, MSELoss, ComplexMSELoss, SISDRLoss, BSSMixLoss)
}
"""Loss classes by the name of their config file in ``conf/loss/``."""
