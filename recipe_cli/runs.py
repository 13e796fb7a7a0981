"""The run folder ``runs/<name>/``: each stage's checkpoint, the eval results, and the hand-off record.

``run.json`` records every finished stage (its checkpoint path, whether it is a LoRA adapter,
and the base model), so ``recipe grpo`` starts from the checkpoint ``recipe sft`` saved, on disk,
and ``recipe eval``/``push`` find what was trained.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from recipe_cli.config import Recipe
from recipe_cli.errors import RecipeError


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
        if not self.record_path.is_file():
            return {"stages": {}}
        return json.loads(self.record_path.read_text())

    def _write(self, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.record_path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(partial, self.record_path)  # atomic: a crash never leaves half a record

    def save_recipe(self) -> None:
        """Keep the validated recipe (overrides applied) beside its results."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.recipe.model_dump(mode="json", exclude_none=True)
        (self.root / "recipe.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def record_stage(self, stage: str, path: Path, *, lora: bool, base: str, started_from: str) -> None:
        record = self.read()
        record["stages"][stage] = {
            "path": str(path),
            "lora": lora,
            "base_model": base,
            "started_from": started_from,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._write(record)

    def finished(self, stage: str) -> dict | None:
        """The record of a finished stage whose checkpoint is still on disk, else None."""
        entry = self.read()["stages"].get(stage)
        if entry and Path(entry["path"]).is_dir():
            return entry
        return None

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

    def final_stage(self) -> str | None:
        """The last training stage that finished: grpo, else sft."""
        for stage in ("grpo", "sft"):
            if self.finished(stage):
                return stage
        return None
