"""Differentiable training losses, one module per family (what they compare).

* :mod:`~xslicq.losses.base` -- the input format every loss takes, its checks, the
  mask-sum regulariser (:func:`mask_sum_penalty`) and the base class.
* :mod:`~xslicq.losses.waveform` -- waveforms by SDR: :func:`sdr`, :func:`sisdr`,
  :func:`combination_energies` (energies of sums of targets from their Gram matrix),
  :class:`SDRMixLoss` (``sdr_mix``, CrossNet-Open-Unmix's mixture combinations plus a
  magnitude term in dB), :class:`SISDRLoss` (``sisdr``).
* :mod:`~xslicq.losses.spectral` -- transform coefficients as relative errors:
  :func:`magnitude_nmse`, :func:`complex_nmse`, :class:`MSELoss` (``mse``),
  :class:`ComplexMSELoss` (``complex_mse``).
* :mod:`~xslicq.losses.bss` -- BSS-eval: :func:`bss_decomposition`,
  :class:`BSSMixLoss` (``bss_mix``, weighted SDR, SIR, SAR and ISR).

Every loss is called as ``loss_fn(est_wave, ref_wave, est_coefs=None, ref_coefs=None,
masks=None)`` and returns ``(loss, parts)``; shapes, and the units that make a weight
mean what it says (every term in dB or a relative energy), are in
:mod:`~xslicq.losses.base`.
:data:`LOSSES` maps the names of ``conf/loss/*.yaml`` to the classes. Evaluation
metrics (not for backpropagation) are in :mod:`xslicq.metrics`.
"""

from __future__ import annotations

from .base import _Loss, mask_sum_penalty
from .bss import BSSMixLoss, bss_decomposition
from .spectral import ComplexMSELoss, MSELoss, complex_nmse, magnitude_nmse
from .waveform import SDRMixLoss, SISDRLoss, combination_energies, sdr, sisdr

__all__ = [
    "sdr",
    "sisdr",
    "combination_energies",
    "magnitude_nmse",
    "complex_nmse",
    "mask_sum_penalty",
    "bss_decomposition",
    "SDRMixLoss",
    "MSELoss",
    "ComplexMSELoss",
    "SISDRLoss",
    "BSSMixLoss",
    "LOSSES",
]

LOSSES: dict[str, type[_Loss]] = {
    cls.name: cls for cls in (SDRMixLoss, MSELoss, ComplexMSELoss, SISDRLoss, BSSMixLoss)
}
"""Loss classes by the name of their config file in ``conf/loss/``."""
