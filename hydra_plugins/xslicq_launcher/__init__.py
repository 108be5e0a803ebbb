"""Registers xslicq's submitit launchers with Hydra (plugins must live in ``hydra_plugins``)."""
