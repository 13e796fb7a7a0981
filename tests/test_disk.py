"""Disk: the dry run's checkpoint sizes are what training writes, and a disk too small is said before training."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.plan import training_plan

runner = CliRunner()


@pytest.fixture
def saving_recipe(recipe_dict):
    """The tiny recipe's SFT saving a checkpoint every 2 of its 4 steps, all kept."""
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    return recipe_dict


@pytest.mark.parametrize("lora", [False, True])
def test_the_planned_checkpoint_is_what_training_writes(saving_recipe, write_recipe, tmp_path, lora):
    if lora:
        saving_recipe["model"]["lora"] = {"r": 4, "target_modules": ["q_proj", "v_proj"]}
    plan = training_plan(validate_recipe(saving_recipe), ["sft"]).stages[0].disk
    assert plan.checkpoints == 2
    result = runner.invoke(app, ["sft", str(write_recipe(saving_recipe))])
    assert result.exit_code == 0, result.output
    checkpoint = tmp_path / "runs" / "tiny" / "sft" / "checkpoint-4"
    weights = sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))
    optimizer = (checkpoint / "optimizer.pt").stat().st_size
    assert 0 <= weights - plan.weights <= 4096 + plan.weights // 100  # the safetensors header: names, shapes
    assert 0 <= optimizer - plan.optimizer <= 16384 + plan.optimizer // 10  # pickle: keys, step counters, groups
    assert len(list(checkpoint.parent.glob("checkpoint-*"))) == plan.checkpoints


@pytest.mark.parametrize(
    "saving",
    [
        {"save_steps": 3},  # at step 3, and at the last step (4): transformers saves there too
        {"save_strategy": "epoch", "num_train_epochs": 1, "max_steps": 6},  # 4 steps an epoch: max_steps runs 2
    ],
)
def test_the_planned_checkpoint_count_is_what_training_writes(
    saving_recipe, write_recipe, tmp_path, monkeypatch, caplog, saving
):
    saving_recipe["sft"]["trainer"].update(saving)
    planned = training_plan(validate_recipe(saving_recipe), ["sft"]).stages[0].disk.checkpoints
    monkeypatch.setattr("recipe_cli.disk.free_bytes", lambda path: 1000)  # training's warning says what it counted
    with caplog.at_level(logging.WARNING, logger="recipe_cli"):
        result = runner.invoke(app, ["sft", str(write_recipe(saving_recipe))])
    assert result.exit_code == 0, result.output
    written = len(list((tmp_path / "runs" / "tiny" / "sft").glob("checkpoint-*")))
    assert planned == written == 2
    assert f"({written} x checkpoint-N" in " ".join(caplog.text.split())


def test_the_dry_run_shows_the_disk_and_warns_when_it_is_too_small(saving_recipe, write_recipe, monkeypatch):
    path = write_recipe(saving_recipe)
    result = runner.invoke(app, ["sft", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "disk: checkpoint-N" in result.output and "up to 2 at once" in result.output
    assert "disk: the planned stages: up to" in result.output and "free there" not in result.output
    monkeypatch.setattr("recipe_cli.disk.free_bytes", lambda path: 1000)
    result = runner.invoke(app, ["sft", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "disk: the planned stages: up to" in output and "1000 B free there" in output


def test_training_warns_at_its_start_when_the_disk_cannot_take_its_checkpoints(
    saving_recipe, write_recipe, monkeypatch, caplog
):
    monkeypatch.setattr("recipe_cli.disk.free_bytes", lambda path: 1000)
    with caplog.at_level(logging.WARNING, logger="recipe_cli"):
        result = runner.invoke(app, ["sft", str(write_recipe(saving_recipe))])
    assert result.exit_code == 0, result.output  # a warning: space may be freed while it trains
    warning = " ".join(caplog.text.split())
    assert "sft (2 x checkpoint-N" in warning and "more to write" in warning and "1000 B free there" in warning
