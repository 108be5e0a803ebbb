"""Wiener-EM for NumPy arrays: the names :mod:`xslicq.filtering` defines once, on the array
API, importable here as before (the torch-free separator's filter, :mod:`xslicq.inference`)."""

from .filtering import BATCH_COEFFICIENTS, check_block, spatial_covariances, wiener, wiener_block
from .filtering import _solve as _solve

__all__ = ["BATCH_COEFFICIENTS", "check_block", "spatial_covariances", "wiener", "wiener_block"]
