"""The Cadenza pipeline's error (:class:`xslicq.errors.CadenzaError`, an evaluation error),
and pyclarity imported on demand with a clear message."""

from __future__ import annotations

from ..errors import CadenzaError

__all__ = ["CadenzaError", "clarity_api"]


def clarity_api() -> dict:
    """The pyclarity classes and functions the pipeline uses, by name.

    Returns:
        ``{"Compressor", "NALR", "compute_haaqi", "Audiogram", "Listener", "resample"}``.
    Raises:
        CadenzaError: pyclarity is not installed (the message says how to install it).
    """
    try:
        from clarity.enhancer.compressor import Compressor
        from clarity.enhancer.nalr import NALR
        from clarity.evaluator.haaqi import compute_haaqi
        from clarity.utils.audiogram import Audiogram, Listener
        from clarity.utils.signal_processing import resample
    except ImportError as err:
        raise CadenzaError(
            f"the Cadenza evaluation needs pyclarity, which is not installed "
            f"({err}); install it with `pip install -c constraints.txt "
            "pyclarity`"
        ) from err
    return {
        "Compressor": Compressor,
        "NALR": NALR,
        "compute_haaqi": compute_haaqi,
        "Audiogram": Audiogram,
        "Listener": Listener,
        "resample": resample,
    }
