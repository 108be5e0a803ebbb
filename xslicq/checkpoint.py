"""Training checkpoints: read one, check that it fits a run, rebuild its system.

    state = read_checkpoint("model.ckpt")        # the dict Lightning saved, on the CPU
    check_compatible(state["xslicq"]["config"], system.config, "model.ckpt")
    system = load_system("model.ckpt", device="cpu")   # a SeparationSystem in eval mode

Every failure is a :class:`~xslicq.errors.CheckpointError` naming the file (a configuration
error: the command lines exit with status 2). Checkpoints are written by Lightning through
:class:`xslicq.callbacks.AtomicCheckpointIO` (whole files only); the ``xslicq`` entry they
carry (config, best score, random states) by :meth:`SeparationSystem.on_save_checkpoint
<xslicq.system.SeparationSystem.on_save_checkpoint>`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import check_device
from .errors import CheckpointError
from .system import SeparationSystem

__all__ = [
    "ARCHITECTURE_KEYS",
    "CheckpointError",
    "check_compatible",
    "load_system",
    "read_checkpoint",
    "torch_device",
]

# what a checkpoint's network depends on: a resume with other values is refused
ARCHITECTURE_KEYS = ("transform", "model", "system", "data.targets", "data.sample_rate")


def read_checkpoint(path) -> dict:
    """A training checkpoint's contents, or :class:`CheckpointError` naming the file."""
    path = Path(str(path))
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds on a damaged file
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {error}); it is damaged "
            "or not a checkpoint: resume from another one (each run keeps best-*.ckpt too)"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state or "xslicq" not in state:
        raise CheckpointError(f"{path} is not an xslicq training checkpoint")
    return state


def _differences(key: str, saved, current) -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(saved) | set(current), key=str):
            out += _differences(f"{key}.{k}", saved.get(k), current.get(k))
        return out
    if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
        saved, current = list(saved), list(current)
    return [] if saved == current else [f"{key}: {saved!r} in the checkpoint, {current!r} now"]


def check_compatible(saved: dict, current: dict, path) -> None:
    """Refuse to resume a checkpoint whose transform, network, wiring or targets differ from
    the configured ones (the weights would be loaded into another model, or silently
    mean something else)."""
    diffs = []
    for key in ARCHITECTURE_KEYS:
        a, b = saved, current
        for part in key.split("."):
            a = a.get(part) if isinstance(a, dict) else None
            b = b.get(part) if isinstance(b, dict) else None
        diffs += _differences(key, a, b)
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} does not fit this run: " + "; ".join(diffs) + ". Resume with "
            "the checkpoint's settings, or start a new run without ckpt_path/resume"
        )


def torch_device(device) -> str:
    """A torch device string for a device :func:`~xslicq.config.check_device` accepted
    (``auto``: CUDA when there is a GPU, else the CPU; Lightning's ``gpu``: CUDA)."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device == "gpu" else str(device)


def load_system(path, device: str = "cpu") -> SeparationSystem:
    """The :class:`~xslicq.system.SeparationSystem` of a training checkpoint, rebuilt from the
    config stored inside, with its weights, in eval mode on ``device``.

    An unusable ``device`` is a :class:`~xslicq.errors.DeviceError`; a missing, damaged or
    foreign checkpoint a :class:`~xslicq.errors.CheckpointError` (both configuration
    errors). ``device="auto"`` picks CUDA when there is a GPU."""
    check_device(device, "device")
    if Path(str(path)).is_dir():
        raise CheckpointError(
            f"checkpoint {path} is a folder, not a checkpoint file (a training run keeps "
            "its checkpoints in <run>/checkpoints/)"
        )
    state = read_checkpoint(path)  # on the CPU, weights only
    stored = state["xslicq"]
    config = stored.get("config") if isinstance(stored, dict) else None
    if config is None:
        raise CheckpointError(f"{path} is not an xslicq training checkpoint (no stored config)")
    try:
        system = SeparationSystem.from_config(config, training=False)
    except Exception as err:  # the stored config: Hydra, OmegaConf or a constructor
        raise CheckpointError(
            f"the config stored in checkpoint {path} does not build a model "
            f"({type(err).__name__}: {err}); it is damaged or from another xslicq version"
        ) from None
    try:
        system.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"the weights in checkpoint {path} do not fit the model its config describes "
            f"({first}); it is damaged or from another xslicq version"
        ) from None
    return system.to(torch_device(device)).eval()
