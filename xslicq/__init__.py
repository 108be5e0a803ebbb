"""xslicq: music source separation with the sliced constant-Q transform."""
__version__ = "0.1.0"


def __getattr__(name):
    # the Separator pulls in Lightning; import it on first use only
    if name == "Separator":
        from .separator import Separator
        return Separator
    raise AttributeError(f"module 'xslicq' has no attribute {name!r}")
