"""Files written whole or not at all: written aside, then renamed over the old one.

A reader (another rank, a later command, a crash's survivor) sees the old file or the new one,
never half of one. ``durable`` writes also reach the disk before the rename and the rename itself is
flushed, so a power loss leaves one of the two: for what a resume depends on (run.json, a
checkpoint's completion marker).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: Path, content: str | bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``content`` (text as UTF-8) in one rename; on failure nothing is left beside it.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "a.json", "{}")
    >>> (folder / "a.json").read_text(), sorted(p.name for p in folder.iterdir())
    ('{}', ['a.json'])
    """
    partial = path.with_name(f".{path.name}.tmp")  # hidden: not listed as a run's file, never pushed
    try:
        with partial.open("wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)  # the rename itself


@contextlib.contextmanager
def made_folder(folder: Path) -> Iterator[None]:
    """Create ``folder`` and its missing parents for the block; when the block fails, remove the ones made here, so
    a failed write leaves no empty folders behind.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> try:
    ...     with made_folder(root / "a" / "b"):
    ...         raise OSError("disk full")
    ... except OSError:
    ...     pass
    >>> list(root.iterdir())
    []
    """
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a folder's fsync makes its renames durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
