"""xslicq: music source separation with the sliced constant-Q transform."""

from .version import __version__ as __version__

try:  # config resolvers (data.name, ...) for every entry point
    from . import config as _config  # noqa: F401
except ImportError:  # an inference-only install without OmegaConf
    pass


def __getattr__(name):
    # the Separator pulls in Lightning; import it on first use only
    if name == "Separator":
        from .separator import Separator

        return Separator
    if name == "OnnxSeparator":  # the torch-free separator of an exported network
        from .inference import OnnxSeparator

        return OnnxSeparator
    raise AttributeError(f"module 'xslicq' has no attribute {name!r}")
