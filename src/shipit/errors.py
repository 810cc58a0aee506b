"""The exception types that reach the user as a single line."""

from __future__ import annotations

import errno
import os
import shutil

# OS errors that are the user's environment, not a shipit bug: reported as one line, exit 2.
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class UserError(Exception):
    """A problem the user can fix: bad config, missing path, malformed data. Printed as one line, exit 2."""

    exit_code = 2


class GateFailure(UserError):
    """The work ran and its report is written, but no candidate passed the evaluation gates (exit 1)."""

    exit_code = 1


def free_bytes(path) -> int | None:
    """Free space on the file system holding `path` (or its closest existing parent), None when unknown."""
    p = os.path.abspath(path)
    while p and not os.path.exists(p):
        p = os.path.dirname(p)
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_full_message(path) -> str:
    free = free_bytes(path)
    shown = f" ({free / 1e6:.1f} MB free)" if free is not None else ""
    return f"disk full: no space left to write {path}{shown}; free some space or write the output elsewhere"


def os_error_message(exc: OSError, where=None) -> str:
    """One line for an OSError of USER_ERRNOS, naming the path and what to do."""
    path = exc.filename or where or "the output"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_message(path)
    if exc.errno == errno.EROFS:
        return f"read-only file system: cannot write {path}; write the output to a writable directory"
    return f"permission denied: {path}; check its permissions, or write the output to a directory you can write to"
