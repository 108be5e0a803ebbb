"""Every error a user can cause, in one module with one base class.

An :class:`XslicqError` means the package cannot do what it was asked to do, and its message
names the value, file or setting and what is allowed. It is a :class:`ValueError`, so code
that catches ``ValueError`` catches it. The families, by what the user changes to fix it:

    XslicqError
      ConfigError          a setting, argument or input named on the command line
        CheckpointError    a training checkpoint (or exported model) unreadable or not fitting
          ModelFileError   an exported ONNX model file
        DeviceError        a device this machine does not have
        DataConfigError    a data.* config value
        DatasetError       a data set folder or file
        OutputRefused      an output folder or file refused before any work (also an
                           OutputError)
        InvalidTransform   a transform the search space allows but that is not valid
        SweepStorageError  a sweep's storage (SQLite file, PostgreSQL URL)
      AudioError           audio that cannot be read or separated
        AudioFileError     an audio file that cannot be read
        SeparationInputError  audio given to a separator
        StreamError        the model, input or output of a stream
      OutputError          an output that cannot be written (a full disk, an I/O error)
      EvaluationError      an evaluation that cannot run as asked
        CadenzaError       the Cadenza pipeline's
      ExportError          a network that cannot be exported as asked
      ResourceError        the machine lacks what the work needs (memory, a package)

The command lines map the families to exit statuses (:func:`xslicq.cli.exit_status`):
a :class:`ConfigError` is a usage error (2), any other failure a runtime one (1). A
command's own settings checked before any work are both: :class:`EvaluationConfigError`,
:class:`CadenzaConfigError`, :class:`ExportConfigError` and :class:`StreamConfigError` are
the family of the command (``except ExportError`` catches them) and a :class:`ConfigError`.

This module imports nothing: every layer of the package may raise these. The classes stay
importable where they were defined before (``xslicq.train.ConfigError``,
``xslicq.audio.AudioFileError``, ...).
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "AudioFileError",
    "CadenzaConfigError",
    "CadenzaError",
    "CheckpointError",
    "ConfigError",
    "DataConfigError",
    "DatasetError",
    "DeviceError",
    "EvaluationConfigError",
    "EvaluationError",
    "ExportConfigError",
    "ExportError",
    "InvalidTransform",
    "ModelFileError",
    "ModelProtocolError",
    "OutputError",
    "OutputRefused",
    "ResourceError",
    "SeparationInputError",
    "StreamConfigError",
    "StreamError",
    "SweepStorageError",
    "XslicqError",
]


class XslicqError(ValueError):
    """What xslicq was asked to do cannot be done; the message names the value and why."""


# ------------------------------------------------------------------ configuration
class ConfigError(XslicqError):
    """A configuration value is out of range; the message names it."""


class ModelProtocolError(ConfigError):
    """A network class or instance that does not follow the model protocol
    (:mod:`xslicq.models.protocol`); the message names the network and the attribute."""


class CheckpointError(ConfigError):
    """A checkpoint cannot be read, or does not fit the configured run."""


class ModelFileError(CheckpointError):
    """An exported model file is missing, unreadable, or not xslicq's; the message says why."""


class DeviceError(ConfigError):
    """The configured device is not usable on this machine; the message says what to use."""


class DataConfigError(ConfigError):
    """A ``data.*`` config value is out of range; the message names the key."""


class DatasetError(ConfigError):
    """A dataset folder or file is not usable; the message names it."""


class InvalidTransform(ConfigError):
    """A point of the search space that gives no valid transform; the message says why."""


class SweepStorageError(ConfigError):
    """The sweep's storage cannot be opened or used; the message names it."""


# -------------------------------------------------------------------------- audio
class AudioError(XslicqError):
    """Audio cannot be read or separated; the message names the file or the value."""


class AudioFileError(AudioError):
    """An audio file cannot be read, or is cut short or damaged; the message names it."""


class SeparationInputError(AudioError):
    """The audio given to the separator is not usable; the message says why."""


class StreamError(AudioError):
    """The model, the input or the output of a stream is unusable; the message says why."""


class StreamConfigError(StreamError, ConfigError):
    """An argument of ``python -m xslicq.stream`` is out of range."""


# --------------------------------------------------------------------- evaluation
class EvaluationError(XslicqError):
    """An evaluation cannot run as asked; the message names the value or path."""


class CadenzaError(EvaluationError):
    """A Cadenza evaluation cannot run as asked; the message names the value or file."""


class EvaluationConfigError(EvaluationError, ConfigError):
    """A setting of ``python -m xslicq.evaluate`` (or ``oracle``) is missing or out of range."""


class CadenzaConfigError(CadenzaError, ConfigError):
    """A setting of ``python -m xslicq.cadenza`` is missing or out of range."""


# ------------------------------------------------------------------------- output
class OutputError(XslicqError):
    """An output cannot be written as asked; the message names the path and why."""


class OutputRefused(OutputError, ConfigError):
    """An output refused before any work: a folder that cannot be written, holds files the
    command did not write (or its own without ``force``), is being written by another run,
    is one of the inputs or a symbolic link."""


# ------------------------------------------------------------------------- export
class ExportError(XslicqError):
    """The checkpoint's network cannot be exported as asked; the message says why."""


class ExportConfigError(ExportError, ConfigError):
    """A setting of ``python -m xslicq.export`` is missing or out of range."""


# ---------------------------------------------------------------------- resources
class ResourceError(XslicqError):
    """The machine lacks what the work needs (GPU memory, an optional package); the message
    says what to lower or install."""
