"""GRPO's steps as ``--dry-run`` plans them against what TRL's trainer takes.

TRL's sampler serves whole generation batches only (the prompts left over wait for another
epoch's shuffle), each split into ``steps_per_generation`` micro-batches and served
``num_iterations`` times; an optimizer step may hold part of a group.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.plan import training_plan

runner = CliRunner()


def grpo_only(recipe_dict: dict, prompts: int, **trainer) -> dict:
    recipe_dict.pop("sft")
    recipe_dict.pop("eval")
    recipe_dict["grpo"]["dataset"]["max_samples"] = prompts
    recipe_dict["grpo"]["trainer"].update(trainer)
    return recipe_dict


# steps the trainer took (trainer_state.json's global_step, one epoch), measured with TRL 1.16
@pytest.mark.parametrize(
    ("prompts", "trainer", "steps"),
    [
        (10, {"steps_per_generation": 3}, 3),  # one generation of 6 prompts, 4 left over; the plan said 5
        (6, {"per_device_train_batch_size": 2, "steps_per_generation": 2}, 12),  # half a group a step; plan said 0
        (10, {"per_device_train_batch_size": 12, "num_iterations": 2}, 6),
        (30, {"gradient_accumulation_steps": 2, "steps_per_generation": 3}, 8),  # 5 x 3 micro-batches, 2 a step: 7
    ],
)
def test_planned_steps_are_the_steps_trl_takes(recipe_dict, prompts, trainer, steps):
    recipe = validate_recipe(grpo_only(recipe_dict, prompts, max_steps=-1, num_train_epochs=1, **trainer))
    assert training_plan(recipe, ["grpo"]).stages[0].steps == steps


def test_a_step_holding_part_of_a_group_is_planned_as_such(recipe_dict):
    recipe = validate_recipe(grpo_only(recipe_dict, 6, per_device_train_batch_size=2, steps_per_generation=2))
    facts = "\n".join(training_plan(recipe, ["grpo"]).stages[0].facts)
    assert "0 unique prompts" not in facts
    assert "per optimizer step: 2 completions, half a group of 4" in facts


def test_the_dry_run_plans_the_steps_the_trainer_takes(recipe_dict, write_recipe, tmp_path):
    path = write_recipe(grpo_only(recipe_dict, 10, max_steps=-1, num_train_epochs=1, steps_per_generation=3))
    dry = runner.invoke(app, ["grpo", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "steps: 3 per epoch" in dry.output and "3 in all" in dry.output
    trained = runner.invoke(app, ["grpo", str(path)])
    assert trained.exit_code == 0, trained.output
    state = json.loads((tmp_path / "runs" / "tiny" / "grpo" / "trainer_state.json").read_text())
    assert state["global_step"] == 3


def test_fewer_prompts_than_one_generation_stop_before_the_model_loads(recipe_dict, write_recipe, tmp_path):
    """TRL's sampler made no batch of them: the stage trained 0 steps and was recorded finished."""
    path = write_recipe(grpo_only(recipe_dict, 5, per_device_train_batch_size=24))
    dry = runner.invoke(app, ["grpo", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "misfit: grpo.dataset: the 5 prompts are fewer than one generation batch of 6" in " ".join(
        dry.output.split()
    )
    result = runner.invoke(app, ["grpo", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: grpo.dataset: the 5 prompts are fewer than one generation batch of 6")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("saving", "warned"),
    [
        ({"save_strategy": "no"}, False),  # save_steps is never read: the warning asked to change a dead setting
        ({"save_strategy": "epoch"}, False),
        ({"save_strategy": "steps", "save_steps": 10}, True),
        ({"save_steps": 10}, True),  # TRL saves every save_steps steps by default
        ({"save_strategy": "steps", "save_steps": 9}, False),
    ],
)
def test_save_steps_against_the_generation_cycle_only_when_steps_are_saved(saving, warned):
    from recipe_cli.plan import checkpoint_risks

    risks = checkpoint_risks({"steps_per_generation": 3, **saving}, "grpo")
    assert any("optimizer steps one generation serves" in risk for risk in risks) == warned, risks
