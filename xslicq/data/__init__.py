"""Data: the offline synthetic MUSDB-like set, MUSDB18-HQ loading, augmentations and
the LightningDataModule."""

SOURCES = ("vocals", "drums", "bass", "other")
