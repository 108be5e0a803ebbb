"""Training losses: known answers, combinations, gradients, BSS decomposition, errors,
learning (every loss decreases as a mask learns), the scale of every weighted term on
realistic audio, and the docstring examples."""

import doctest
import importlib
import inspect
import itertools
import math
import pkgutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from xslicq import losses
from xslicq.losses import (
    LOSSES,
    BSSMixLoss,
    ComplexMSELoss,
    MSELoss,
    SDRMixLoss,
    SISDRLoss,
    bss_decomposition,
    combination_energies,
    complex_nmse,
    magnitude_nmse,
    mask_sum_penalty,
    sdr,
    sisdr,
)

from helpers import CONF, SR, transform

EPS = 1e-8
B, J, C, T = 2, 4, 2, 4000


def noise(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def energy(x):
    return float(x.double().square().sum())


def with_snr(ref, snr_db, seed=1):
    """ref plus independent noise scaled to exactly ``snr_db`` per (channels, samples) item."""
    n = noise(*ref.shape, seed=seed, dtype=ref.dtype)
    ratio = ref.square().sum(dim=(-2, -1), keepdim=True) / n.square().sum(
        dim=(-2, -1), keepdim=True
    )
    return ref + n * torch.sqrt(ratio / 10 ** (snr_db / 10))


def ragged(batch=B, targets=J, seed=0, shapes=((3, 5, 8), (7, 5, 16), (2, 5, 4))):
    """A list of complex blocks (batch, targets, channels, rows, slices, time)."""
    return [
        torch.complex(
            noise(batch, targets, C, *s, seed=seed + 2 * i),
            noise(batch, targets, C, *s, seed=seed + 2 * i + 1),
        )
        for i, s in enumerate(shapes)
    ]


def softmax_masks(coefs, seed=5):
    return [torch.softmax(noise(*c.shape, seed=seed + i), dim=1) for i, c in enumerate(coefs)]


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------ sdr, sisdr


def test_sdr_of_identical_signals_is_the_eps_ceiling():
    ref = noise(B, J, C, T)
    expected = 10 * torch.log10((ref.square().sum(dim=(-2, -1)) + EPS) / EPS)
    got = sdr(ref.clone(), ref, EPS)
    assert got.shape == (B, J)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)
    assert float(got.min()) > 100


def test_sdr_of_silence_estimate_is_zero():
    ref = noise(B, J, C, T)
    assert torch.equal(sdr(torch.zeros_like(ref), ref, EPS), torch.zeros(B, J, dtype=ref.dtype))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 6.0, 20.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sdr_of_noisy_copy_is_the_snr(snr, dtype):
    ref = noise(B, J, C, T, dtype=dtype)
    got = sdr(with_snr(ref, snr), ref, EPS)
    assert float((got - snr).abs().max()) < 0.01


def test_sisdr_is_scale_invariant_and_sdr_is_not():
    ref = noise(B, J, C, T)
    assert float(sisdr(2 * ref, ref, EPS).min()) > 100
    assert float(sisdr(0.5 * ref, ref, EPS).min()) > 100
    assert float(sdr(2 * ref, ref, EPS).abs().max()) < 1e-9  # 10 log10(1 / 1)
    ref32 = ref.float()
    assert float(sisdr(2 * ref32, ref32, EPS).min()) > 60


def test_sisdr_ignores_offsets_and_reads_the_snr():
    ref = noise(B, J, C, T)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    n = noise(B, J, C, T, seed=3)
    n = n - n.mean(dim=-1, keepdim=True)
    # make the noise orthogonal to ref so the projection is exactly ref
    n = (
        n
        - (n * ref).sum(dim=(-2, -1), keepdim=True)
        / ref.square().sum(dim=(-2, -1), keepdim=True)
        * ref
    )
    n = n * torch.sqrt(
        ref.square().sum(dim=(-2, -1), keepdim=True)
        / n.square().sum(dim=(-2, -1), keepdim=True)
        / 10
    )
    got = sisdr(3 * (ref + n) + 0.7, ref, EPS)
    assert float((got - 10).abs().max()) < 0.01


@pytest.mark.parametrize("fn", [sdr, sisdr])
def test_functions_name_both_shapes_on_mismatch(fn):
    with pytest.raises(ValueError, match=r"\(2, 4, 2, 100\).*\(2, 3, 2, 100\)"):
        fn(torch.zeros(2, 4, 2, 100), torch.zeros(2, 3, 2, 100))


# --------------------------------------------------------------------------- sdr_mix


def test_combination_counts():
    assert len(SDRMixLoss.combinations(4)) == 14
    assert SDRMixLoss.combinations(4) == tuple(
        c for k in (1, 2, 3) for c in itertools.combinations(range(4), k)
    )
    assert SDRMixLoss.combinations(1) == ((0,),)
    assert SDRMixLoss.combinations(2) == ((0,), (1,))
    assert len(SDRMixLoss.combinations(3)) == 6
    m = SDRMixLoss.combination_matrix(4)
    assert m.shape == (14, 4) and m.sum() == 4 * 1 + 6 * 2 + 4 * 3
    with pytest.raises(ValueError, match="at least one target"):
        SDRMixLoss.combinations(0)


