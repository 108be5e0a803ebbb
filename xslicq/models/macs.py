"""Multiply-accumulates of a network's forward pass, counted from the shapes it sees.

Every :class:`~torch.nn.Linear`, convolution (1-D and 2-D, transposed too) and
:class:`~torch.nn.LSTM` is counted from its input and output shapes during one forward
pass (forward hooks); normalisations, activations and elementwise arithmetic are not (the
usual convention of parameter/MAC tables, in which these weighted layers dominate)."""

from __future__ import annotations

import math

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _layer_macs(module: nn.Module, inputs, output) -> int:
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, _CONV):  # every output value: (C_in / groups) x kernel products
        kernel = math.prod(module.kernel_size)
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, _TRANSPOSED):  # every input value scatters into the kernel
        kernel = math.prod(module.kernel_size)
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.LSTM):
        x = inputs[0]
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise ValueError("count_macs: packed sequences are not supported")
        steps = x.shape[0] * x.shape[1] if x.ndim == 3 else x.shape[0]  # time x batch
        directions = 2 if module.bidirectional else 1
        h, total = module.hidden_size, 0
        width = module.input_size
        for _ in range(module.num_layers):  # 4 gates of (input + hidden) x hidden each
            total += directions * steps * 4 * h * (width + h)
            width = directions * h
        return total
    return 0


def count_macs(model: nn.Module, *inputs) -> int:
    """Multiply-accumulates of ``model(*inputs)`` in its weighted layers.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> count_macs(nn.Linear(3, 4), torch.zeros(5, 3))          # 5 rows x 3 x 4
        60
        >>> count_macs(nn.Conv2d(2, 8, 3, padding=1), torch.zeros(1, 2, 10, 10))
        14400
    """
    total = [0]

    def hook(module, args, output):
        total[0] += _layer_macs(module, args, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total[0]
