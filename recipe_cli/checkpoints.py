"""Checkpoints that are complete or absent: a marker file written last, and the newest marked checkpoint.

transformers writes ``output_dir/checkpoint-N`` (weights, optimizer, scheduler, RNG, trainer
state) in ``Trainer._save_checkpoint`` and calls the callbacks' ``on_save`` only after every file
is written (``_maybe_log_save_evaluate``, transformers 5.23). A marker written from ``on_save`` is
therefore the last file of a checkpoint: one without it was cut off mid-save and is never resumed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from recipe_cli.atomic import fsync_path, write_atomic

log = logging.getLogger(__name__)

MARKER = "checkpoint-complete"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Test hook: seconds to sleep before a checkpoint's marker is written (only at the step given in
# SAVE_PAUSE_STEP_ENV, when set), so a test can kill the process while a save is unfinished.
# Unset in normal runs.
SAVE_PAUSE_ENV = "RECIPE_TEST_SAVE_PAUSE_SECONDS"
SAVE_PAUSE_STEP_ENV = "RECIPE_TEST_SAVE_PAUSE_STEP"


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``output_dir``, oldest step first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [path for _, path in sorted(found)]


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / MARKER).is_file()


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint whose save finished; newer unfinished ones are reported and skipped."""
    for checkpoint in reversed(checkpoint_folders(output_dir)):
        if is_complete(checkpoint):
            return checkpoint
        log.warning("skipping %s: its save did not finish (no %s marker)", checkpoint, MARKER)
    return None


def mark_complete(checkpoint: Path) -> None:
    """Write the marker last and atomically, once the checkpoint's files are on disk.

    Without the fsyncs a power loss could keep the marker (a small, late write) and lose parts of
    the files it vouches for. Files are flushed once each, when marked; the cost is the writeback
    the save would do anyway.
    """
    for path in sorted(checkpoint.rglob("*")):
        if path.is_file():
            fsync_path(path)
    for folder in sorted({p.parent for p in checkpoint.rglob("*")} | {checkpoint}, reverse=True):
        fsync_path(folder)
    write_atomic(checkpoint / MARKER, time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n", durable=True)


def completion_marker_callback(healthy=lambda: True):
    """A TrainerCallback that marks each checkpoint complete once transformers has written all of it.

    ``healthy()`` False (the weights went NaN/inf, seen by a callback called before this one) leaves
    the checkpoint unmarked, so it is never resumed.
    """
    from transformers import TrainerCallback

    from recipe_cli.preemption import hook_number
    from recipe_cli.ranks import barrier

    pause = hook_number(SAVE_PAUSE_ENV)
    at_step = hook_number(SAVE_PAUSE_STEP_ENV) if os.environ.get(SAVE_PAUSE_STEP_ENV) else None

    class CompletionMarker(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            barrier()  # every rank has written its part of the checkpoint (RNG states, optimizer shards)
            if state.is_world_process_zero and healthy():
                if pause and (at_step is None or at_step == state.global_step):
                    time.sleep(pause)
                mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
            return control

    return CompletionMarker()