def test_sdr_mix_of_perfect_estimates_is_minus_the_ceiling():
    ref = noise(B, J, C, T)
    expected = np.mean(
        [
            10 * math.log10((energy(ref[b, list(c)].sum(dim=0)) + EPS) / EPS)
            for b in range(B)
            for c in SDRMixLoss.combinations(J)
        ]
    )
    coefs = ragged()
    loss, parts = SDRMixLoss()(ref.clone(), ref, coefs, [c.clone() for c in coefs])
    assert set(parts) == {"sdr_mix", "freq_db", "mask_sum"}
    assert abs(float(parts["sdr_mix"]) + expected) < 1e-9
    # the magnitude term is in dB since issue 10: equal magnitudes give its eps ceiling,
    # 10 log10(0 + eps) = -80 dB (it was a raw MSE, 0 here)
    assert float(parts["freq_db"]) == 10 * math.log10(EPS) and float(parts["mask_sum"]) == 0
    assert abs(float(loss) - (-expected + 0.1 * 10 * math.log10(EPS))) < 1e-9


def test_sdr_mix_averages_noisy_combinations():
    ref = noise(B, J, C, T)
    est = with_snr(ref, 10.0)
    loss, parts = SDRMixLoss(weight_freq=0.0)(est, ref)
    expected = np.mean(
        [
            float(sdr(est[b, list(c)].sum(0), ref[b, list(c)].sum(0), EPS))
            for b in range(B)
            for c in SDRMixLoss.combinations(J)
        ]
    )
    assert abs(float(loss) + expected) < 1e-9
    # a single target reduces to the plain negative SDR
    loss1, _ = SDRMixLoss(weight_freq=0.0)(est[:, :1], ref[:, :1])
    assert abs(float(loss1) + float(sdr(est[:, 0], ref[:, 0], EPS).mean())) < 1e-9


def test_combination_energies_equal_the_energies_of_the_summed_signals():
    x = noise(B, J, C, T, seed=3, dtype=torch.float32)
    combos = SDRMixLoss.combination_matrix(J, torch.float64)
    got = combination_energies(x, combos)
    expected = torch.tensor(
        [[energy(x[b, list(c)].sum(0)) for c in SDRMixLoss.combinations(J)] for b in range(B)],
        dtype=torch.float64,
    )
    assert got.dtype == torch.float64 and got.shape == (B, 14)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    # errors that cancel in a sum (target 2 = -target 0) give a zero energy, not a
    # negative one from rounding the Gram matrix
    d = noise(1, 2, C, T, seed=4)
    y = torch.cat([d, -d[:, :1]], dim=1)  # (1, 3, C, T)
    e = combination_energies(y, SDRMixLoss.combination_matrix(3, torch.float64))
    k = SDRMixLoss.combinations(3).index((0, 2))
    assert 0 <= float(e[0, k]) <= 1e-12 * energy(d[0, 0])
    assert torch.autograd.gradcheck(
        lambda z: combination_energies(z, combos), noise(1, J, 1, 6, seed=5).requires_grad_()
    )


def test_nmse_sums_every_block_per_item_and_target():
    # since issue 10 the spectral errors are relative energies per item and target (they
    # were means over all elements, blocks weighted by element count, in raw units)
    ref = ragged()
    est = [r.clone() for r in ref]
    est[0] = ref[0] + 1.0 * torch.exp(1j * torch.angle(ref[0]))  # |est| = |ref| + 1
    error = ref[0][0, 0].numel()  # per item and target: 1 for every element of block 0
    ref_energy = sum(r.abs().square().sum(dim=(2, 3, 4, 5)) for r in ref)  # (B, J)
    expected = error / ref_energy
    torch.testing.assert_close(magnitude_nmse(est, ref), expected, rtol=1e-12, atol=0)
    mse, parts = MSELoss()(None, None, est, ref)
    assert abs(float(mse) - float(expected.mean())) < 1e-12
    assert float(parts["mse"]) == float(mse)
    w = noise(B, J, C, 10)
    loss, parts = SDRMixLoss(weight_time=0.0, weight_freq=0.5)(w, w, est, ref)
    freq_db = float((10 * torch.log10(expected + EPS)).mean())
    assert abs(float(parts["freq_db"]) - freq_db) < 1e-9
    assert abs(float(loss) - 0.5 * freq_db) < 1e-9
    assert float(parts["sdr_mix"]) == 0


