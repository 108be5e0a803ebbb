"""xslicq.checks: the package's one definition of an integer, a number and a sample rate."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from xslicq.checks import (
    SAMPLE_RATE_RANGE,
    check_int,
    check_positive_int,
    check_positive_number,
    check_sample_rate,
    is_int,
    is_number,
)
from xslicq.errors import CadenzaError, ConfigError, SeparationInputError


@pytest.mark.parametrize(
    "value, integer, number",
    [
        (3, True, True),
        (np.int64(3), True, True),
        (3.0, False, True),
        (np.float32(0.5), False, True),
        (True, False, False),
        (np.bool_(True), False, False),
        ("3", False, False),
        (None, False, False),
    ],
)
def test_a_bool_is_neither_an_integer_nor_a_number(value, integer, number):
    assert is_int(value) is integer
    assert is_number(value) is number


def test_finite_numbers():
    assert is_number(math.inf) and not is_number(math.inf, finite=True)
    assert not is_number(math.nan, finite=True) and is_number(1e300, finite=True)


def test_integer_checks_name_the_value_and_the_bound():
    assert check_int(np.int32(4), "workers", 0) == 4 and type(check_int(np.int32(4), "w")) is int
    with pytest.raises(ConfigError, match=r"^workers must be an integer >= 0 \(0: here\), got -1$"):
        check_int(-1, "workers", 0, ConfigError, " (0: here)")
    with pytest.raises(ValueError, match="^n must be a positive integer, got True$"):
        check_positive_int(True, "n")
    assert check_positive_number(2, "seconds") == 2.0
    for bad in (0, -1.0, math.nan, math.inf, False, "1"):
        with pytest.raises(ValueError, match="^seconds must be a positive number, got"):
            check_positive_number(bad, "seconds")


def test_sample_rate_forms():
    # the transforms': any real number in the range, returned unchanged
    assert check_sample_rate(22050.5) == 22050.5
    assert check_sample_rate(4000, (1000, 8000)) == 4000
    with pytest.raises(ValueError, match=r"sample_rate=400000 Hz is outside 8000\.\.384000 Hz"):
        check_sample_rate(400_000)
    with pytest.raises(ValueError, match="not a bool"):
        check_sample_rate(True)
    with pytest.raises(ValueError, match="sample_rate_range must be"):
        check_sample_rate(44100, (0, 10))
    # the separators': a whole number, returned as an int; None allows any positive rate
    assert check_sample_rate(44100.0, form="whole", error=SeparationInputError) == 44100
    assert check_sample_rate(100, None, form="whole") == 100
    with pytest.raises(SeparationInputError, match=r"a rate in kHz\? 44 kHz is 44000 Hz"):
        check_sample_rate(44, SAMPLE_RATE_RANGE, form="whole", error=SeparationInputError)
    with pytest.raises(ValueError, match="whole number of Hz"):
        check_sample_rate(44100.5, form="whole")
    # the hearing aid's: an integer with a lower bound only
    hint = " (why)"
    assert check_sample_rate(10**6, (16000, None), form="integer", hint=hint) == 10**6
    for bad in (8000, 44100.0, True):
        with pytest.raises(CadenzaError, match=r"must be an integer >= 16000 Hz \(why\), got"):
            check_sample_rate(bad, (16000, None), form="integer", error=CadenzaError, hint=hint)


def test_one_sample_rate_range_and_no_torch():
    from xslicq import inference, separator
    from xslicq.transform import checks

    assert checks.SAMPLE_RATE_RANGE is inference.SAMPLE_RATE_RANGE is SAMPLE_RATE_RANGE
    assert separator.check_sample_rate is checks.check_sample_rate is check_sample_rate
    code = "import sys, xslicq.checks; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
