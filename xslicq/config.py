"""Configuration helpers shared by the entry points: OmegaConf resolvers and device checks.

Importing this module registers the resolvers (the Hydra entry points import it):

    ${xslicq.basename:PATH}     the last component of a path, e.g. the name of a
                                dataset folder (``data.name``, which names Optuna studies)
    ${xslicq.run_dir:RESUME,BASE,OVERRIDES}
                                a run's folder: RESUME when set (``resume=<run folder>``
                                continues there), else ``BASE/<date>_<time>_<overrides>_<id>``
                                with the command line's overrides shortened to a name and a
                                random id, so runs started together never share a folder
                                (e.g. ``2026-12-07_18-39-16_loss-mse+transform-bark_b1e0``:
                                no character that a shell or a Hydra override must quote)
    ${xslicq.beside:CHECKPOINT,KIND,TAG,FALLBACK}
                                where a checkpoint's evaluation goes: next to the run it
                                scores (``<run>/KIND/<checkpoint name>_TAG``), or FALLBACK
                                when no checkpoint is given
    ${xslicq.hydra_subdir:RESUME}
                                ``.hydra`` for a new run; ``.hydra/resumed-<date>_<time>``
                                for a resumed one, which keeps the run's own record
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shlex
import time
from pathlib import Path

from omegaconf import OmegaConf

from .errors import DeviceError

# one stamp and id per process: every resolution of the run folder gives the same name
_STAMP = time.strftime("%Y-%m-%d_%H-%M-%S")
_RUN_ID = secrets.token_hex(2)
MAX_NAME = 60  # characters of the overrides kept in a run folder's name


def _basename(path) -> str:
    return Path(str(path)).expanduser().name


# the characters of a run folder's name: none of them needs quoting in a shell or in the
# value of a Hydra override (its grammar's unquoted values: letters, digits, ``_-+./@`` and a
# few that shells expand; ``=``, ``,`` and ``~`` are not among them)
_NAME_CHARS = "A-Za-z0-9._+@-"
_SHELL_SAFE = re.compile(rf"[/{_NAME_CHARS}]+")


def name_part(text, limit: int | None = None) -> str:
    """``text`` as part of a file or folder name: runs of other characters than letters,
    digits and ``._+@-`` (with the ``-`` around them) become one ``-``; a name longer than
    ``limit`` keeps its start and ends with ``@`` and a short hash of the whole, so names
    stay distinct."""
    name = re.sub(rf"-*[^{_NAME_CHARS}]+-*", "-", str(text or "")).strip("-")
    if limit is not None and len(name) > limit:
        digest = hashlib.sha1(name.encode()).hexdigest()[:6]
        name = f"{name[: limit - 7].rstrip('+-')}@{digest}"
    return name


def overrides_name(overrides: str | None, limit: int = MAX_NAME) -> str:
    """The command line's overrides as part of a folder name: Hydra's ``override_dirname``
    as conf/train.yaml has it built (``loss-mse+transform-bark``: ``-`` for ``=`` and ``+``
    between overrides), cut to ``limit`` characters by :func:`name_part`."""
    return name_part(overrides, limit)


def override_arg(key: str, value) -> str:
    """``key=value`` as one shell word that Hydra reads back as exactly ``value`` (a string):
    plain when that needs no quoting (every run folder xslicq names), else the value in
    Hydra's quotes and the word in the shell's. For the commands the entry points print."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    value = str(value)
    if _SHELL_SAFE.fullmatch(value):
        try:
            if OverridesParser.create().parse_override(f"{key}={value}").value() == value:
                return f"{key}={value}"
        except Exception:  # noqa: BLE001 - not a plain value: quote it
            pass
    # in Hydra's quotes a backslash is doubled only before a quote or at the end
    quoted = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    word = f"{key}='{quoted}'"
    return f'"{word}"' if not re.search(r'["$`\\!]', word) else shlex.quote(word)


def _run_dir(resume, base, overrides) -> str:
    if resume not in (None, ""):
        return str(resume)
    parts = [_STAMP, overrides_name(overrides), _RUN_ID]
    return f"{base}/" + "_".join(p for p in parts if p)


def _beside(checkpoint, kind, tag, fallback) -> str:
    if checkpoint in (None, "", "???"):
        return str(fallback)
    path = Path(str(checkpoint)).expanduser()
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    name = "_".join(name_part(p) for p in (path.stem, tag) if p not in (None, ""))
    return str(run / str(kind) / name)


def _hydra_subdir(resume) -> str:
    return ".hydra" if resume in (None, "") else f".hydra/resumed-{_STAMP}"


def check_device(device: str | None, key: str = "device") -> str:
    """``device`` if this machine can use it, else :class:`DeviceError` naming ``key``.

    Accepts torch device strings (``cpu``, ``cuda``, ``cuda:1``) and Lightning's
    accelerator names (``gpu``, ``auto``); ``None`` and ``auto`` always pass."""
    import torch

    if device in (None, "auto", "cpu"):
        return device
    name = str(device)
    if name == "gpu" or name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{key}={name} needs a CUDA GPU, but torch finds none on this machine "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use {key}=cpu"
            )
        index = name.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"{key}={name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{key}=mps is not available on this machine; use {key}=cpu")
    if name not in ("mps",):
        raise DeviceError(f"unknown {key}={name!r}; use cpu, cuda, cuda:N or auto")
    return device


def register_resolvers() -> None:
    """Register xslicq's OmegaConf resolvers (idempotent)."""
    OmegaConf.register_new_resolver("xslicq.basename", _basename, replace=True)
    OmegaConf.register_new_resolver("xslicq.run_dir", _run_dir, replace=True)
    OmegaConf.register_new_resolver("xslicq.hydra_subdir", _hydra_subdir, replace=True)
    OmegaConf.register_new_resolver("xslicq.beside", _beside, replace=True)


register_resolvers()
