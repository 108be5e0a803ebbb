"""Transforms: frequency scales, slicing, the sliCQT and its backends."""

from .backend import BACKENDS, cupy_available
from .matrix import RaggedToMatrix
from .scales import SCALES, FrequencyScale, make_scale
from .slicqt import SliCQT
from .stft import STFT

__all__ = [
    "BACKENDS",
    "SCALES",
    "STFT",
    "FrequencyScale",
    "RaggedToMatrix",
    "SliCQT",
    "cupy_available",
    "make_scale",
]
