"""What the command lines share: one way to fail, and files for the user created with the
mode any new file gets (0666 less the umask).

Every entry point runs its work through :func:`run_command`::

    status, written = run_command(lambda: separate_file(...))
    if status:
        return status          # argparse commands; Hydra's raise SystemExit(status)

A failure is one ``error: <message>`` line on stderr and an exit status
(:func:`exit_status`):

    ======  ==================================================================
    status  when
    ======  ==================================================================
    0       done
    1       a runtime failure: unreadable or damaged input, a full disk, the
            GPU's memory, a missing optional package, an export that fails
    2       a usage or configuration error (:class:`~xslicq.errors.ConfigError`:
            a config value, an argument, a checkpoint, a device, an output
            folder); argparse's own usage errors too
    130     stopped by SIGINT (Ctrl-C)
    143     stopped by SIGTERM
    ======  ==================================================================
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import TypeVar

from .errors import ConfigError

__all__ = [
    "FAILURE",
    "USAGE",
    "ArgumentParser",
    "Interrupted",
    "error_line",
    "exit_status",
    "fail",
    "new_file_mode",
    "run_command",
    "temporary_file",
    "umask",
]

FAILURE = 1  # the work failed at run time
USAGE = 2  # a usage or configuration error (argparse's status too)

T = TypeVar("T")


class Interrupted(BaseException):
    """A command stopped by a signal (SIGTERM; SIGINT is Python's KeyboardInterrupt). Like
    KeyboardInterrupt it is no :class:`Exception`, so only the entry point catches it, after
    every ``finally`` and ``with`` on the way has cleaned up."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM


def exit_status(err: BaseException) -> int:
    """The exit status of a command stopped by ``err``: 130 for SIGINT (KeyboardInterrupt),
    128 + the signal for an error that carries one (:class:`Interrupted`, 143 for SIGTERM;
    :class:`xslicq.callbacks.TrainingInterrupted`), 2 for a usage or configuration error
    (:class:`~xslicq.errors.ConfigError` and its family), 1 for any other failure."""
    if isinstance(err, KeyboardInterrupt):
        return 128 + signal.SIGINT
    code = getattr(err, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(err, ConfigError):
        return USAGE
    return FAILURE


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` whose usage errors follow the convention: the usage
    line, then one ``error: <message>`` line, exit status 2."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        print(error_line(ValueError(message)), file=sys.stderr)
        raise SystemExit(USAGE)


def fail(err: BaseException) -> int:
    """Print ``err`` as the command's one ``error:`` line on stderr; returns its exit
    status (:func:`exit_status`)."""
    print(error_line(err), file=sys.stderr)
    return exit_status(err)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def run_command(
    work: Callable[[], T], handled: tuple[type[BaseException], ...] = (ValueError, OSError)
) -> tuple[int, T | None]:
    """Run an entry point's ``work``: ``(0, its result)``, or, when it raises one of
    ``handled`` or is stopped by SIGINT or SIGTERM, ``(status, None)`` after printing the
    one ``error: <message>`` line (:func:`error_line`, :func:`exit_status`). Other
    exceptions (a bug) go on with their traceback. SIGTERM raises :class:`Interrupted`
    in the work (in the main thread) so that its cleanups run, as SIGINT does."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return 0, work()
    except (KeyboardInterrupt, Interrupted, *handled) as err:
        return fail(err), None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def error_line(err: BaseException) -> str:
    """``err`` as the one line a command prints for it: ``error: <message>``, the
    message's line breaks and runs of spaces made single spaces. An :class:`OSError` from
    the system (one with a file name) reads ``<path>: <reason>``."""
    if isinstance(err, OSError) and err.filename:
        message = f"{err.filename}: {err.strerror or err}"
    elif isinstance(err, KeyboardInterrupt):
        message = "interrupted by SIGINT"
    else:
        message = str(err)
    return f"error: {' '.join(message.split())}"


def umask() -> int:
    """The process's umask. Read from ``/proc/self/status`` where Linux shows it; elsewhere
    set and put back at once (``os.umask`` has no read-only form)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the umask (0644 under the
    usual umask 022, 0600 under 077)."""
    return 0o666 & ~umask()


def temporary_file(folder, prefix: str = ".xslicq-", suffix: str = "") -> tuple[int, str]:
    """``(descriptor, path)`` of a new temporary file in ``folder`` (:func:`tempfile.mkstemp`)
    with the mode of any new file (:func:`new_file_mode`) instead of mkstemp's 0600, for a
    file written in full and then renamed into place (``os.replace``) for the user."""
    handle, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        os.fchmod(handle, new_file_mode())
    except BaseException:
        os.close(handle)
        os.unlink(path)
        raise
    return handle, path
