"""Losses on the BSS-eval decomposition of each estimate (SDR, SIR, SAR, ISR).

:func:`bss_decomposition` splits every estimate into the part explained by its own
reference, the part explained by the other references, and the rest, by least
squares projections that stay differentiable; :class:`BSSMixLoss` turns the parts
into energy ratios in dB and minimises their negative weighted sum.
"""

from __future__ import annotations

import math

import torch

from ..checks import is_int
from .base import _check_waves, _energy, _Loss

__all__ = ["bss_decomposition", "BSSMixLoss"]


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


def bss_decomposition(
    est: torch.Tensor, ref: torch.Tensor, filter_len: int = 0, eps: float = 1e-8
) -> tuple[torch.Tensor, ...]:
    """Differentiable BSS-eval decomposition ``est_j = s_target + e_interf + e_artif``.

    ``s_target`` is the orthogonal projection of ``est_j`` on ``ref_j`` and
    ``s_target + e_interf`` its projection on the span of all references, per
    item and channel. With ``filter_len <= 1`` the span is the references
    themselves (one scale each); with ``filter_len = L > 1`` it holds their
    delays by 0 .. L-1 samples (BSS-eval's distortion filters, via FFT
    correlations), and all signals grow to ``samples + L - 1``. The normal
    equations get ``eps * (mean diagonal + 1)`` on their diagonal, so silent
    references give zero coefficients instead of a singular solve.

    Args:
        est, ref: real tensors of the same shape.
        filter_len: taps of the distortion filters (0 or 1: a single scale).
        eps: relative Tikhonov regularisation of the projections.

    Shape:
        est, ref: (batch, targets, channels, samples).
        Returns ``(s_target, e_interf, e_artif, ref)``, each
        (batch, targets, channels, samples + max(filter_len, 1) - 1), with ``ref``
        zero-padded to that length.

    Examples:
        >>> import torch
        >>> from xslicq.losses import bss_decomposition
        >>> ref = torch.tensor([[[[1.0, -1.0, 1.0, -1.0]], [[1.0, 1.0, -1.0, -1.0]]]])
        >>> est = ref + 0.1 * ref.flip(1)             # each target leaks into the other
        >>> s_target, e_interf, e_artif, _ = bss_decomposition(est, ref)
        >>> torch.allclose(s_target, ref), torch.allclose(e_interf, 0.1 * ref.flip(1))
        (True, True)
        >>> float(e_artif.abs().max()) < 1e-6
        True
        >>> bss_decomposition(est, ref, filter_len=3)[0].shape
        torch.Size([1, 2, 1, 6])

    References:
        E. Vincent, R. Gribonval, C. Févotte, "Performance Measurement in Blind Audio
        Source Separation", IEEE TASLP 14(4), 2006: the decomposition by projections
        with time-invariant distortion filters. F.-R. Stöter, A. Liutkus, N. Ito,
        "The 2018 Signal Separation Evaluation Campaign", LVA/ICA 2018: BSSEval v4
        (museval), which computes it for the whole track at once, as here.
    """
    if filter_len <= 1:
        # gram[b, c, j, k] = <ref_j, ref_k>, rhs[b, c, k, j] = <ref_k, est_j>
        gram = torch.einsum("bjct,bkct->bcjk", ref, ref)
        rhs = torch.einsum("bkct,bjct->bckj", ref, est)
        own = rhs.diagonal(dim1=-2, dim2=-1)  # (b, c, j): <ref_j, est_j>
        energy = gram.diagonal(dim1=-2, dim2=-1)
        scale_t = own / (energy + eps * (energy.mean(dim=-1, keepdim=True) + 1))
        s_target = scale_t.permute(0, 2, 1)[..., None] * ref
        coef = _regularised_solve(gram, rhs, eps)  # (b, c, k, j)
        s_all = torch.einsum("bckj,bkct->bjct", coef, ref)
        return s_target, s_all - s_target, est - s_all, ref

    L = int(filter_len)
    B, J, C, T = ref.shape
    n = _next_fft_len(T + L - 1)
    R = torch.fft.rfft(ref, n=n)  # (b, j, c, f)
    E = torch.fft.rfft(est, n=n)
    # corr[b, c, j, k, tau] = sum_u ref_j(u) ref_k(u + tau), tau taken mod n
    corr = torch.fft.irfft(torch.einsum("bjcf,bkcf->bcjkf", R.conj(), R), n=n)
    lag = torch.arange(L, device=ref.device)
    toeplitz = (lag[:, None] - lag[None, :]) % n  # [l, m] -> l - m
    gram = corr[..., toeplitz]  # (b, c, j, k, l, m)
    gram = gram.permute(0, 1, 2, 4, 3, 5).reshape(B, C, J * L, J * L)
    # rhs[b, c, k, l, j] = sum_u ref_k(u) est_j(u + l)
    xcorr = torch.fft.irfft(torch.einsum("bkcf,bjcf->bckjf", R.conj(), E), n=n)[..., :L]
    rhs = xcorr.permute(0, 1, 2, 4, 3).reshape(B, C, J * L, J)
    coef = _regularised_solve(gram, rhs, eps).reshape(B, C, J, L, J)  # (b, c, k, l, j)
    # projections are sums of references convolved with the solved filters
    Fc = torch.fft.rfft(coef, n=n, dim=3)  # (b, c, k, f, j)
    s_all = torch.fft.irfft(torch.einsum("bckfj,bkcf->bjcf", Fc, R), n=n)[..., : T + L - 1]
    own_gram = gram.reshape(B, C, J, L, J, L).diagonal(dim1=2, dim2=4)  # (b, c, l, m, j)
    own_gram = own_gram.permute(0, 1, 4, 2, 3)  # (b, c, j, l, m)
    own_rhs = xcorr.diagonal(dim1=2, dim2=3).permute(0, 1, 3, 2)  # (b, c, j, l)
    own_coef = _regularised_solve(own_gram, own_rhs[..., None], eps)[..., 0]
    Ft = torch.fft.rfft(own_coef, n=n).permute(0, 2, 1, 3)  # (b, j, c, f)
    s_target = torch.fft.irfft(Ft * R, n=n)[..., : T + L - 1]
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
        weight_sdr, weight_sir, weight_sar, weight_isr: finite weights of the four
            ratios, not all 0. All four are in dB, so a weight is the worth of a dB of
            its ratio in dB of the others. A ratio's gradient grows as its error
            shrinks, so the best-met ratio pulls hardest: on 2 s of tone stems through
            the cqlog sliCQT, the ``conf/loss/bss_mix.yaml`` weights (1, 0.1, 0.1, 0.1)
            give SIR, SAR and ISR ~9 %, ~22 % and ~6 % of the gradient w.r.t. random
            masks, but near ideal ratio masks (SIR ~39 dB) SIR and ISR dominate it.
        filter_len: 0 (or 1) projects with one scale per channel; ``L > 1`` allows
            FIR distortion filters of ``L`` taps as BSS-eval does (a ``J*L``-square
            solve per item and channel: keep ``L`` small when training).
        mask_sum: weight of :func:`~xslicq.losses.mask_sum_penalty`, added in dB
            (``mask_sum * 10 log10(P + eps)``, see :class:`~xslicq.losses.base._Loss`).
        eps: see :func:`bss_decomposition`; also added to every energy of a ratio.

    Shape:
        est_wave, ref_wave: (batch, targets, channels, samples) real.
        masks: a list of real blocks (batch, targets, ...), or ``None``.
        Returns ``(loss, parts)``: a scalar tensor and a dict of detached scalars.
        :meth:`ratios` returns a dict of (batch, targets) tensors in dB.

    Examples:
        >>> import torch
        >>> from xslicq.losses import BSSMixLoss
        >>> ref = torch.tensor([[[[1.0, -1.0, 1.0, -1.0]], [[1.0, 1.0, -1.0, -1.0]]]])
        >>> est = ref + 0.1 * ref.flip(1)             # interference at 1 / 100 energy
        >>> loss_fn = BSSMixLoss(weight_sdr=1.0, weight_sir=1.0)
        >>> loss_fn.ratios(est, ref)["sir"].round(decimals=2)
        tensor([[20., 20.]])
        >>> loss, parts = loss_fn(est, ref)
        >>> round(float(loss), 2)                     # -(SDR + SIR)
        -40.0

    References:
        E. Vincent, R. Gribonval, C. Févotte, "Performance Measurement in Blind Audio
        Source Separation", IEEE TASLP 14(4), 2006: SDR, SIR, SAR. E. Vincent,
        H. Sawada, P. Bofill, S. Makino, J. P. Rosca, "First Stereo Audio Source
        Separation Evaluation Campaign", ICA 2007: ISR. F.-R. Stöter, A. Liutkus,
        N. Ito, "The 2018 Signal Separation Evaluation Campaign", LVA/ICA 2018:
        BSSEval v4.
    """

    name = "bss_mix"
    in_db = True

    def __init__(
        self,
        weight_sdr: float = 1.0,
        weight_sir: float = 0.0,
        weight_sar: float = 0.0,
        weight_isr: float = 0.0,
        filter_len: int = 0,
        mask_sum: float = 0.0,
        eps: float = 1e-8,
    ):
        super().__init__(mask_sum, eps)
        weights = dict(
            weight_sdr=weight_sdr,
            weight_sir=weight_sir,
            weight_sar=weight_sar,
            weight_isr=weight_isr,
        )
        for n, w in weights.items():
            if not math.isfinite(w):
                raise ValueError(f"bss_mix: {n} must be finite, got {w!r}")
        if all(w == 0 for w in weights.values()):
            raise ValueError("bss_mix: all of weight_sdr, weight_sir, weight_sar, weight_isr are 0")
        if not is_int(filter_len) or filter_len < 0:
            raise ValueError(f"bss_mix: filter_len must be an int >= 0, got {filter_len!r}")
        self.weight_sdr, self.weight_sir = float(weight_sdr), float(weight_sir)
        self.weight_sar, self.weight_isr = float(weight_sar), float(weight_isr)
        self.filter_len = filter_len

    def ratios(self, est_wave: torch.Tensor, ref_wave: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per item and target ratios in dB: ``{"sdr", "sir", "sar", "isr"}``, each (B, J)."""
        _check_waves(est_wave, ref_wave, self.name)
        s_t, e_i, e_a, ref = bss_decomposition(est_wave, ref_wave, self.filter_len, self.eps)
        eps = self.eps

        def db(num, den):
            return 10.0 * torch.log10((_energy(num) + eps) / (_energy(den) + eps))

        return {
            "sdr": db(s_t, e_i + e_a),
            "sir": db(s_t, e_i),
            "sar": db(s_t + e_i, e_a),
            "isr": db(ref, s_t - ref),
        }

    def terms(self, est_wave, ref_wave, est_coefs, ref_coefs):
        r = self.ratios(est_wave, ref_wave)
        total = (
            self.weight_sdr * r["sdr"]
            + self.weight_sir * r["sir"]
            + self.weight_sar * r["sar"]
            + self.weight_isr * r["isr"]
        )
        loss = -total.mean()
        parts = {"bss_mix": loss}
        parts.update({f"{k}_db": v.mean() for k, v in r.items()})
        return loss, parts

    def extra_repr(self) -> str:
        return (
            f"weight_sdr={self.weight_sdr}, weight_sir={self.weight_sir}, "
            f"weight_sar={self.weight_sar}, weight_isr={self.weight_isr}, "
            f"filter_len={self.filter_len}, " + super().extra_repr()
        )
