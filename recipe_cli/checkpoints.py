"""Checkpoints that are complete or absent: a marker file written last, and the newest marked checkpoint.

transformers writes ``output_dir/checkpoint-N`` (weights, optimizer, scheduler, RNG, trainer
state) in ``Trainer._save_checkpoint`` and calls the callbacks' ``on_save`` only after every file
is written (``_maybe_log_save_evaluate``, transformers 5.23). A marker written from ``on_save`` is
therefore the last file of a checkpoint: one without it was cut off mid-save and is never resumed.
"""

from __future__ import annotations

import fnmatch
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
# Files that resume training rather than describe a model: not weights, and pushed only with
# push.include_training_state.
TRAINING_STATE = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "log-state-*.json",
    # GRPO with beta > 0 continuing an adapter: TRL's frozen copy of the starting adapter, the reference model,
    # which peft saves beside the trained one in a folder named after it (grpo_trainer.py, `add_adapter("ref", ...)`)
    "ref/*",
)


def is_training_state(name: str) -> bool:
    """Whether a file only serves to resume training (optimizer, scheduler, RNG states, pickled arguments).

    >>> is_training_state("optimizer.pt"), is_training_state("rng_state_3.pth"), is_training_state("model.safetensors")
    (True, True, False)
    >>> is_training_state("ref/adapter_model.safetensors")
    True
    """
    return any(fnmatch.fnmatch(name, pattern) for pattern in TRAINING_STATE)


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``output_dir``, oldest step first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [path for _, path in sorted(found)]


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / MARKER).is_file()


def last_complete_checkpoint(output_dir: Path, before: Path | None = None) -> Path | None:
    """The newest checkpoint whose save finished (older than ``before`` when given); newer unfinished ones are
    reported and skipped."""
    folders = checkpoint_folders(output_dir)
    if before is not None:
        folders = folders[: folders.index(before)]
    for checkpoint in reversed(folders):
        if is_complete(checkpoint):
            return checkpoint
        log.warning("skipping %s: its save did not finish (no %s marker)", checkpoint, MARKER)
    return None


TRAINER_STATE = "trainer_state.json"
# what transformers' Trainer._load_from_checkpoint accepts as a checkpoint's weights (transformers 5.23)
MODEL_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
    "pytorch_model_fsdp.bin",  # FSDP with FULL_STATE_DICT (TRL's fsdp1 and fsdp2 configs)
)
# written by Trainer._save_optimizer_and_scheduler unless save_only_model; without either, Trainer.train resumes
# with a fresh optimizer and learning-rate schedule and says nothing
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
SCHEDULER_FILE = "scheduler.pt"


def resume_problem(checkpoint: Path, *, saves_optimizer: bool = True) -> str | None:
    """What makes a complete checkpoint unfit to resume from, or None: a file damaged or deleted since it was marked.

    transformers would stop on such a file with a traceback as the run starts (weights, trainer
    state, a torch file or a log state that does not read) or, for a missing optimizer or
    scheduler state, resume with fresh ones and say nothing. ``saves_optimizer`` False
    (``save_only_model``): the checkpoint holds no optimizer state by design. Reads the JSON files,
    the safetensors headers and the torch files' zip directories, no tensors. Sharded layouts
    (DeepSpeed's ``global_step*``, FSDP's folders) keep their states in subfolders, which are left to
    their loaders.
    """
    import zipfile

    from recipe_cli.config import damaged_weights

    state = _json_problem(checkpoint / TRAINER_STATE, lambda data: isinstance(data.get("global_step"), int))
    if state is not None:
        return state
    sharded = any(path.is_dir() for path in checkpoint.iterdir())
    if not sharded and not any((checkpoint / name).is_file() for name in MODEL_FILES):
        return "it holds no model weights (model.safetensors, pytorch_model.bin or adapter_model.safetensors)"
    broken = damaged_weights(checkpoint)
    if broken is not None:
        return broken
    if saves_optimizer and not sharded:
        if not any((checkpoint / name).is_file() for name in OPTIMIZER_FILES):
            return "it holds no optimizer.pt (the optimizer's state), so the run would go on with a fresh optimizer"
        if not (checkpoint / SCHEDULER_FILE).is_file():
            return f"it holds no {SCHEDULER_FILE}, so the learning-rate schedule would start again"
    for path in sorted(p for suffix in ("*.pt", "*.pth", "*.bin") for p in checkpoint.glob(suffix)):
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive, its directory at the end
            return f"{path.name} is cut off or not a file torch saved"
    for path in sorted(checkpoint.glob("log-state-*.json")):
        problem = _json_problem(path, lambda data: {"tr_loss", "last_logged", "metrics"} <= data.keys())
        if problem is not None:
            return problem
    return _json_problem(checkpoint / "config.json", lambda data: True, required=False)


def _json_problem(path: Path, fits, required: bool = True) -> str | None:
    """What is wrong with a JSON mapping file that ``fits`` checks, or None (also when absent and not required)."""
    import json

    if not path.is_file():
        return f"it holds no {path.name}" if required else None
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, OSError) as error:  # JSON, UTF-8 and read errors
        return f"{path.name} cannot be read ({error.__class__.__name__}: {error})"
    if not isinstance(data, dict) or not fits(data):
        return f"{path.name} is not what transformers wrote there"
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