def test_mse_ignores_phase_and_complex_mse_does_not():
    ref = ragged()
    rotated = [r * 1j for r in ref]
    assert float(MSELoss()(None, None, rotated, ref)[0]) < 1e-20
    # |i r - r|^2 = 2 |r|^2: twice the reference's energy for every item and target
    two = torch.full((B, J), 2.0, dtype=torch.float64)
    torch.testing.assert_close(complex_nmse(rotated, ref), two)
    got, parts = ComplexMSELoss()(None, None, rotated, ref)
    assert abs(float(got) - 2) < 1e-12
    assert set(parts) == {"complex_mse", "mask_sum"}
    # an offset of 0.5 + 0.5j costs 0.5 per element, over the reference's energy
    offset = [r + (1 + 1j) * 0.5 for r in ref]
    n = sum(r[0, 0].numel() for r in ref)
    expected = (0.5 * n / sum(r.abs().square().sum(dim=(2, 3, 4, 5)) for r in ref)).mean()
    assert abs(float(ComplexMSELoss()(None, None, offset, ref)[0]) - float(expected)) < 1e-12


def test_sisdr_loss_is_minus_mean_sisdr():
    ref = noise(B, J, C, T)
    est = with_snr(ref, 5.0)
    loss, parts = SISDRLoss()(est, ref)
    assert abs(float(loss) + float(sisdr(est, ref).mean())) < 1e-12
    assert set(parts) == {"sisdr", "mask_sum"}


# -------------------------------------------------------------------------- bss_mix


def test_bss_interference_gives_sir_20_db(two_threads):
    assert torch.get_num_threads() == 2
    ref = noise(B, J, C, 44100)
    k = [1, 2, 3, 0]
    est = ref + 0.1 * ref[:, k]
    loss_fn = BSSMixLoss(weight_sdr=1.0, weight_sir=1.0, weight_sar=1.0, weight_isr=1.0)
    r = loss_fn.ratios(est, ref)
    assert float((r["sir"] - 20).abs().max()) < 0.5
    assert float((r["sdr"] - 20).abs().max()) < 0.5
    assert float(r["sar"].min()) > 60
    assert float(r["isr"].min()) > 40
    loss, parts = loss_fn(est, ref)
    assert set(parts) == {"bss_mix", "sdr_db", "sir_db", "sar_db", "isr_db", "mask_sum"}
    total = sum(float(parts[p]) for p in ("sdr_db", "sir_db", "sar_db", "isr_db"))
    assert abs(float(loss) + total) < 1e-6


def test_bss_white_noise_gives_sar_20_db(two_threads):
    ref = noise(B, J, C, 44100)
    est = with_snr(ref, 20.0, seed=7)
    r = BSSMixLoss().ratios(est, ref)
    assert float((r["sar"] - 20).abs().max()) < 1.0
    assert float(r["sir"].min()) > 40
    assert float((r["sdr"] - 20).abs().max()) < 1.0


def test_bss_is_the_same_with_one_and_two_threads():
    ref = noise(3, J, C, 8000)
    est = with_snr(ref, 10.0) + 0.2 * ref[:, [3, 0, 1, 2]]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = BSSMixLoss().ratios(est, ref)
        torch.set_num_threads(2)
        runs = [BSSMixLoss().ratios(est, ref) for _ in range(5)]
    finally:
        torch.set_num_threads(before)
    for run in runs:
        for key in one:
            torch.testing.assert_close(run[key], one[key], rtol=1e-9, atol=1e-9)


def test_bss_decomposition_matches_least_squares():
    ref, est = noise(2, 3, 2, 300), noise(2, 3, 2, 300, seed=1)
    for L in (0, 4):
        s_t, e_i, e_a, ref_p = bss_decomposition(est, ref, L, 1e-14)
        n = 300 + max(L, 1) - 1
        assert s_t.shape == e_i.shape == e_a.shape == ref_p.shape == (2, 3, 2, n)
        torch.testing.assert_close(s_t + e_i + e_a, torch.nn.functional.pad(est, (0, n - 300)))
        for b, c, j in itertools.product(range(2), range(2), range(3)):

            def delayed(x, n=n, L=L):
                return torch.stack(
                    [torch.nn.functional.pad(x, (d, n - 300 - d)) for d in range(max(L, 1))], dim=1
                )

            A = torch.cat([delayed(ref[b, k, c]) for k in range(3)], dim=1)
            A_own = delayed(ref[b, j, c])
            e = torch.nn.functional.pad(est[b, j, c], (0, n - 300))
            proj = A @ torch.linalg.lstsq(A, e[:, None]).solution[:, 0]
            own = A_own @ torch.linalg.lstsq(A_own, e[:, None]).solution[:, 0]
            torch.testing.assert_close(s_t[b, j, c], own, rtol=1e-7, atol=1e-8)
            torch.testing.assert_close(e_a[b, j, c], e - proj, rtol=1e-7, atol=1e-8)


