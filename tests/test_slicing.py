import array_api_compat.numpy as xp
import numpy as np
import pytest

from xslicq.transform.slicing import (
    check_slicing,
    max_length,
    nb_slices,
    overlap_add,
    slice_signal,
    slice_window,
)


@pytest.mark.parametrize("sllen, trlen", [(16, 4), (1024, 256), (1000, 2), (107520, 26880)])
def test_slice_windows_are_a_partition_of_unity(sllen, trlen):
    w = slice_window(sllen, trlen)
    assert w.shape == (sllen,)
    hop = sllen // 2
    np.testing.assert_allclose(w[:hop] + w[hop:], 1.0, atol=1e-15)
    zeros = sllen // 4 - trlen // 2
    assert np.all(w[:zeros] == 0) and np.all(w[-zeros:] == 0)
    assert np.all(w[sllen // 4 + trlen // 2 : 3 * sllen // 4 - trlen // 2] == 1)


@pytest.mark.parametrize("length", [1, 5, 40, 41, 100, 333])
def test_slices_cover_the_signal_and_overlap_add_back(length):
    sllen, trlen = 64, 16
    s = nb_slices(length, sllen, trlen)
    assert max_length(s, sllen, trlen) >= length
    assert s == 1 or max_length(s - 1, sllen, trlen) < length  # no spare slice
    x = np.random.default_rng(length).standard_normal((2, 3, length))
    sl = slice_signal(xp, x, slice_window(sllen, trlen), sllen, s)
    assert sl.shape == (2, 3, s, sllen)
    np.testing.assert_allclose(overlap_add(xp, sl, sllen, length), x, atol=1e-15)


@pytest.mark.parametrize(
    "sllen, trlen, match",
    [
        (1026, 128, "sllen must be a positive multiple of 4"),
        (0, 128, "sllen must be a positive multiple of 4"),
        (1024, 127, "trlen must be a positive even number"),
        (1024, 0, "trlen must be a positive even number"),
        (1024, 512, "sllen must be longer than 2 \\* trlen"),
        (1024.0, 256, "sllen must be an integer"),
    ],
)
def test_bad_slicing(sllen, trlen, match):
    with pytest.raises(ValueError, match=match):
        check_slicing(sllen, trlen)
