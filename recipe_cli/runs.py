"""The run folder ``runs/<name>/``: each stage's checkpoint, the eval results, and the hand-off record.

``run.json`` records every stage that started training (the settings it trains with and their
hash) and every finished stage (its checkpoint path, whether it is a LoRA adapter, and the base
model), so ``recipe grpo`` starts from the checkpoint ``recipe sft`` saved, on disk, ``recipe eval``
and ``push`` find what was trained, and ``--resume`` refuses to continue a run whose settings changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recipe_cli.atomic import write_atomic
from recipe_cli.checkpoints import last_complete_checkpoint, resume_problem
from recipe_cli.config import Recipe, describe_yaml_error
from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)

# trainer settings that change how a run is logged, saved or shown, not what it learns: a resumed
# run may change them freely. max_steps and num_train_epochs are absent from the hash too, so a
# finished or interrupted run can be extended; see ``StageStart``.
UNHASHED_TRAINER_KEYS = {
    "logging_steps",
    "logging_strategy",
    "logging_first_step",
    "save_steps",
    "save_strategy",
    "save_total_limit",
    "report_to",
    "project",
    "trackio_space_id",
    "trackio_bucket_id",
    "trackio_static_space_id",
    "disable_tqdm",
    "run_name",
    "log_completions",
    "num_completions_to_print",
    "max_steps",
    "num_train_epochs",
}
LENGTH_KEYS = ("max_steps", "num_train_epochs")
# Test hook: each write of run.json appends "<pid> <rank>" to this file, so a test can see which processes
# wrote it (the main process alone must). Unset in normal runs.
RECORD_WRITERS_ENV = "RECIPE_TEST_RECORD_WRITERS"


def training_settings(recipe: Recipe, stage: str) -> dict[str, Any]:
    """What a stage's result depends on: model, prompt, seed, the stage's data, rewards and trainer settings.

    Evaluation, pushing and the run folder's location are left out: changing them never changes
    what a resumed run would learn. GRPO's include SFT's, since a different SFT model is a different start.
    """
    section = getattr(recipe, stage).model_dump(mode="json")
    section["trainer"] = {k: v for k, v in section["trainer"].items() if k not in UNHASHED_TRAINER_KEYS}
    section.pop("health", None)  # alarms watch the run; they do not change it
    if section.get("divergence", 0) is None:  # unset: hashes as before the setting existed
        section.pop("divergence")
    settings = {
        "model": recipe.model.model_dump(mode="json"),
        "prompt": recipe.prompt.model_dump(mode="json"),
        "seed": recipe.seed,
        "world_size": recipe.launch.num_processes,  # the global batch and each rank's data order depend on it
        stage: section,
    }
    options = getattr(recipe, stage).dataset.decontaminate
    if options.enabled and options.against_eval and recipe.eval is not None:  # the eval set decides what is removed
        settings["decontaminated_against"] = recipe.eval.dataset.model_dump(mode="json")
        # the questions removed, not the name their results are filed under
        others = [dataset.model_dump(mode="json", exclude={"name"}) for _, _, dataset in recipe.eval.sets[1:]]
        if others:  # one eval set hashes as before the others were indexed
            settings["decontaminated_against_others"] = others
    if stage == "grpo" and recipe.sft is not None:  # GRPO continues SFT's model: a changed SFT changes GRPO's start
        settings["sft"] = training_settings(recipe, "sft")["sft"]
    return settings


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable hash of a settings mapping (key order does not matter).

    >>> settings_hash({"a": 1, "b": [2, 3]}) == settings_hash({"b": [2, 3], "a": 1})
    True
    >>> len(settings_hash({}))
    16
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def read_record(path: Path) -> dict:
    """A run's ``run.json`` (``{"stages": {}}`` when there is none); one that cannot be read is a user error."""
    if not path.is_file():
        return {"stages": {}}
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"is not valid JSON ({error})"
    else:
        if isinstance(record, dict) and isinstance(record.get("stages"), dict):
            return record
        problem = "has no `stages` mapping"
    raise RecipeError(
        f"{path} {problem}, so the run's stages cannot be told apart; delete it, then train with --resume --force to "
        "go on from the run's checkpoints (the settings they trained with can no longer be checked) or with "
        "--overwrite to start again"
    )


