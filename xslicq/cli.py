"""What the command lines share: a failure reported as one ``error: ...`` line.

try:
    ...
except (ValueError, OSError) as err:
    print(error_line(err), file=sys.stderr)
    return 1
"""

from __future__ import annotations


def error_line(err: BaseException) -> str:
    """``err`` as the one line a command prints for it: ``error: <message>``, the
    message's line breaks and runs of spaces made single spaces. An :class:`OSError` from
    the system (one with a file name) reads ``<path>: <reason>``."""
    if isinstance(err, OSError) and err.filename:
        message = f"{err.filename}: {err.strerror or err}"
    else:
        message = str(err)
    return f"error: {' '.join(message.split())}"
