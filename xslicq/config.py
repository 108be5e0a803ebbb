"""Configuration helpers shared by the entry points: OmegaConf resolvers.

Importing this module registers them (the Hydra entry points import it):

    ${xslicq.basename:PATH}     the last component of a path, e.g. the name of a
                                dataset folder (``data.name``, which names Optuna studies)
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def _basename(path) -> str:
    return Path(str(path)).expanduser().name


def register_resolvers() -> None:
    """Register xslicq's OmegaConf resolvers (idempotent)."""
    OmegaConf.register_new_resolver("xslicq.basename", _basename, replace=True)


register_resolvers()
