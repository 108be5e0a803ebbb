"""Value checks every layer shares: one definition of "an integer", "a number" and "a sample
rate", each failing with one clear error that names the value and what is allowed.

The caller chooses the error class (one of :mod:`xslicq.errors`, or ``ValueError``) and keeps
its own message where it has one; the predicates :func:`is_int` and :func:`is_number` are the
one way the package tells a number from a bool (``True`` is an ``int`` to Python). This
module imports only NumPy, so the torch-free inference path uses it too.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "SAMPLE_RATE_RANGE",
    "check_int",
    "check_positive_int",
    "check_positive_number",
    "check_sample_rate",
    "is_int",
    "is_number",
]

# Hz: telephone speech to the fastest studio converters. Below is a rate given in kHz or a
# boolean (True is 1 Hz, upsampled 44,100x), above is no audio rate in use.
SAMPLE_RATE_RANGE = (8_000, 384_000)

TRANSFORM_HINT = "pass sample_rate_range=(low, high) to the transform to allow it"


def is_int(value) -> bool:
    """True for an integer (Python's or NumPy's), False for a bool and anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value, finite: bool = False) -> bool:
    """True for a real number (int, float, NumPy's), False for a bool and anything else;
    ``finite``: False for NaN and infinities too."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and (not finite or math.isfinite(value))
    )


def check_int(
    value, name: str, minimum: int = 1, error: type[Exception] = ValueError, note: str = ""
) -> int:
    """``value`` as an int if it is an integer >= ``minimum``, else ``error`` with
    ``"<name> must be an integer >= <minimum><note>, got <value>"``."""
    if not is_int(value) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}{note}, got {value!r}")
    return int(value)


def check_positive_int(value, name: str, error: type[Exception] = ValueError) -> int:
    """``value`` as an int if it is an integer >= 1, else ``error`` with
    ``"<name> must be a positive integer, got <value>"``."""
    if not is_int(value) or value < 1:
        raise error(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_number(
    value, name: str, error: type[Exception] = ValueError, what: str = "a positive number"
) -> float:
    """``value`` as a float if it is a finite number > 0, else ``error`` with
    ``"<name> must be <what>, got <value>"``."""
    if not (is_number(value, finite=True) and value > 0):
        raise error(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_sample_rate(
    sample_rate,
    allowed=SAMPLE_RATE_RANGE,
    *,
    form: str = "number",
    error: type[Exception] = ValueError,
    hint: str = TRANSFORM_HINT,
):
    """``sample_rate`` if it is a rate in Hz within ``allowed``, else ``error`` naming the
    value and what is allowed.

    Args:
        sample_rate: the rate in Hz.
        allowed: ``(lowest, highest)`` in Hz, both included; ``highest`` None: no upper bound;
            ``allowed`` None: any positive rate.
        form: what the rate may be and what comes back: ``"number"`` any real number (not a
            bool), returned unchanged (the transforms); ``"whole"`` a whole number such as
            ``44100`` or ``44100.0``, returned as an int (the separators); ``"integer"`` an
            integer, returned as an int (the hearing aid, whose message then says why it
            needs ``lowest``: ``hint``).
        error: the class raised.
        hint: the end of the out-of-range message: how to allow the rate anyway (or, for
            ``"integer"``, why the lowest rate).
    """
    if form == "integer":
        low = allowed[0]
        if not is_int(sample_rate) or sample_rate < low:
            raise error(f"sample_rate must be an integer >= {low} Hz{hint}, got {sample_rate!r}")
        return int(sample_rate)
    if form == "whole":
        if not (is_number(sample_rate, finite=True) and float(sample_rate).is_integer()):
            raise error(
                f"sample_rate must be a whole number of Hz such as 44100, got {sample_rate!r} "
                f"({type(sample_rate).__name__})"
            )
        rate = int(sample_rate)
        if rate <= 0:
            raise error(f"sample_rate must be positive, got {sample_rate!r}")
        if allowed is not None and not allowed[0] <= rate <= allowed[1]:
            low, high = allowed
            khz = f" (a rate in kHz? {rate} kHz is {rate * 1000} Hz)" if rate < low else ""
            raise error(f"sample_rate={rate} Hz is outside {low}..{high} Hz{khz}; {hint}")
        return rate
    if not (
        isinstance(allowed, (tuple, list))
        and len(allowed) == 2
        and all(is_number(v) for v in allowed)
        and 0 < allowed[0] <= allowed[1] < math.inf
    ):
        raise error(
            f"sample_rate_range must be (lowest, highest) positive rates in Hz, got {allowed!r}"
        )
    lowest, highest = allowed
    if not is_number(sample_rate):
        raise error(
            f"sample_rate must be a positive number of Hz (not a bool), got {sample_rate!r}"
        )
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise error(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if not lowest <= sample_rate <= highest:
        raise error(f"sample_rate={sample_rate!r} Hz is outside {lowest:g}..{highest:g} Hz; {hint}")
    return sample_rate
