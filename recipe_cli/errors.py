"""The errors the CLI turns into a one-line message: user mistakes (exit code 2) and stopped training runs."""

from __future__ import annotations

import errno
from pathlib import Path


class RecipeError(Exception):
    """A mistake the user can fix (bad recipe, missing file, impossible settings); the message says how."""


NON_FINITE_EXIT_CODE = 3  # training stopped on a NaN/inf loss, gradient norm or weight (its message says the fix)


class TrainingStopped(Exception):
    """Training stopped before the end (a preemption signal, a NaN loss); the message says what was kept."""

    def __init__(self, message: str, exit_code: int, *, resumable: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.resumable = resumable  # the CLI adds the command that continues the run


def unwritable_reason(target: Path, error: OSError) -> str:
    """Why ``target`` could not be written, in words: a folder on its path that is a file, else the OS's reason.

    >>> unwritable_reason(Path("/proc/x/y"), FileNotFoundError(2, "No such file or directory"))
    'No such file or directory'
    """
    file = next((folder for folder in target.parents if folder.is_file()), None)
    return f"{file} is a file, not a folder" if file else error.strerror or str(error)


def full_disk(error: BaseException) -> str | None:
    """The file a write that found the disk (or the user's quota) full was writing, or ``""`` when unnamed; None
    when ``error`` and its causes are something else. safetensors' writer gives no errno, only the OS's words.

    >>> full_disk(RuntimeError("saving failed")), full_disk(OSError(errno.ENOSPC, "No space left on device", "a.pt"))
    (None, 'a.pt')
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return str(seen.filename or "")
        if "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            return ""
        seen = seen.__cause__ or seen.__context__
    return None
