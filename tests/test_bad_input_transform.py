"""Bad input to the transforms: configurations too large to build are refused in
milliseconds with an estimate, absurd arguments and sample rates get one clear error, the
STFT inverts exactly for any n_fft, hop and length, and mixed-precision blocks invert."""

import contextlib
import gc
import re
import resource
import time

import numpy as np
import pytest
import torch

from xslicq.transform import (
    MAX_TABLE_BYTES,
    SCALES,
    STFT,
    SliCQT,
    budget,
    estimate_tables,
)

from helpers import SR, rel_err, transform

FAST = 1.0  # seconds: a refusal is arithmetic, never a build


@contextlib.contextmanager
def bounded_memory():
    """Cap this process's address space at 2 GiB above its present size, so that an
    implementation building huge tables fails with a MemoryError (and the timeout marks stop
    a slow one) instead of exhausting the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + 2 * 2**30 if hard == resource.RLIM_INFINITY else min(vm + 2 * 2**30, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def refused_fast(match, **kwargs) -> str:
    """Build a SliCQT that must be refused, fast, with a ValueError matching ``match``; returns
    the message. The build runs under :func:`bounded_memory`, and whatever it raised is
    checked only once the memory is released."""
    with bounded_memory():
        start = time.perf_counter()
        try:
            SliCQT(**kwargs)
            raised = None
        except Exception as err:  # checked below, outside the cap
            raised = err
            raised.__traceback__ = None  # drop the frames (and arrays) of a failed build
        elapsed = time.perf_counter() - start
    gc.collect()
    assert isinstance(raised, ValueError), f"expected a ValueError, got {raised!r}"
    assert re.search(match, str(raised)), f"{match!r} not in {str(raised)!r}"
    assert elapsed < FAST, f"refused after {elapsed:.2f} s"
    return str(raised)


# ------------------------------------------------------------ sliCQT memory budget
@pytest.mark.timeout(60)
def test_a_million_bins_are_refused_with_the_estimate():
    msg = refused_fast("bins=1000000, .*too large", bins=10**6)
    # the estimate: slice length, coefficients and bytes, against the stated bound
    assert re.search(r"slices of at least \d+ samples", msg)
    assert re.search(r"tables of at least [\d.]+ GiB, above MAX_TABLE_BYTES = 4 GiB", msg)
    assert "lower bins" in msg


@pytest.mark.timeout(60)
def test_fmin_near_zero_is_refused_naming_fmin():
    msg = refused_fast("fmin=0.001.*too large", fmin=0.001)
    assert "raise fmin" in msg and "GiB" in msg


@pytest.mark.timeout(60)
def test_fmin_fmax_closer_than_one_bin_resolves_is_refused():
    msg = refused_fast("too large", fmin=1000.0, fmax=1000.0001)
    assert "widen fmin..fmax" in msg and "fmax - fmin = 0.0001 Hz" in msg


@pytest.mark.timeout(60)
def test_a_million_bins_per_octave_are_refused():
    msg = refused_fast("scale='oct', bins=1000000.*too large", scale="oct", bins=10**6)
    assert "lower bins" in msg


@pytest.mark.timeout(60)
def test_fmax_a_hair_below_nyquist_is_refused_naming_fmax():
    msg = refused_fast("too large", fmax=22049.9999)
    assert "Nyquist row" in msg and "change fmax" in msg


@pytest.mark.timeout(60)
def test_a_huge_explicit_sllen_is_refused():
    msg = refused_fast("sllen=10000000000\\).*too large", sllen=10**10)
    assert re.search(r"lower sllen: this scale needs only sllen >= \d+", msg)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bins", [10**7, 10**30, 10**400])
def test_astronomically_many_bins_are_refused(bins):
    refused_fast(f"bins={bins} is more than MAX_SCALE_BINS", bins=bins)


def test_fmin_below_what_a_given_slice_resolves_names_fmin():
    """With the slice length given, fmin has a floor: the DC row (2 * fmin wide) must span
    two spectrum samples of the slice."""
    msg = refused_fast("sllen=88200 is too short", scale="mel", fmin=0.01, sllen=88200)
    assert "DC row" in msg and "raise fmin" in msg


def test_max_table_bytes_is_the_bound():
    msg = refused_fast("max_table_bytes = 977 KiB", bins=3000, max_table_bytes=10**6)
    assert "too large" in msg and "MiB" in msg
    assert SliCQT(bins=3000, max_table_bytes=10**9).coefs_per_slice > 10**6 // 64


def test_the_memory_available_is_a_bound_too(monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 5 * 2**20)
    refused_fast("of memory available", bins=3000)


@pytest.mark.parametrize("scale", SCALES)
def test_the_estimate_is_the_built_transform(scale):
    """The estimate made before building equals what is built."""
    kw = dict(scale=scale, bins=24 if scale == "oct" else 262, fmin=32.9, sample_rate=SR)
    t = transform(scale)
    for est in (t.table_estimate, estimate_tables(**kw)):
        assert est.exact
        assert est.sllen == t.sllen
        assert est.nb_rows == t.nb_bins
        assert est.coefs_per_slice == t.coefs_per_slice
        assert est.coefs_per_second == pytest.approx(t.coefs_per_second)
        assert 0 < est.table_bytes < MAX_TABLE_BYTES


def test_estimates_of_absurd_configurations_are_fast():
    start = time.perf_counter()
    est = estimate_tables(bins=10**6)  # a million rows, sized one by one
    assert est.exact and est.table_bytes > MAX_TABLE_BYTES and est.nb_rows == 10**6 + 1
    assert est.coefs_per_slice >= est.sllen // 2 + 1
    bound = estimate_tables(fmin=1e-7)  # slices of years: only bounded
    assert not bound.exact and bound.table_bytes > 1000 * MAX_TABLE_BYTES
    assert bound.coefs_per_slice == bound.sllen // 2 + 1
    assert time.perf_counter() - start < FAST


# ------------------------------------------------------------- absurd arguments
@pytest.mark.parametrize("bins", [None, float("nan"), float("inf"), "many"])
def test_bins_that_are_not_a_count(bins):
    with pytest.raises(ValueError, match="bins must be a positive integer, got "):
        SliCQT(bins=bins)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fmin=True), "fmin must be a finite frequency in Hz, got True"),
        (dict(fmin="32.9"), "fmin must be a finite frequency in Hz, got '32.9'"),
        (dict(fmax=None), "fmax must be a finite frequency in Hz, got None"),
    ],
)
def test_frequencies_that_are_not_frequencies(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SliCQT(**kwargs)


@pytest.mark.parametrize("make", [SliCQT, STFT])
@pytest.mark.parametrize("rate", [1000, 10**6, True])
def test_sample_rates_outside_the_range_are_refused(make, rate):
    kwargs = dict(fmax=400.0) if make is SliCQT else {}
    match = "not a bool" if rate is True else f"sample_rate={rate} Hz is outside 8000..384000"
    with pytest.raises(ValueError, match=match):
        make(sample_rate=rate, **kwargs)


def test_sample_rate_range_widens_the_range():
    t = SliCQT(bins=12, fmin=50.0, fmax=400.0, sample_rate=1000, sample_rate_range=(500, 2000))
    x = torch.randn(1, 1, 3000, dtype=torch.float64)
    assert rel_err(x, t.inverse(t(x), 3000)) <= 1e-12
    assert STFT(n_fft=64, hop_length=16, sample_rate=1000, sample_rate_range=(1000, 1000))


# ------------------------------------------------------------ sliCQT inverse dtype
def test_inverse_of_mixed_precision_blocks():
    t = transform("bark")
    x = torch.randn(1, 2, 20000, dtype=torch.float64)
    c = t(x)
    mixed = [c[0].to(torch.complex64), *c[1:]]
    y = t.inverse(mixed, 20000)
    assert y.dtype == torch.float64
    assert rel_err(x, y) <= 1e-6  # the first block carries float32 precision
    y32 = t.inverse([b.to(torch.complex64) for b in c[:-1]] + [c[-1]], 20000)
    assert y32.dtype == torch.float64 and rel_err(x, y32) <= 1e-6


# ------------------------------------------------------------------------ STFT
LENGTHS = {"one": lambda n: 1, "hundred": lambda n: 100, "half": lambda n: n // 2}
LENGTHS["second"] = lambda n: SR + 17


@pytest.mark.parametrize("n_fft, hop", [(1001, 250), (1024, 256), (4096, 1024), (511, 128)])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_stft_round_trip_is_exact_for_odd_and_even_sizes(n_fft, hop, dtype, tol):
    t = STFT(n_fft=n_fft, hop_length=hop, sample_rate=SR)
    for name, length in LENGTHS.items():
        n = length(n_fft)
        x = torch.randn(2, 2, n, dtype=dtype)
        c = t(x)
        assert c[0].shape[3] == t.nb_slices(n)
        y = t.inverse(c, n)
        assert y.dtype == dtype and y.shape == x.shape
        assert rel_err(x, y) < tol, (name, n)


@pytest.mark.parametrize("hop", [1, 7, 300, 512, 700, 1000])
def test_stft_round_trip_for_any_hop_that_overlaps(hop):
    t = STFT(n_fft=1024, hop_length=hop, frames_per_slice=4)
    for n in (1, 513, 3000):
        x = torch.randn(1, 1, n, dtype=torch.float64)
        assert rel_err(x, t.inverse(t(x), n)) < 1e-12, n


@pytest.mark.parametrize("n_fft, hop", [(1024, 1024), (1024, 2000), (1000, 999)])
def test_stft_that_does_not_overlap_add_is_refused(n_fft, hop):
    with pytest.raises(ValueError, match="is not invertible: .*NOLA"):
        STFT(n_fft=n_fft, hop_length=hop)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_fft=True), "n_fft must be an integer >= 2, got n_fft=True"),
        (dict(n_fft=1024.0), "n_fft must be an integer >= 2, got n_fft=1024.0"),
        (dict(hop_length=0), "hop_length must be a positive integer, got 0"),
        (dict(hop_length="256"), "hop_length must be a positive integer, got '256'"),
        (dict(frames_per_slice=True), "frames_per_slice must be a power of two, got True"),
    ],
)
def test_stft_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STFT(**kwargs)


BAD_SIGNALS = [
    torch.full((1, 2, 5000), float("nan")),
    torch.tensor([[[0.0, float("inf"), 1.0]]]),
    torch.randn(5000),
    torch.zeros(1, 2, 0),
    torch.ones(1, 2, 100, dtype=torch.int16),
    np.zeros((1, 2, 100)),
]


@pytest.mark.parametrize("x", BAD_SIGNALS, ids=["nan", "inf", "1-D", "empty", "int16", "numpy"])
def test_stft_refuses_bad_signals_as_the_slicqt_does(x):
    with pytest.raises(Exception) as expected:
        transform("bark")(x)
    message = str(expected.value).replace("SliCQT(backend='torch')", "STFT")
    with pytest.raises(type(expected.value), match=re.escape(message)):
        STFT()(x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_stft_half_precision_runs_in_float32(dtype):
    t = STFT(n_fft=1024, hop_length=256)
    x = (0.5 * torch.randn(1, 2, 20000)).to(dtype)
    c = t(x)
    assert c[0].dtype == torch.complex64
    torch.testing.assert_close(c[0], t(x.float())[0])
    y = t.inverse(c, 20000)
    assert y.dtype == torch.float32 and rel_err(x.float(), y) < 1e-6


def test_stft_inverse_length_is_checked():
    t = STFT(n_fft=1024, hop_length=256, frames_per_slice=8)
    c = t(torch.randn(1, 1, 3000))
    longest = (c[0].shape[3] * 8 - 1) * 256 + 1
    assert t.inverse(c, longest).shape[-1] == longest
    with pytest.raises(ValueError, match=f"length must be an integer in \\[1, {longest}\\]"):
        t.inverse(c, longest + 1)
