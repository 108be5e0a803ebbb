"""What the command lines share: a failure reported as one ``error: ...`` line, and files
for the user created with the mode any new file gets (0666 less the umask).

try:
    ...
except (ValueError, OSError) as err:
    print(error_line(err), file=sys.stderr)
    return 1
"""

from __future__ import annotations

import os
import tempfile


def error_line(err: BaseException) -> str:
    """``err`` as the one line a command prints for it: ``error: <message>``, the
    message's line breaks and runs of spaces made single spaces. An :class:`OSError` from
    the system (one with a file name) reads ``<path>: <reason>``."""
    if isinstance(err, OSError) and err.filename:
        message = f"{err.filename}: {err.strerror or err}"
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
