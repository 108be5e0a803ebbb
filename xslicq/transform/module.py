"""The base class of the transform modules: ``torch.nn.Module`` when torch is installed,
else a stand-in, so that the NumPy backend runs in an install without torch.

The stand-in keeps what the NumPy backend uses of a Module: calling the object runs
``forward``, and ``register_buffer`` stores the table as a plain attribute. With torch
installed nothing changes: :class:`Module` *is* ``torch.nn.Module``.
"""

from __future__ import annotations

try:
    import torch
except ImportError:  # the torch-free inference install (pip install "xslicq[infer]")
    torch = None

TORCH_MISSING = (
    "torch is not installed (an inference-only install); install the training stack with "
    "pip install 'xslicq[train]', or use backend='numpy'"
)


def torch_available() -> bool:
    """True when torch imports."""
    return torch is not None


if torch is not None:
    Module = torch.nn.Module
else:

    class Module:
        """Stand-in for ``torch.nn.Module`` without torch: ``__call__`` runs ``forward``,
        buffers are plain attributes."""

        def __init__(self):
            pass

        def __call__(self, *args, **kwargs):
            return self.forward(*args, **kwargs)

        def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
            setattr(self, name, tensor)

        def extra_repr(self) -> str:
            return ""

        def __repr__(self) -> str:
            return f"{type(self).__name__}({self.extra_repr()})"
