"""Networks: shapes, mask range, gradients, normalisation, CrossNet bridging, overfitting."""

import copy

import numpy as np
import pytest
import torch

from xslicq.models import MODELS, CDAEBlocks, OpenUnmix, XUMXMatrix, count_parameters
from xslicq.models.common import fold_overlap, unfold_overlap
from xslicq.transform import RaggedToMatrix, SliCQT

from helpers import transform


def assert_masks(masks, shape):
    assert tuple(masks.shape) == shape
    assert bool(torch.isfinite(masks).all())
    assert float(masks.detach().min()) >= 0.0 and float(masks.detach().max()) <= 1.0


def assert_all_grads(model, loss):
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert bool(torch.isfinite(p.grad).all()), f"non-finite gradient in {name}"


# ------------------------------------------------------------------ slice overlap fold
@pytest.mark.parametrize("S,T", [(1, 2), (1, 8), (3, 16), (7, 128)])
def test_fold_is_exactly_inverted(S, T):
    x = torch.randn(2, 3, 5, S, T)
    folded = fold_overlap(x)
    assert folded.shape == (2, 6, 5, (S + 1) * T // 2)
    assert torch.equal(unfold_overlap(folded, S), x)


def test_fold_aligns_the_two_copies_of_each_half_slice():
    # column t of slice s is centred on signal time (s - 1) * T / 2 + t (in column units)
    S, T = 5, 16
    time = (torch.arange(S)[:, None] - 1) * T // 2 + torch.arange(T)
    x = time.expand(1, 1, 3, S, T).float()
    folded = fold_overlap(x)  # channel 0: slice s-1, 1: slice s
    half = T // 2
    inner = slice(half, S * half)  # half-slices both slices cover
    assert torch.equal(folded[:, 0, :, inner], folded[:, 1, :, inner])
    # the outermost half-slices have one zero copy
    assert torch.all(folded[:, 0, :, :half] == 0) and torch.all(folded[:, 1, :, -half:] == 0)
    # the geometry assumed above holds for a real transform: the second half of slice s and
    # the first half of slice s + 1 are centred on the same samples, in every block
    t = transform("bark")
    for block, (_, m) in enumerate(t.block_shapes):
        first = t.coef_sample(block, 1, np.arange(m // 2))
        assert np.allclose(t.coef_sample(block, 0, np.arange(m // 2, m)), first)


# ------------------------------------------------------------------------ XUMXMatrix
@pytest.mark.parametrize(
    "F,S,T,hidden",
    [
        (51, 1, 8, 8),
        (77, 2, 16, 8),
        (263, 3, 128, 8),
        (300, 1, 32, 4),
        (64, 30, 8, 4),
        (99, 2, 256, 4),
        (50, 1, 2, 4),
    ],
)
def test_xumx_matrix_shapes_and_range(F, S, T, hidden):
    model = XUMXMatrix(F, T, hidden=hidden, depth=3)
    x = torch.rand(2, 2, F, S, T)
    assert_masks(model(x), (2, 4, 2, F, S, T))


def test_xumx_matrix_default_size_and_grads():
    model = XUMXMatrix(263, 128)
    assert 200_000 <= count_parameters(model) <= 2_000_000
    masks = model(torch.rand(1, 2, 263, 1, 128))
    assert_masks(masks, (1, 4, 2, 263, 1, 128))
    assert_all_grads(model, masks.mean())


def test_xumx_matrix_samples_are_independent():
    model = XUMXMatrix(40, 16, hidden=8, depth=2)
    x = torch.rand(3, 2, 40, 2, 16)
    alone = model(x[1:2])
    assert torch.allclose(model(x)[1:2], alone, atol=1e-5)


def test_per_bin_normalisation_from_stats():
    F, T = 37, 8
    mean = np.linspace(0.5, 10.0, F)
    std = np.geomspace(0.01, 5.0, F)
    x = torch.as_tensor(
        mean[:, None, None] + std[:, None, None] * np.random.randn(8, 2, F, 20, T),
        dtype=torch.float32,
    )
    data_mean = x.mean(dim=(0, 1, 3, 4)).numpy()
    data_std = x.std(dim=(0, 1, 3, 4)).numpy()
    for model in (
        XUMXMatrix(F, T, hidden=4, stats=(data_mean, data_std)),
        XUMXMatrix(F, T, hidden=4).init_from_stats(data_mean, data_std),
    ):
        z = model.normalise(x)
        assert np.allclose(z.mean(dim=(0, 1, 3, 4)).detach().numpy(), 0.0, atol=1e-4)
        assert np.allclose(z.std(dim=(0, 1, 3, 4)).detach().numpy(), 1.0, atol=1e-4)
    umx = OpenUnmix(F, hidden=8, layers=1, stats=(data_mean, data_std))
    z = umx.normalise(x.reshape(8, 2, F, 20 * T))
    assert np.allclose(z.mean(dim=(0, 1, 3)).detach().numpy(), 0.0, atol=1e-4)
    assert np.allclose(z.std(dim=(0, 1, 3)).detach().numpy(), 1.0, atol=1e-4)
    # constants are buffers, learned statistics parameters: nothing frozen by hand
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"\(37,\).*\(5,\)"):
        XUMXMatrix(F, T).init_from_stats(np.zeros(5), np.ones(5))


def _perturbed_outputs(model, x, module):
    with torch.no_grad():
        before = model(x)
        for p in module.parameters():
            p.add_(0.5 * torch.randn_like(p))
        return before, model(x)


def test_xumx_matrix_bridging_couples_targets():
    model = XUMXMatrix(40, 16, hidden=8, depth=2).eval()
    x = torch.rand(1, 2, 40, 2, 16)
    before, after = _perturbed_outputs(model, x, model.encoders[0])
    assert not torch.allclose(before[:, 1:], after[:, 1:])  # other targets feel encoder 0
    before, after = _perturbed_outputs(model, x, model.decoders[0])
    assert torch.equal(before[:, 1:], after[:, 1:])  # decoders are per target
    assert not torch.equal(before[:, 0], after[:, 0])


def test_bad_input_shapes_name_the_shapes():
    model = XUMXMatrix(40, 16, hidden=4)
    for bad in (
        torch.rand(2, 40, 2, 16),
        torch.rand(1, 2, 41, 2, 16),
        torch.rand(1, 1, 40, 2, 16),
        torch.rand(1, 2, 40, 2, 8),
    ):
        with pytest.raises(ValueError, match=r"expected shape .*nb_bins=40.*got \("):
            model(bad)
    with pytest.raises(ValueError, match="power of two"):
        XUMXMatrix(40, 12)
    umx = OpenUnmix(40, hidden=8, layers=1)
    for bad in (torch.rand(1, 2, 40), torch.rand(1, 2, 39, 5), torch.rand(1, 3, 40, 5)):
        with pytest.raises(ValueError, match=r"expected shape .*nb_bins=40.*got \("):
            umx(bad)


def test_xumx_matrix_overfits_one_example():
    torch.manual_seed(1)
    model = XUMXMatrix(32, 16, hidden=8, depth=2)
    x = torch.rand(1, 2, 32, 2, 16)
    target = torch.rand(1, 4, 2, 32, 2, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] <= 0.5 * losses[0], (losses[0], losses[-1])


# ------------------------------------------------------------------------ CDAEBlocks
def test_cdae_blocks_on_a_real_transform():
    t = SliCQT("bark")
    model = CDAEBlocks(t.block_shapes, hidden=4)
    coefs = t.forward(torch.randn(2, 2, 3 * t.sllen))
    mags = [c.abs().float() for c in coefs]
    masks = model(mags)
    assert len(masks) == len(t.block_shapes) == len(model.cdaes)
    assert all(len(per_target) == 4 for per_target in model.cdaes)
    nb_slices = coefs[0].shape[3]
    for m, (rows, time) in zip(masks, t.block_shapes):
        assert_masks(m, (2, 4, 2, rows, nb_slices, time))
    assert_all_grads(model, sum(m.mean() for m in masks))
    # masks go back onto the mixture like any ragged mask
    assert [tuple(c.shape) for c in coefs] == [tuple(m[:, 0].shape) for m in masks]
    with pytest.raises(ValueError, match="block 1"):
        model([mags[0], mags[0]] + mags[2:])


def test_cdae_blocks_targets_are_independent():
    model = CDAEBlocks([(3, 4), (10, 16)], hidden=4).eval()
    x = [torch.rand(1, 2, 3, 1, 4), torch.rand(1, 2, 10, 1, 16)]
    with torch.no_grad():
        before = model(x)
        for p in model.cdaes[1][0].parameters():
            p.add_(torch.randn_like(p))
        after = model(x)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1][:, 1:], after[1][:, 1:])
    assert not torch.equal(before[1][:, 0], after[1][:, 0])


# ------------------------------------------------------------------------- OpenUnmix
@pytest.mark.parametrize("F,N,max_bin", [(263, 37, None), (51, 1, 20), (64, 13, 64)])
def test_umx_shapes_range_and_grads(F, N, max_bin):
    model = OpenUnmix(F, hidden=16, layers=3, max_bin=max_bin)
    masks = model(torch.rand(2, 2, F, N))
    assert_masks(masks, (2, 4, 2, F, N))
    assert_all_grads(model, masks.mean())


def test_umx_on_a_flattened_matrix_and_bridging():
    t = transform("bark")
    r2m = RaggedToMatrix(t, T=16)
    mags = r2m.forward([c.abs().float() for c in t.forward(torch.randn(1, 2, 2 * t.sllen))])
    flat = RaggedToMatrix.flatten(mags)
    model = OpenUnmix(t.nb_bins, hidden=8, layers=1).eval()
    before, after = _perturbed_outputs(model, flat, model.nets[0].fc1)
    assert before.shape == (1, 4, 2, t.nb_bins, flat.shape[-1])
    assert not torch.allclose(before[:, 1:], after[:, 1:])


def test_default_sizes_and_registry():
    assert MODELS == {"xumx_matrix": XUMXMatrix, "cdae_blocks": CDAEBlocks, "umx": OpenUnmix}
    # the system reads how to feed each model from its class
    assert {name: cls.input_form for name, cls in MODELS.items()} == {
        "xumx_matrix": "matrix",
        "cdae_blocks": "ragged",
        "umx": "frames",
    }
    assert count_parameters(OpenUnmix(263)) > count_parameters(XUMXMatrix(263, 128))
    assert 100_000 < count_parameters(CDAEBlocks(transform("bark").block_shapes)) < 2_000_000


def test_count_macs_known_answers():
    from torch import nn

    from xslicq.models import count_macs

    assert count_macs(nn.Linear(3, 4), torch.zeros(5, 3)) == 5 * 3 * 4
    # conv: every output value is (C_in / groups) x kh x kw products
    assert count_macs(nn.Conv2d(4, 6, 3, groups=2), torch.zeros(1, 4, 5, 5)) == 6 * 9 * 2 * 9
    # transposed conv: every input value scatters into C_out x kh x kw outputs
    up = nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
    assert count_macs(up, torch.zeros(1, 3, 5, 7)) == 3 * 5 * 7 * 2 * 16
    # LSTM: 4 gates of (input + hidden) x hidden per step, direction and layer
    lstm = nn.LSTM(10, 8, num_layers=2, bidirectional=True)
    steps = 7 * 3
    expected = 2 * steps * 4 * 8 * (10 + 8) + 2 * steps * 4 * 8 * (16 + 8)
    assert count_macs(lstm, torch.zeros(7, 3, 10)) == expected
    # a container counts its layers once each, and the hooks are removed afterwards
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert count_macs(seq, torch.zeros(2, 3)) == 2 * 12 + 2 * 8
    assert not any(m._forward_hooks for m in seq.modules())


def test_channels_last_layout_gives_the_masks_of_the_contiguous_one():
    """XUMXMatrix keeps its convolution weights channels-last (and its activations with
    them); turned back to contiguous, as the ONNX export does, it gives the same masks."""
    torch.manual_seed(0)
    model = XUMXMatrix(263, 64).eval()
    conv = model.encoders[0].levels[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    contiguous = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert contiguous.encoders[0].levels[0][0].weight.is_contiguous()
    x = torch.rand(2, 2, 263, 3, 64)
    with torch.no_grad():
        torch.testing.assert_close(contiguous(x), model(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the model protocol
class _Gain(torch.nn.Module):
    """A minimal network of the protocol (docs/extending.md's toy): one gain per bin."""

    input_form = "matrix"
    columns_per_second = 35.0

    def __init__(self, nb_bins, T, channels, targets):
        super().__init__()
        self.nb_channels = channels
        self.gain = torch.nn.Parameter(torch.zeros(targets, channels, nb_bins, 1, 1))

    def forward(self, x):
        b, _, _, s, t = x.shape
        return torch.sigmoid(self.gain).expand(b, -1, -1, -1, s, t)


class _NoChannels(_Gain):
    def __init__(self, **geometry):
        torch.nn.Module.__init__(self)  # no nb_channels


class _Causal(_Gain):
    causal = True  # but no step(x, state) nor initial_state(nb_samples)


def _system(model_class):
    from functools import partial

    from xslicq.losses import MSELoss
    from xslicq.system import SeparationSystem

    return SeparationSystem(transform("bark"), partial(model_class), MSELoss(), None)


@pytest.mark.parametrize("cls", list(MODELS.values()))
def test_the_shipped_networks_follow_the_protocol(cls):
    from xslicq.models.protocol import check_model_class

    assert check_model_class(cls) is cls


def test_a_protocol_network_is_built_and_its_grid_read_from_its_class():
    system = _system(_Gain)
    assert system.form == "matrix" and system.model.nb_channels == 2
    # 35 columns per second on bark's 3200-sample hop: 2.5 columns, the power of two 2
    assert system.r2m.T == 2


def test_a_network_missing_part_of_the_protocol_is_one_error_naming_it():
    from xslicq.train import ConfigError

    no_form = type("NoForm", (torch.nn.Module,), {"columns_per_second": None})
    with pytest.raises(ConfigError, match="network NoForm has no class attribute 'input_form'"):
        _system(no_form)
    bad = type("BadForm", (_Gain,), {"input_form": "image"})
    with pytest.raises(ConfigError, match="BadForm: input_form must be one of matrix, frames"):
        _system(bad)
    with pytest.raises(ConfigError, match="network _NoChannels has no 'nb_channels'"):
        _system(_NoChannels)
    with pytest.raises(ConfigError, match="_Causal says it is causal but has no 'step' or"):
        _system(_Causal)


def test_streaming_is_read_from_the_protocol_alike_everywhere():
    """The export and the separator asked different questions (step and initial_state, or
    step alone); both now ask :func:`xslicq.models.protocol.streams`."""
    from xslicq.export import is_causal
    from xslicq.models.protocol import streams
    from xslicq.separator import streams as separator_streams

    system = _system(_Gain)
    assert not streams(system.model) and not is_causal(system) and not separator_streams(system)
    lstm = OpenUnmix(16, unidirectional=True)
    assert streams(lstm) and not streams(OpenUnmix(16))
