"""xslicq: music source separation with the sliced constant-Q transform."""
__version__ = "0.1.0"
