"""Resume policy: how each training stage of a run starts, decided from its run folder before anything is written.

A stage starts afresh (its folder cleared with ``--overwrite``), from its newest complete
checkpoint (``--resume``), or not at all (finished with the same settings and length). ``--resume``
refuses what would not continue the same run: changed settings, GRPO over another SFT model than
the one it started from, a checkpoint damaged since it was marked complete, other rows than the
stage trained on, a length the run already went past; ``--force`` lets a change through, said.
The record these rules read is ``RunFolder``'s (``recipe_cli.runs``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_cli.checkpoints import last_complete_checkpoint, resume_problem
from recipe_cli.errors import RecipeError
from recipe_cli.runs import LENGTH_KEYS, RunFolder, settings_hash, sft_identity, training_settings

log = logging.getLogger(__name__)


def check_start_flags(*, resume: bool, overwrite: bool, force: bool) -> None:
    """Refuse --resume with --overwrite, and --force without --resume, whatever the run folder holds."""
    if resume and overwrite:
        raise RecipeError("--resume and --overwrite contradict each other; pass one of them")
    if force and not resume:
        raise RecipeError("--force only applies with --resume (it resumes a run whose settings changed)")


@dataclass(frozen=True)
class StageStart:
    """How a training stage starts: from scratch (clearing its folder first), from a checkpoint, or not at all."""

    stage: str
    skip: bool = False  # finished with the same settings and length; nothing to train
    forced: bool = False  # skipped or resumed although its settings changed (--force)
    clear: bool = False  # the folder holds an earlier attempt to remove first
    checkpoint: Path | None = None  # resume from this complete checkpoint
    force: bool = False  # --force: resume also on other data than the stage trained on (``check_data``)


def plan_start(
    run: RunFolder, stage: str, *, resume: bool, overwrite: bool, force: bool, sft_start: StageStart | None = None
) -> StageStart:
    """Decide how a stage starts, writing nothing; refuse to overwrite or to resume changed settings.

    GRPO's settings include the SFT model it started from: a GRPO run is changed when the SFT
    run finished since, or when ``sft_start`` (SFT's plan in the same command) trains SFT again.
    Extending a run (a larger ``max_steps`` or ``num_train_epochs``) is allowed: the run continues
    from its last checkpoint, but a decaying learning-rate schedule is recomputed for the new
    length, so the result differs from a run planned that long from the start.
    """
    check_start_flags(resume=resume, overwrite=overwrite, force=force)
    folder = run.stage_dir(stage)
    if not run.holds_run(stage):
        return StageStart(stage)
    if overwrite:
        return StageStart(stage, clear=True)
    finished = run.finished(stage) is not None
    what = "a finished" if finished else "an unfinished"
    if not resume:
        raise RecipeError(
            f"{folder} already holds {what} {stage} run; pass --resume to continue it "
            "or --overwrite to delete it and start again"
        )
    entry = run.read()["stages"].get(stage, {})
    forced = _check_settings(run, stage, entry, force)
    if stage == "grpo":
        forced = _check_sft_start(run, entry, force, sft_start) or forced
    extended = entry.get("length", {}) != run.length(stage)
    if finished and not extended:
        return StageStart(stage, skip=True, forced=forced)
    checkpoint = last_complete_checkpoint(folder)
    if checkpoint is None and finished:
        raise RecipeError(
            f"{stage} finished with {entry.get('length', {})} and kept no checkpoint to continue from "
            f"(save_strategy: no?); to train it with {run.length(stage)}, pass --overwrite to start again"
        )
    if checkpoint is None:
        log.warning("%s holds no complete checkpoint to resume; %s starts again from step 0", folder, stage)
        return StageStart(stage, clear=True)
    _check_checkpoint(run, stage, checkpoint)
    if extended:
        _refuse_shorter(run, stage, entry.get("length", {}), checkpoint, finished)
    if extended:
        log.warning(
            "%s: %s changed from %s to %s; continuing from %s with the new length",
            stage,
            "/".join(LENGTH_KEYS),
            entry.get("length", {}),
            run.length(stage),
            checkpoint.name,
        )
    return StageStart(stage, checkpoint=checkpoint, forced=forced, force=force)


def check_data(run: RunFolder, start: StageStart, fingerprint: str) -> None:
    """Refuse to resume a stage on other rows than it trained on (a data file edited, a Hub dataset updated,
    another pass-rate cache): the settings are the same, but the steps to come would not continue the run.
    ``fingerprint``: ``PreparedData.fingerprint`` of the rows it is about to train on."""
    recorded = run.read()["stages"].get(start.stage, {}).get("data")
    if start.checkpoint is None or recorded is None or recorded == fingerprint:  # None: recorded before it was
        return
    rows = run.root / "data" / f"{start.stage}.jsonl"
    if start.force:
        log.warning("resuming %s on other data than it trained on (--force); %s is replaced", start.stage, rows)
        return
    raise RecipeError(
        f"cannot resume {start.stage}: its data changed since it started (the rows it trained on are in {rows}); "
        "restore the data, pass --force to resume on the new rows, or --overwrite to start again"
    )


def outdated(run: RunFolder, stage: str) -> str | None:
    """Why a finished stage's model no longer follows from the run's earlier stage, or None: GRPO started from
    an SFT model that was trained again (``--overwrite``) or further (``--resume``) since."""
    if stage != "grpo" or run.recipe.sft is None:
        return None
    record = run.read()
    started_from = (record["stages"].get("grpo") or {}).get("sft")
    if started_from is None or started_from == sft_identity(record):  # None: recorded before it was kept
        return None
    return "it was trained from an sft model that has been trained again or further since"


def _check_checkpoint(run: RunFolder, stage: str, checkpoint: Path) -> None:
    """Refuse a checkpoint a file of which was damaged or deleted since it was marked complete, naming the one
    before it; warn when it holds no RNG state (the run goes on, not exactly as it would have)."""
    saves_optimizer = not getattr(run.recipe, stage).trainer.get("save_only_model", False)
    problem = resume_problem(checkpoint, saves_optimizer=saves_optimizer)
    if problem is not None:
        earlier = last_complete_checkpoint(checkpoint.parent, before=checkpoint)
        instead = f"to resume from {earlier.name}" if earlier else "to start again from step 0"
        raise RecipeError(
            f"cannot resume {stage} from {checkpoint}: {problem}; delete that folder {instead}, "
            "or pass --overwrite to start the stage again"
        )
    if saves_optimizer and not any(checkpoint.glob("rng_state*.pth")):
        log.warning(
            "%s holds no rng_state.pth: %s resumes with other random draws than the run it continues",
            checkpoint,
            stage,
        )


def _refuse_shorter(run: RunFolder, stage: str, old: dict[str, Any], checkpoint: Path, finished: bool) -> None:
    """Refuse a length the run already went past: resuming would train nothing and record the shorter one."""
    new = run.length(stage)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    new_steps, new_epochs = new.get("max_steps", -1), new.get("num_train_epochs")
    if new_steps > 0 and state["global_step"] > new_steps:
        past = f"{checkpoint.name} is at step {state['global_step']}"
    elif new_steps <= 0 and new_epochs is not None and state.get("epoch", 0) > new_epochs:
        past = f"{checkpoint.name} is at epoch {state['epoch']:g}"
    elif finished and is_shorter(old, new):
        past = f"it finished with {old}"
    else:
        return
    where = run.stage_dir(stage)
    raise RecipeError(
        f"cannot resume {stage} with {new}: {past}; pass --overwrite to train it that long from the start, "
        f"or use an earlier checkpoint as it is (`recipe eval --model {where}/checkpoint-N`, "
        f"`recipe push --checkpoint {where}/checkpoint-N`)"
    )


def _check_settings(run: RunFolder, stage: str, entry: dict, force: bool) -> bool:
    """Refuse to resume changed settings unless forced; return whether --force let a change through."""
    new = training_settings(run.recipe, stage)
    if "settings_hash" not in entry:
        if not force:
            raise RecipeError(
                f"{run.stage_dir(stage)} has no record of the settings it was trained with, so resuming "
                "cannot be checked; pass --force to resume anyway or --overwrite to start again"
            )
        return True
    if entry["settings_hash"] == settings_hash(new):
        return False
    changes = changed_settings(entry.get("settings", {}), new)
    if force:
        log.warning("resuming %s with changed settings (--force): %s", stage, "; ".join(changes))
        return True
    raise RecipeError(
        f"cannot resume {stage}: the recipe changed since it started ({'; '.join(changes) or 'settings hash'}); "
        "undo the change, pass --force to resume anyway, or --overwrite to start again"
    )


def _check_sft_start(run: RunFolder, entry: dict, force: bool, sft_start: StageStart | None) -> bool:
    """Refuse to resume GRPO from another SFT model than the one it started from, unless forced.

    The settings hash cannot tell: SFT's length is not part of it (so SFT can be extended), and
    SFT may have been trained again with the same settings. Return whether --force let it through.
    """
    if run.recipe.sft is None or entry.get("sft") is None:  # no SFT stage, or a record from before it was kept
        return False
    if sft_start is not None and not sft_start.skip:
        why = "sft trains again first in this command"
    elif outdated(run, "grpo") is not None:
        why = "the sft run it started from changed since (trained further or again)"
    else:
        return False
    if force:
        log.warning("resuming grpo from another sft model (--force): %s", why)
        return True
    raise RecipeError(
        f"cannot resume grpo: {why}, so grpo would continue from another model; train grpo again from the new "
        f"sft model with `recipe grpo ... --overwrite`, or pass --force to keep it"
    )


def changed_settings(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths whose values differ between two settings mappings, with both values.

    >>> changed_settings({"sft": {"lr": 1, "bs": 8}}, {"sft": {"lr": 2, "bs": 8}})
    ['sft.lr: 1 -> 2']
    """
    out = []
    for key in sorted(old.keys() | new.keys()):
        path = f"{prefix}{key}"
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_settings(a, b, prefix=f"{path}.")
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}")
    return out


def is_shorter(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a run length is shorter than another, where both count the same unit (steps, else epochs).

    >>> is_shorter({"max_steps": 8}, {"max_steps": 4}), is_shorter({"max_steps": 8}, {"num_train_epochs": 1})
    (True, False)
    >>> is_shorter({"num_train_epochs": 2}, {"num_train_epochs": 1.5})
    True
    """
    old_steps, new_steps = old.get("max_steps", -1), new.get("max_steps", -1)
    if old_steps > 0 and new_steps > 0:
        return new_steps < old_steps
    if old_steps <= 0 and new_steps <= 0 and "num_train_epochs" in old and "num_train_epochs" in new:
        return new["num_train_epochs"] < old["num_train_epochs"]
    return False