def test_bss_distortion_filter_forgives_a_short_filter():
    ref = noise(1, J, C, 8000)
    ref[..., -2:] = 0  # so the roll wraps only zeros
    est = 0.8 * ref + 0.5 * torch.roll(ref, 2, dims=-1)  # an FIR distortion of ref_j
    plain = BSSMixLoss(filter_len=0).ratios(est, ref)
    filtered = BSSMixLoss(filter_len=4).ratios(est, ref)
    assert float(filtered["sdr"].min()) > 60
    assert float(plain["sdr"].max()) < 10


def test_bss_handles_a_silent_reference():
    ref = noise(1, J, C, 2000)
    ref[:, 2] = 0
    est = ref + 0.01 * noise(1, J, C, 2000, seed=2)
    est.requires_grad_(True)
    loss_fn = BSSMixLoss(weight_sdr=1, weight_sir=1, weight_sar=1)
    r = {k: v.detach() for k, v in loss_fn.ratios(est, ref).items()}
    # nothing of est_2 is target: SDR = 10 log10(eps / (|est_2|^2 + eps)), ISR = 0 dB
    silent = 10 * math.log10(EPS / (energy(est[:, 2].detach()) + EPS))
    assert abs(float(r["sdr"][0, 2]) - silent) < 1e-6
    assert float(r["isr"][0, 2]) == 0
    # the other targets are scored as if the silent one were absent (noise at 40 dB)
    keep = [0, 1, 3]
    alone = loss_fn.ratios(est[:, keep].detach(), ref[:, keep])
    for key in r:
        torch.testing.assert_close(r[key][:, keep], alone[key], rtol=0, atol=1e-3)
    assert float((r["sdr"][:, keep] - 40).abs().max()) < 0.5
    loss, _ = loss_fn(est, ref)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(est.grad).all()
    assert float(est.grad[:, keep].abs().max()) > 0


# ------------------------------------------------------------------------- gradients

