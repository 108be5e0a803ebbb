"""Networks: non-negative mixture magnitudes in, masks in [0, 1] per target out."""

from .cdae_blocks import CDAEBlocks
from .common import count_parameters
from .macs import count_macs
from .umx import OpenUnmix
from .xumx_matrix import XUMXMatrix

MODELS = {"xumx_matrix": XUMXMatrix, "cdae_blocks": CDAEBlocks, "umx": OpenUnmix}

__all__ = ["CDAEBlocks", "MODELS", "OpenUnmix", "XUMXMatrix", "count_macs", "count_parameters"]
