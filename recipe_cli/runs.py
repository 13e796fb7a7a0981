"""The run folder ``runs/<name>/``: each stage's checkpoint, the eval results, and the hand-off record.

``run.json`` records every stage that started training (the settings it trains with and their
hash) and every finished stage (its checkpoint path, whether it is a LoRA adapter, and the base
model), so ``recipe grpo`` starts from the checkpoint ``recipe sft`` saved, on disk, ``recipe eval``
and ``push`` find what was trained, and ``--resume`` refuses to continue a run whose settings changed
(the rules: ``recipe_cli.resume``).
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
from recipe_cli.config import Recipe, describe_yaml_error
from recipe_cli.errors import RecipeError
from recipe_cli.trackers import TrackerRun

log = logging.getLogger(__name__)

# trainer settings that change how a run is logged, saved or shown, not what it learns: a resumed
# run may change them freely. max_steps and num_train_epochs are absent from the hash too, so a
# finished or interrupted run can be extended; see ``recipe_cli.resume.plan_start``.
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


def sft_identity(record: dict) -> dict[str, Any] | None:
    """What tells one finished SFT model from another: its settings, its length and when it finished."""
    entry = record["stages"].get("sft")
    if not entry or entry.get("status") != "finished":
        return None
    return {key: entry.get(key) for key in ("settings_hash", "length", "finished_at")}


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

    def record_training(
        self, stage: str, resumed_from: Path | None, data: str | None = None, tracker: TrackerRun | None = None
    ) -> EarlierRecord:
        """Note that a stage is training, with the settings it trains with, the fingerprint of its rows
        (``data``; what ``--resume`` compares) and its run in the trackers, and save the recipe it trains with
        (``save_recipe``).

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
            "length": self.length(stage),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if data is not None:
            entry["data"] = data
        if resumed_from is not None:
            entry["resumed_from"] = str(resumed_from)
        if tracker is not None:
            entry["tracker"] = tracker.record()
        if stage == "grpo" and self.recipe.sft is not None:  # which SFT model GRPO starts from
            entry["sft"] = sft_identity(record)
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

    def length(self, stage: str) -> dict[str, Any]:
        trainer = getattr(self.recipe, stage).trainer
        return {key: trainer[key] for key in LENGTH_KEYS if key in trainer}

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
