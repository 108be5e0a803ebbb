"""Transforms: frequency scales, slicing, the sliCQT and its backends."""

from .backend import BACKENDS, cupy_available
from .budget import MAX_TABLE_BYTES, TableEstimate, estimate_tables
from .checks import SAMPLE_RATE_RANGE
from .matrix import RaggedToMatrix
from .scales import SCALES, FrequencyScale, make_scale
from .slicqt import SliCQT
from .stft import STFT

__all__ = [
    "BACKENDS",
    "MAX_TABLE_BYTES",
    "SAMPLE_RATE_RANGE",
    "SCALES",
    "STFT",
    "FrequencyScale",
    "RaggedToMatrix",
    "SliCQT",
    "TableEstimate",
    "cupy_available",
    "estimate_tables",
    "make_scale",
]