def read_saved_recipe(run_dir: Path) -> dict | None:
    """``runs/<name>/recipe.yaml`` as the raw mapping the run saved (overrides applied), None without one."""
    saved = run_dir / "recipe.yaml"
    if not saved.is_file():
        return None
    try:
        data = yaml.safe_load(saved.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = describe_yaml_error(error) if isinstance(error, yaml.YAMLError) else "not UTF-8 text"
        raise RecipeError(f"{saved} cannot be read ({problem}); delete it, or train again with --overwrite") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{saved} holds no recipe mapping; delete it, or train again with --overwrite")
    return data


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
    force: bool = False  # --force: resume also on other data than the stage trained on (``RunFolder.check_data``)


@dataclass(frozen=True)
class EarlierRecord:
    """What ``RunFolder.record_training`` replaced, for ``RunFolder.restore_stage``."""

    entry: dict | None  # the stage's entry in run.json; None: it had none
    recipe: bytes | None  # recipe.yaml as it was; None: there was none


class RunFolder:
    """Paths and records of one recipe's run folder."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.root = recipe.run_dir

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def record_path(self) -> Path:
        return self.root / "run.json"

    def read(self) -> dict:
        return read_record(self.record_path)

    def _write(self, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.record_path, json.dumps(record, indent=2) + "\n", durable=True)
        if os.environ.get(RECORD_WRITERS_ENV):
            with open(os.environ[RECORD_WRITERS_ENV], "a") as writers:
                writers.write(f"{os.getpid()} {os.environ.get('RANK', '0')}\n")

    def recorded_recipe(self) -> Recipe | None:
        """The recipe the run was trained with, as saved beside it (``--set`` overrides included); None without one."""
        from recipe_cli.config import validate_recipe

        data = read_saved_recipe(self.root)
        return None if data is None else validate_recipe(data, source=str(self.recipe_path))

    @property
    def recipe_path(self) -> Path:
        return self.root / "recipe.yaml"

    def save_recipe(self) -> None:
        """Keep the validated recipe (overrides applied) beside its results.

        Unset values are kept as null: ``prompt.system: null`` (no system message) must not read
        back as the default system prompt.
        """
        text = yaml.safe_dump(self.recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        self._write_recipe(text.encode())

    def _write_recipe(self, content: bytes) -> None:
        """Written aside and renamed: a command reading the record meanwhile (another rank, a later command) sees
        the old recipe or the new one, never half of one."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.recipe_path, content)

    def record_training(self, stage: str, resumed_from: Path | None, data: str | None = None) -> EarlierRecord:
        """Note that a stage is training, with the settings it trains with and the fingerprint of its rows
        (``data``; what ``--resume`` compares), and save the recipe it trains with (``save_recipe``).

        Returns what both held before, for ``restore_stage``.
        """
        record = self.read()
        earlier = record["stages"].get(stage)
        settings = training_settings(self.recipe, stage)
        entry = {
            "status": "training",
            "settings_hash": settings_hash(settings),
            "settings": settings,
            "world_size": self.recipe.launch.num_processes,
            "length": self._length(stage),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if data is not None:
            entry["data"] = data
        if resumed_from is not None:
            entry["resumed_from"] = str(resumed_from)
        if stage == "grpo" and self.recipe.sft is not None:  # which SFT model GRPO starts from
            entry["sft"] = self._sft_identity(record)
        if stage == "grpo":  # readable: the divergence to the reference model actually trained with
            entry["divergence"] = self.recipe.grpo.describe_divergence()
        record["stages"][stage] = entry
        saved = self.recipe_path.read_bytes() if self.recipe_path.is_file() else None
        self.save_recipe()
        self._write(record)
        return EarlierRecord(earlier, saved)

    def restore_stage(self, stage: str, earlier: EarlierRecord) -> None:
        """Put back the stage's entry and the saved recipe as they were before ``record_training``: the attempt
        trained no step, so the run is what it was."""
        record = self.read()
        if earlier.entry is None:
            record["stages"].pop(stage, None)
        else:
            record["stages"][stage] = earlier.entry
        self._write(record)
        if earlier.recipe is None:
            self.recipe_path.unlink(missing_ok=True)
        else:
            self._write_recipe(earlier.recipe)

    def forget_stage(self, stage: str) -> None:
        """Drop a stage from ``run.json``: its folder was cleared for an attempt that trained nothing."""
        record = self.read()
        if record["stages"].pop(stage, None) is not None:
            self._write(record)

    def _length(self, stage: str) -> dict[str, Any]:
        trainer = getattr(self.recipe, stage).trainer
        return {key: trainer[key] for key in LENGTH_KEYS if key in trainer}

    @staticmethod
    def _sft_identity(record: dict) -> dict[str, Any] | None:
        """What tells one finished SFT model from another: its settings, its length and when it finished."""
        entry = record["stages"].get("sft")
        if not entry or entry.get("status") != "finished":
            return None
        return {key: entry.get(key) for key in ("settings_hash", "length", "finished_at")}

    def record_stage(
        self, stage: str, path: Path, *, lora: bool, base: str, started_from: str, precision: dict | None = None
    ) -> None:
        record = self.read()
        record["stages"][stage] = {
            **record["stages"].get(stage, {}),
            "status": "finished",
            "path": str(path),
            "lora": lora,
            "base_model": base,
            "started_from": started_from,
            "precision": precision,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._write(record)

    def finished(self, stage: str) -> dict | None:
        """The record of a finished stage whose checkpoint is still on disk, else None."""
        entry = self.read()["stages"].get(stage)
        if entry and entry.get("status", "finished") == "finished" and Path(entry.get("path", "")).is_dir():
            return entry
        return None

    def holds_run(self, stage: str) -> bool:
        """Whether a stage's folder or record holds anything of an earlier attempt."""
        folder = self.stage_dir(stage)
        return stage in self.read()["stages"] or (folder.is_dir() and any(folder.iterdir()))

    def plan_start(
        self, stage: str, *, resume: bool, overwrite: bool, force: bool, sft_start: StageStart | None = None
    ) -> StageStart:
        """Decide how a stage starts, writing nothing; refuse to overwrite or to resume changed settings.

        GRPO's settings include the SFT model it started from: a GRPO run is changed when the SFT
        run finished since, or when ``sft_start`` (SFT's plan in the same command) trains SFT again.
        Extending a run (a larger ``max_steps`` or ``num_train_epochs``) is allowed: the run continues
        from its last checkpoint, but a decaying learning-rate schedule is recomputed for the new
        length, so the result differs from a run planned that long from the start.
        """
        check_start_flags(resume=resume, overwrite=overwrite, force=force)
        folder = self.stage_dir(stage)
        if not self.holds_run(stage):
            return StageStart(stage)
        if overwrite:
            return StageStart(stage, clear=True)
        finished = self.finished(stage) is not None
        what = "a finished" if finished else "an unfinished"
        if not resume:
            raise RecipeError(
                f"{folder} already holds {what} {stage} run; pass --resume to continue it "
                "or --overwrite to delete it and start again"
            )
        entry = self.read()["stages"].get(stage, {})
        forced = self._check_settings(stage, entry, force)
        if stage == "grpo":
            forced = self._check_sft_start(entry, force, sft_start) or forced
        extended = entry.get("length", {}) != self._length(stage)
        if finished and not extended:
            return StageStart(stage, skip=True, forced=forced)
        checkpoint = last_complete_checkpoint(folder)
        if checkpoint is None and finished:
            raise RecipeError(
                f"{stage} finished with {entry.get('length', {})} and kept no checkpoint to continue from "
                f"(save_strategy: no?); to train it with {self._length(stage)}, pass --overwrite to start again"
            )
        if checkpoint is None:
            log.warning("%s holds no complete checkpoint to resume; %s starts again from step 0", folder, stage)
            return StageStart(stage, clear=True)
        self._check_checkpoint(stage, checkpoint)
        if extended:
            self._refuse_shorter(stage, entry.get("length", {}), checkpoint, finished)
        if extended:
            log.warning(
                "%s: %s changed from %s to %s; continuing from %s with the new length",
                stage,
                "/".join(LENGTH_KEYS),
                entry.get("length", {}),
                self._length(stage),
                checkpoint.name,
            )
        return StageStart(stage, checkpoint=checkpoint, forced=forced, force=force)

    def check_data(self, start: StageStart, fingerprint: str) -> None:
        """Refuse to resume a stage on other rows than it trained on (a data file edited, a Hub dataset updated,
        another pass-rate cache): the settings are the same, but the steps to come would not continue the run.
        ``fingerprint``: ``PreparedData.fingerprint`` of the rows it is about to train on."""
        recorded = self.read()["stages"].get(start.stage, {}).get("data")
        if start.checkpoint is None or recorded is None or recorded == fingerprint:  # None: recorded before it was
            return
        rows = self.root / "data" / f"{start.stage}.jsonl"
        if start.force:
            log.warning("resuming %s on other data than it trained on (--force); %s is replaced", start.stage, rows)
            return
        raise RecipeError(
            f"cannot resume {start.stage}: its data changed since it started (the rows it trained on are in {rows}); "
            "restore the data, pass --force to resume on the new rows, or --overwrite to start again"
        )

    def _check_checkpoint(self, stage: str, checkpoint: Path) -> None:
        """Refuse a checkpoint a file of which was damaged or deleted since it was marked complete, naming the one
        before it; warn when it holds no RNG state (the run goes on, not exactly as it would have)."""
        saves_optimizer = not getattr(self.recipe, stage).trainer.get("save_only_model", False)
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

    def _refuse_shorter(self, stage: str, old: dict[str, Any], checkpoint: Path, finished: bool) -> None:
        """Refuse a length the run already went past: resuming would train nothing and record the shorter one."""
        new = self._length(stage)
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
        where = self.stage_dir(stage)
        raise RecipeError(
            f"cannot resume {stage} with {new}: {past}; pass --overwrite to train it that long from the start, "
            f"or use an earlier checkpoint as it is (`recipe eval --model {where}/checkpoint-N`, "
            f"`recipe push --checkpoint {where}/checkpoint-N`)"
        )

    def _check_settings(self, stage: str, entry: dict, force: bool) -> bool:
        """Refuse to resume changed settings unless forced; return whether --force let a change through."""
        new = training_settings(self.recipe, stage)
        if "settings_hash" not in entry:
            if not force:
                raise RecipeError(
                    f"{self.stage_dir(stage)} has no record of the settings it was trained with, so resuming "
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

    def _check_sft_start(self, entry: dict, force: bool, sft_start: StageStart | None) -> bool:
        """Refuse to resume GRPO from another SFT model than the one it started from, unless forced.

        The settings hash cannot tell: SFT's length is not part of it (so SFT can be extended), and
        SFT may have been trained again with the same settings. Return whether --force let it through.
        """
        started_from = entry.get("sft")
        if self.recipe.sft is None or started_from is None:  # no SFT stage, or a record from before it was kept
            return False
        if sft_start is not None and not sft_start.skip:
            why = "sft trains again first in this command"
        elif started_from != self._sft_identity(self.read()):
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

    def outdated(self, stage: str) -> str | None:
        """Why a finished stage's model no longer follows from the run's earlier stage, or None: GRPO started from
        an SFT model that was trained again (``--overwrite``) or further (``--resume``) since."""
        if stage != "grpo" or self.recipe.sft is None:
            return None
        record = self.read()
        started_from = (record["stages"].get("grpo") or {}).get("sft")
        if started_from is None or started_from == self._sft_identity(record):  # None: recorded before it was kept
            return None
        return "it was trained from an sft model that has been trained again or further since"

    def base_model_path(self) -> str:
        """Where the starting model is: its Hub id or folder, or the tiny model built in the run folder."""
        if self.recipe.model.tiny is not None:
            return str(self.stage_dir("base"))
        return self.recipe.model.path

    def start_of(self, stage: str) -> str:
        """The checkpoint a training stage starts from: the SFT output for GRPO when the recipe has SFT."""
        if stage == "grpo" and self.recipe.sft is not None:
            entry = self.finished("sft")
            if entry is None:
                raise RecipeError(
                    f"the recipe has an sft stage but {self.stage_dir('sft')} holds no finished SFT checkpoint; "
                    "run `recipe sft` first (or `recipe run` for every stage)"
                )
            return entry["path"]
        return self.base_model_path()

    def divergence_of(self, path: str | Path) -> dict | None:
        """The divergence to the reference model that trained ``path``, when it is this run's GRPO checkpoint."""
        folder, checkpoint = self.stage_dir("grpo").resolve(), Path(path).resolve()
        if checkpoint != folder and folder not in checkpoint.parents:
            return None
        return self.read()["stages"].get("grpo", {}).get("divergence")

    def final_stage(self) -> str | None:
        """The last training stage that finished: grpo, else sft."""
        for stage in ("grpo", "sft"):
            if self.finished(stage):
                return stage
        return None
