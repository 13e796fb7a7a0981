"""One writer per run folder: an OS lock held by every command that writes ``runs/<name>/``.

Two ``recipe sft`` on the same run name would train into the same folder at once, and an
``--overwrite`` could delete the folder of a run still training. The lock is ``fcntl.flock`` on
``runs/<name>/.lock``, which holds the pid and command of its holder for the message the next
writer gets. The operating system releases it when its process ends, however it ends, so a lock
left by a dead process is simply taken over. Under ``recipe``'s own multi-process launch the
``recipe`` process holds the lock for its ranks; over several machines, machine 0's alone (the
main rank, the one writer, runs there, and the other machines share the folder).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from recipe_cli.errors import RecipeError

LOCK_NAME = ".lock"
RUN_IN_USE = "wait for it to finish, stop it, or use another run name"  # what to do when another process holds it


class RunLock:
    """Hold the run folder's lock for a block; refuse at once, naming the holder, when another process has it.

    Nothing half-written: when the command created the run folder (or ``runs/``) and stops on a
    user mistake before any stage started training (no ``run.json``), the folders it created are
    removed again; so is a folder it created that holds nothing but the lock. Once a stage started,
    its checkpoints are kept whatever happens next. ``failed`` marks a failure that reached this
    process as an exit code (from ranks it launched) rather than as an exception.
    """

    def __init__(self, run_dir: Path, command: str, busy: str = RUN_IN_USE):
        self.run_dir = run_dir
        self.command = command
        self.busy = busy
        self.handle = None
        self.created: Path | None = None
        self.failed = False

    def __enter__(self) -> RunLock:
        folder = self.run_dir
        while not folder.exists():
            self.created, folder = folder, folder.parent
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RecipeError(
                f"cannot create the run folder {self.run_dir} ({error.strerror}); set runs_dir to a writable folder"
            ) from None
        path = self.run_dir / LOCK_NAME
        try:
            handle = path.open("a+")
        except OSError as error:  # a folder this user may not write, or something other than a file at .lock
            if self.created is not None:
                shutil.rmtree(self.created, ignore_errors=True)
            raise RecipeError(
                f"cannot open the run's lock file {path} ({error.strerror}); make {self.run_dir} writable (and "
                f"remove {path} if it is not a file), or set runs_dir to a writable folder"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RecipeError(f"{self.run_dir} is in use by {holder}; {self.busy}") from None
        self.handle = handle
        self.name_holder()
        return self

    def file_descriptor(self) -> int | None:
        """The held lock's descriptor, for a child process that must hold it too (None when not held here).

        ``flock`` belongs to the open file: a child given the descriptor keeps the folder locked after this
        process ends, until the child ends too.
        """
        return self.handle.fileno() if self.handle is not None else None

    def name_holder(self, also: str = "") -> None:
        """Write who holds the lock, for the message the next writer gets (``also``: a child sharing it)."""
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} ({self.command}){' ' + also if also else ''}\n")
        self.handle.flush()

    def __exit__(self, kind, error, traceback) -> None:
        mistake = self.failed or (kind is not None and issubclass(kind, RecipeError))
        if self.created is not None and self.run_dir.is_dir():
            left = [p.name for p in self.run_dir.iterdir()]
            if left == [LOCK_NAME] or (mistake and "run.json" not in left):
                shutil.rmtree(self.created, ignore_errors=True)  # folders this command made, before any training
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
