"""Registers xslicq's Optuna sweeper with Hydra (plugins must live in ``hydra_plugins``)."""
