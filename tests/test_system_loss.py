"""What the system hands the loss: the magnitude shortcut equals the complex path (loss and
gradients), and the mask-sum penalty is computed only where it counts or is logged."""

import pytest
import torch

from xslicq.system import SeparationSystem

from helpers import SR, TINY_MODEL, compose_config


def system_for(overrides):
    cfg = compose_config("train", [*TINY_MODEL, "model.hidden=4", *overrides])
    torch.manual_seed(0)
    return SeparationSystem.from_config(cfg).double()


def batch(seconds=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    refs = 0.1 * torch.randn(2, 4, 2, int(seconds * SR), generator=g, dtype=torch.float64)
    return refs.sum(1), refs


def loss_and_grads(system, data):
    system.zero_grad()
    loss, parts, _ = system.compute_loss(data)
    loss.backward()
    grads = [p.grad.clone() for p in system.parameters() if p.grad is not None]
    return loss.detach(), parts, grads


@pytest.mark.parametrize("loss", ["sdr_mix", "mse"])
def test_magnitude_shortcut_equals_the_complex_estimates(loss, monkeypatch):
    system, data = system_for([f"loss={loss}"]), batch()
    assert system.loss.magnitudes_only
    fast, _, fast_grads = loss_and_grads(system, data)
    monkeypatch.setattr(system.loss, "magnitudes_only", False)  # |mask * mixture| per target
    slow, _, slow_grads = loss_and_grads(system, data)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=0)
    assert len(fast_grads) == len(slow_grads) > 0
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-12)


def test_complex_losses_still_get_complex_estimates():
    system = system_for(["loss=complex_mse"])
    assert not system.loss.magnitudes_only
    estimates, est, masks, mags = system._separate(batch()[0])
    assert all(e.is_complex() for e in est)


def test_mask_sum_penalty_only_where_it_counts_or_is_logged():
    data = batch()
    system = system_for(["loss=sdr_mix"])  # mask_sum 0: training skips it
    assert "mask_sum" not in system.compute_loss(data)[1]
    with torch.no_grad():  # validation logs it
        assert float(system.compute_loss(data)[1]["mask_sum"]) > 0
    weighted = system_for(["loss=sdr_mix", "loss.mask_sum=0.5"])
    loss, parts, _ = weighted.compute_loss(data)
    assert float(parts["mask_sum"]) > 0
    unweighted = system_for(["loss=sdr_mix"]).compute_loss(data)[0]
    # the same network (seed 0): the weighted loss adds 0.5 * 10 log10(penalty + eps)
    expected = unweighted + 0.5 * 10 * torch.log10(parts["mask_sum"] + weighted.loss.eps)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-10, atol=1e-10)
