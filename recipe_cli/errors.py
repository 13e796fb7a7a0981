"""The errors the CLI turns into a one-line message: user mistakes (exit code 2) and stopped training runs."""

from __future__ import annotations

from pathlib import Path


class RecipeError(Exception):
    """A mistake the user can fix (bad recipe, missing file, impossible settings); the message says how."""


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