LOSS_CASES = {
    "sdr_mix": lambda: SDRMixLoss(mask_sum=0.1),
    "sdr_mix_time_only": lambda: SDRMixLoss(weight_freq=0.0),
    "mse": lambda: MSELoss(mask_sum=0.1),
    "complex_mse": lambda: ComplexMSELoss(mask_sum=0.1),
    "sisdr": lambda: SISDRLoss(mask_sum=0.1),
    "bss_mix": lambda: BSSMixLoss(
        weight_sdr=1, weight_sir=0.5, weight_sar=0.5, weight_isr=0.1, mask_sum=0.1
    ),
    "bss_mix_filter": lambda: BSSMixLoss(weight_sdr=1, weight_sir=0.5, filter_len=3),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_gradients_flow(case, dtype):
    loss_fn = LOSS_CASES[case]()
    ref = noise(B, J, C, 1000, dtype=dtype)
    est = with_snr(ref, 5.0).detach().requires_grad_(True)
    ref_c = [
        c.to(torch.complex64 if dtype == torch.float32 else torch.complex128) for c in ragged()
    ]
    est_c = [(c + 0.3 * d).detach().requires_grad_(True) for c, d in zip(ref_c, ragged(seed=9))]
    masks = [(m + 0.1).requires_grad_(True) for m in softmax_masks(ref_c)]
    loss, parts = loss_fn(est, ref, est_c, ref_c, masks)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(not p.requires_grad for p in parts.values())
    loss.backward()
    grads = []
    if case in ("sdr_mix", "sdr_mix_time_only", "sisdr") or case.startswith("bss_mix"):
        grads.append(est.grad)
    if case in ("sdr_mix", "mse", "complex_mse"):
        grads += [c.grad for c in est_c]
    if loss_fn.mask_sum > 0:
        grads += [m.grad for m in masks]
    assert grads
    for g in grads:
        assert g is not None and torch.isfinite(g).all() and float(g.abs().max()) > 0


def test_magnitude_nmse_gradient_is_finite_at_zero():
    ref = ragged()
    est = [torch.zeros_like(r) for r in ref]
    est[1] = 0.5 * ref[1] * torch.exp(1j * noise(*ref[1].shape, seed=4))
    est = [e.requires_grad_(True) for e in est]
    loss, _ = MSELoss()(None, None, est, ref)
    loss.backward()
    # at zero the magnitude's subgradient is taken as 0 (no NaN from e / |e|)
    for i in (0, 2):
        assert torch.equal(est[i].grad, torch.zeros_like(ref[i]))
    # elsewhere torch's convention for a real loss of complex e: 2 dL/d(conj e); the loss
    # is the mean over items and targets of the error over the reference's energy
    e = est[1].detach()
    ref_energy = sum(r.abs().square().sum(dim=(2, 3, 4, 5)) for r in ref)  # (B, J)
    expected = 2 * (e.abs() - ref[1].abs()) * e / e.abs() / ref_energy[:, :, None, None, None, None]
    expected = expected / (B * J)
    torch.testing.assert_close(est[1].grad, expected, rtol=1e-9, atol=1e-15)


# ------------------------------------------------------------------------- learning

# How far each loss must have come after 20 Adam steps: a bound on the last value,
# given the first (dB losses must gain 6 dB; MSE losses must shrink by a factor).
DECREASE = {
    "sdr_mix": lambda first: first - 6.0,
    "sisdr": lambda first: first - 6.0,
    "bss_mix": lambda first: first - 6.0,
    "mse": lambda first: 0.25 * first,
    "complex_mse": lambda first: 0.7 * first,
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_decreases_while_a_mask_learns(name):
    """A learnable real mask per target on a fixed mixture (waveform and coefficients)."""
    assert name in DECREASE, f"loss {name!r} needs a bound in DECREASE"
    ref_w = noise(2, J, C, 1000, seed=11)
    ref_c = ragged(batch=2, seed=20)
    mix_w = ref_w.sum(dim=1, keepdim=True)
    mix_c = [c.sum(dim=1, keepdim=True) for c in ref_c]
    mask_w = torch.full(ref_w.shape, 1 / J, dtype=torch.float64, requires_grad=True)
    mask_c = [torch.full(c.shape, 1 / J, dtype=torch.float64, requires_grad=True) for c in ref_c]
    opt = torch.optim.Adam([mask_w, *mask_c], lr=0.1)
    loss_fn = LOSSES[name]()
    values = []
    for _ in range(20):
        est_c = [m * x for m, x in zip(mask_c, mix_c)]
        loss, _ = loss_fn(mask_w * mix_w, ref_w, est_c, ref_c, mask_c)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert values[-1] < DECREASE[name](values[0]), (values[0], values[-1])
    assert values[-1] == min(values) or values[-1] < values[len(values) // 2]


# ------------------------------------------------------------------------ mask_sum


def test_mask_sum_is_zero_for_masks_summing_to_one():
    ref = noise(B, J, C, 500)
    masks = softmax_masks(ragged())
    for loss_fn in (SISDRLoss(mask_sum=1.0), SDRMixLoss(weight_freq=0.0, mask_sum=1.0)):
        base, _ = type(loss_fn)(
            **({"weight_freq": 0.0} if isinstance(loss_fn, SDRMixLoss) else {})
        )(with_snr(ref, 3.0), ref)
        loss, parts = loss_fn(with_snr(ref, 3.0), ref, masks=masks)
        assert float(parts["mask_sum"]) < 1e-24
        # dB losses add the penalty in dB since issue 10: 10 log10(0 + eps) = -80 dB, the
        # eps ceiling of a perfect mixture (it was added as the relative energy, 0)
        assert abs(float(loss) - float(base) - 10 * math.log10(EPS)) < 1e-6


def test_mask_sum_is_positive_otherwise_and_weighted():
    ref = noise(B, J, C, 500)
    est = with_snr(ref, 3.0)
    masks = [m * 1.5 for m in softmax_masks(ragged())]  # sums to 1.5 everywhere
    base, _ = SISDRLoss()(est, ref)
    loss, parts = SISDRLoss(mask_sum=2.0)(est, ref, masks=masks)
    assert abs(float(parts["mask_sum"]) - 0.25) < 1e-9
    # added in dB in a dB loss since issue 10 (it was 2.0 * 0.25)
    assert abs(float(loss) - float(base) - 2.0 * 10 * math.log10(0.25 + EPS)) < 1e-9
    # in a loss of relative energies it is added as it is
    mse, _ = MSELoss()(None, None, ragged(), ragged(seed=3))
    loss, _ = MSELoss(mask_sum=2.0)(None, None, ragged(), ragged(seed=3), masks)
    assert abs(float(loss) - float(mse) - 2.0 * 0.25) < 1e-9
    # a single tensor with the target axis at dim 1 works the same
    single = torch.full((B, J, C, 6, 3), 0.5)  # sums to 2 -> (2 - 1)^2 = 1
    assert abs(float(SISDRLoss(mask_sum=1.0)(est, ref, masks=single)[1]["mask_sum"]) - 1) < 1e-9
    # logged with weight 0, not added to the loss
    loss0, parts0 = SISDRLoss()(est, ref, masks=masks)
    assert abs(float(parts0["mask_sum"]) - 0.25) < 1e-9 and float(loss0) == float(base)


@pytest.mark.parametrize("name", list(LOSSES))
def test_mask_sum_without_masks_raises(name):
    with pytest.raises(ValueError, match=f"{name}.*mask_sum"):
        LOSSES[name](mask_sum=0.5)(noise(B, J, C, 100), noise(B, J, C, 100), ragged(), ragged())


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["sdr_mix", "sisdr", "bss_mix"])
def test_malformed_waveforms_name_both_shapes(name):
    with pytest.raises(ValueError, match=r"\(2, 4, 2, 100\).*\(2, 3, 2, 100\)"):
        LOSSES[name]()(torch.zeros(2, 4, 2, 100), torch.zeros(2, 3, 2, 100), ragged(), ragged())


@pytest.mark.parametrize("name", ["sdr_mix", "mse", "complex_mse"])
def test_malformed_coefficients_name_both_shapes(name):
    w = noise(B, J, C, 100)
    est, ref = ragged(), ragged()
    est[1] = est[1][:, :3]
    with pytest.raises(ValueError, match=r"block 1.*\(2, 3, 2, 7, 5, 16\).*\(2, 4, 2, 7, 5, 16\)"):
        LOSSES[name]()(w, w, est, ref)
    with pytest.raises(ValueError, match="same number"):
        LOSSES[name]()(w, w, ragged()[:2], ragged())


@pytest.mark.parametrize("name", ["sdr_mix", "mse", "complex_mse"])
def test_missing_coefficients_name_the_loss(name):
    w = noise(B, J, C, 100)
    with pytest.raises(ValueError, match=f"'{name}'.*est_coefs"):
        LOSSES[name]()(w, w)
    with pytest.raises(ValueError, match=f"'{name}'.*ref_coefs is None"):
        LOSSES[name]()(w, w, ragged(), None)


def test_missing_or_wrong_rank_waveforms_raise():
    with pytest.raises(ValueError, match="'sisdr'.*est_wave"):
        SISDRLoss()(None, None)
    with pytest.raises(ValueError, match=r"\(batch, targets, channels, samples\).*\(4, 2, 100\)"):
        SISDRLoss()(torch.zeros(4, 2, 100), torch.zeros(4, 2, 100))


def test_bad_constructor_values_raise():
    with pytest.raises(ValueError, match="mask_sum"):
        SISDRLoss(mask_sum=-1.0)
    with pytest.raises(ValueError, match="weight_freq"):
        SDRMixLoss(weight_freq=float("nan"))
    with pytest.raises(ValueError, match="all of weight_sdr"):
        BSSMixLoss(weight_sdr=0.0)
    with pytest.raises(ValueError, match="filter_len"):
        BSSMixLoss(filter_len=-2)


def test_registry_names_match_config_files():
    assert set(LOSSES) == {"sdr_mix", "mse", "complex_mse", "sisdr", "bss_mix"}
    assert all(LOSSES[n].name == n for n in LOSSES)
    assert losses.LOSSES is LOSSES


# ------------------------------------------------------------------ with the sliCQT


def test_losses_on_real_slicqt_coefficients():
    t = transform("cqlog", bins=48, fmin=40.0, fmax=SR / 4)
    ref = noise(1, J, C, SR // 2, dtype=torch.float32)
    est = with_snr(ref, 10.0).requires_grad_(True)

    def coefs(x):
        return [c.reshape(x.shape[0], J, *c.shape[1:]) for c in t(x.reshape(-1, C, x.shape[-1]))]

    ref_c = coefs(ref)
    assert all(c.ndim == 6 and c.is_complex() for c in ref_c)
    assert float(MSELoss()(None, None, ref_c, ref_c)[0]) == 0
    loss, parts = SDRMixLoss()(est, ref, coefs(est), ref_c)
    loss.backward()
    assert torch.isfinite(est.grad).all() and float(est.grad.abs().max()) > 0
    # noise at 10 dB SNR: the magnitude error is below the reference, above the eps ceiling
    assert 10 * math.log10(EPS) < float(parts["freq_db"]) < 0


# ------------------------------------------------------- normalisation (issue 10)


def test_nmse_is_scale_free_and_exactly_zero_for_equal_coefficients():
    ref = ragged()
    est = [r + 0.3 * d for r, d in zip(ref, ragged(seed=9))]
    for fn in (magnitude_nmse, complex_nmse):
        base = fn(est, ref)
        assert base.shape == (B, J) and float(base.min()) > 0.01
        for k in (1e-3, 7.0, 1e4):
            scaled = fn([k * e for e in est], [k * r for r in ref])
            torch.testing.assert_close(scaled, base, rtol=1e-12, atol=0)
        assert torch.equal(fn([r.clone() for r in ref], ref), torch.zeros(B, J, dtype=base.dtype))
    for loss_fn, part in (
        (MSELoss(), "mse"),
        (ComplexMSELoss(), "complex_mse"),
        (SDRMixLoss(weight_time=0.0), "freq_db"),
    ):

        def term(e, r, loss_fn=loss_fn, part=part):
            return float(loss_fn(None, None, e, r)[1][part])

        base = term(est, ref)
        scaled = term([1e3 * e for e in est], [1e3 * r for r in ref])
        assert abs(scaled - base) < 1e-12 * max(1.0, abs(base))
        # a relative energy is exactly 0; the dB term is at its eps ceiling, 10 log10(eps)
        same = term([r.clone() for r in ref], ref)
        assert same == (10 * math.log10(EPS) if part == "freq_db" else 0.0)


def test_a_silent_reference_is_floored_at_the_batch_mean_energy():
    ref = [r.clone() for r in ragged()]
    for r in ref:
        r[0, 2] = 0  # item 0 has no target 2
    est = [r + 0.1 * d for r, d in zip(ref, ragged(seed=9))]
    error = sum((e.abs() - r.abs()).square().sum(dim=(2, 3, 4, 5)) for e, r in zip(est, ref))
    ref_energy = sum(r.abs().square().sum(dim=(2, 3, 4, 5)) for r in ref)
    expected = error / ref_energy
    expected[0, 2] = error[0, 2] / (1e-3 * ref_energy.mean())  # -30 dB below the mean
    got = magnitude_nmse(est, ref)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    assert 1 < float(got[0, 2]) < 1e4  # large, as leakage into silence should be, but finite
    est = [e.requires_grad_(True) for e in est]
    loss, parts = SDRMixLoss(weight_time=0.0)(None, None, est, ref)
    loss.backward()
    assert all(torch.isfinite(e.grad).all() for e in est)


def test_mask_sum_penalty_weights_by_mixture_energy():
    masks = softmax_masks(ragged())
    masks[1] = masks[1] * 3  # sums to 3 in block 1 only
    energy = [r.sum(dim=1).abs().square() for r in ragged(seed=3)]  # the mixture's
    silent_1 = [w if i != 1 else torch.zeros_like(w) for i, w in enumerate(energy)]
    assert float(mask_sum_penalty(masks, silent_1)) < 1e-24  # wrong only where silent
    got = mask_sum_penalty(masks, energy)
    expected = 4 * float(energy[1].sum()) / sum(float(w.sum()) for w in energy)
    assert abs(float(got) - expected) < 1e-12
    # scale-free in the weights
    assert abs(float(mask_sum_penalty(masks, [1e-6 * w for w in energy])) - expected) < 1e-12
    # the losses weight by the mixture's energy (the references' sum) given ref_coefs
    ref = ragged(seed=3)
    parts = MSELoss()(None, None, ref, ref, masks)[1]
    assert abs(float(parts["mask_sum"]) - expected) < 1e-12
    with pytest.raises(ValueError, match=r"weight block 0 .*\(2, 2, 3, 5, 8\)"):
        mask_sum_penalty(masks, [w[:, :1] for w in energy])


# ---------------------------------------------------- term scales on realistic audio
# Every weighted term of every conf/loss/ file (mask_sum at 0.1, the largest the Optuna
# search tries; the configs keep it 0) on 2 s of tone stems at 44.1 kHz through the
# cqlog sliCQT, with masks as an untrained network's (sigmoid of noise) and near the
# ideal ratio masks. Gradients are taken w.r.t. the masks, which make both estimates:
# est_coefs = masks * mixture coefficients, est_wave = their inverse transform.

MAIN_PART = {  # loss -> (its main weight, the part holding that term)
    "sdr_mix": ("weight_time", "sdr_mix"),
    "mse": (None, "mse"),
    "complex_mse": (None, "complex_mse"),
    "sisdr": (None, "sisdr"),
    "bss_mix": ("weight_sdr", "sdr_db"),
}
TERM_PART = {  # weight -> the part holding its (unweighted) term
    "weight_freq": "freq_db",
    "weight_sir": "sir_db",
    "weight_sar": "sar_db",
    "weight_isr": "isr_db",
    "mask_sum": "mask_sum",
}
LOSS_CONFIGS = {p.stem: OmegaConf.load(p) for p in sorted((CONF / "loss").glob("*.yaml"))}
TERMS = [
    (name, key)
    for name, cfg in LOSS_CONFIGS.items()
    for key in cfg
    if (key.startswith("weight_") or key == "mask_sum") and key != MAIN_PART[name][0]
]


def tone_stems(seed, seconds=2.0):
    """(targets, 1, samples) float32: a 0.2 tone, 0.3 clicks, a 0.3 55 Hz tone and 0.05
    noise (the left channel of helpers.write_tone_track's stems)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    stems = [
        0.2 * np.sin(2 * np.pi * (300 + 50 * seed) * t),
        0.3 * (np.arange(t.size) % (SR // 4) < 200) * rng.standard_normal(t.size),
        0.3 * np.sin(2 * np.pi * 55 * t),
        0.05 * rng.standard_normal(t.size),
    ]
    return torch.tensor(np.stack(stems)[:, None], dtype=torch.float32)


@pytest.fixture(scope="module")
def realistic():
    """The transform, the references (waveforms and coefficients), the mixture's
    coefficients, masks by state, and a cache for :func:`term_scales`."""
    t = transform("cqlog")
    ref = tone_stems(seed=0)[None]  # (1, 4, 1, 88200): one item keeps the test quick
    b, j, c, n = ref.shape
    ref_c = [r.reshape(b, j, *r.shape[1:]) for r in t(ref.reshape(b * j, c, n))]
    g = torch.Generator().manual_seed(0)
    untrained = [torch.sigmoid(torch.randn(r.shape, generator=g)) for r in ref_c]
    near = [  # the ideal ratio masks, off by up to 20 %
        r.abs() / r.abs().sum(dim=1, keepdim=True).clamp_min(1e-12) * (0.8 + 0.4 * m)
        for r, m in zip(ref_c, untrained)
    ]
    return {
        "transform": t,
        "ref": ref,
        "ref_c": ref_c,
        "mix_c": t(ref.sum(dim=1)),
        "masks": {"untrained": untrained, "near": near},
        "cache": {},
    }


def loss_gradient(data, loss_fn, masks):
    """``(parts, gradient w.r.t. the masks flattened)`` of ``loss_fn`` on masked mixtures."""
    masks = [m.clone().requires_grad_(True) for m in masks]
    est_c = [m * x[:, None] for m, x in zip(masks, data["mix_c"])]
    b, j, c, n = data["ref"].shape
    flat = [e.reshape(b * j, *e.shape[2:]) for e in est_c]
    est_w = data["transform"].inverse(flat, length=n).reshape(b, j, c, n)
    loss, parts = loss_fn(est_w, data["ref"], est_c, data["ref_c"], masks)
    grad = torch.autograd.grad(loss, masks)
    return parts, torch.cat([x.reshape(-1) for x in grad])


def term_scales(data, name, state):
    """The loss of ``conf/loss/<name>.yaml`` (mask_sum 0.1) in one state of the masks:
    ``(parts, gradient, {weight: gradient with that weight 0})``, cached."""
    key = (name, state)
    if key not in data["cache"]:
        from hydra.utils import instantiate

        cfg = LOSS_CONFIGS[name].copy()
        cfg.mask_sum = 0.1
        masks = data["masks"][state]
        parts, g_on = loss_gradient(data, instantiate(cfg), masks)
        off = {}
        for weight in [w for n, w in TERMS if n == name]:
            cfg_off = cfg.copy()
            cfg_off[weight] = 0.0
            off[weight] = loss_gradient(data, instantiate(cfg_off), masks)[1]
        data["cache"][key] = parts, g_on, off
    return data["cache"][key]


def test_every_weighted_term_is_covered():
    assert set(LOSS_CONFIGS) == set(MAIN_PART) == set(LOSSES)
    assert all(weight in TERM_PART for _, weight in TERMS), TERMS
    assert len(TERMS) == 9 and ("sdr_mix", "weight_freq") in TERMS


@pytest.mark.parametrize(("name", "weight"), TERMS, ids=[f"{n}-{w}" for n, w in TERMS])
def test_weighted_term_value_is_on_the_main_terms_scale(realistic, name, weight):
    """Untrained estimate: a relative energy within 10x of the main term, a dB term within
    30 dB of it (an untrained estimate's BSS ratios span ~22 dB)."""
    parts, _, _ = term_scales(realistic, name, "untrained")
    loss_fn = LOSSES[name]
    main = float(parts[MAIN_PART[name][1]])
    term = float(parts[TERM_PART[weight]])
    if weight == "mask_sum" and loss_fn.in_db:
        term = 10 * math.log10(term + EPS)  # added in dB
    if loss_fn.in_db:
        assert abs(term - main) < 30, (main, term)
    else:
        assert 0.1 < term / main < 10, (main, term)


@pytest.mark.parametrize("state", ["untrained", "near"])
@pytest.mark.parametrize(("name", "weight"), TERMS, ids=[f"{n}-{w}" for n, w in TERMS])
def test_weighted_term_moves_the_gradient(realistic, name, weight, state):
    """Turning the term's weight from 0 to its default (mask_sum: 0.1) changes the gradient
    by more than 1 % of its norm, both for an untrained and a nearly ideal estimate (a
    ratio of energies next to a dB term would fade there: its gradient shrinks with the
    error while a dB term's grows); while untrained, by less than half."""
    _, g_on, off = term_scales(realistic, name, state)
    rel = float((g_on - off[weight]).norm() / g_on.norm())
    assert rel > 0.01, rel
    if state == "untrained":
        assert rel < 0.5, rel


# ------------------------------------------------------------------------ docstrings

LOSS_MODULES = [
    importlib.import_module(f"xslicq.losses.{m.name}")
    for m in pkgutil.iter_modules(losses.__path__)
]


def test_every_family_module_is_checked():
    assert {m.__name__.rsplit(".", 1)[1] for m in LOSS_MODULES} >= {
        "base",
        "bss",
        "spectral",
        "waveform",
    }


@pytest.mark.parametrize("module", LOSS_MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0, f"{result.failed} example(s) of {module.__name__} failed"


@pytest.mark.parametrize("name", [n for n in losses.__all__ if n != "LOSSES"])
def test_public_docstrings_have_shape_examples_and_references(name):
    doc = inspect.getdoc(getattr(losses, name))
    for section in ("Shape:", "Examples:", "References:"):
        assert f"\n{section}\n" in doc, f"{name} has no {section} section"
