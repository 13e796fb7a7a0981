"""SFT's steps as ``--dry-run`` plans them against what TRL's SFTTrainer takes.

With ``packing``, SFTTrainer trains on rows of up to ``max_length`` tokens that each hold several
examples (or parts of them), so an epoch takes fewer steps than the examples alone make.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.plan import training_plan

runner = CliRunner()


def sft_only(recipe_dict: dict, **trainer) -> dict:
    recipe_dict.pop("grpo")
    recipe_dict.pop("eval")
    recipe_dict["sft"]["trainer"].update(max_steps=-1, num_train_epochs=1, **trainer)
    return recipe_dict


# steps the trainer took (trainer_state.json's global_step, one epoch of 32 examples of 60-103 tokens), measured
# with TRL 1.16; the plan counted the examples: 32, 16, 8
@pytest.mark.parametrize(
    ("trainer", "steps"),
    [
        ({"packing": True, "max_length": 256, "per_device_train_batch_size": 1, "packing_strategy": "wrapped"}, 12),
        ({"packing": True, "max_length": 200, "packing_strategy": "bfd_split", "per_device_train_batch_size": 2}, 8),
        ({"packing": True, "max_length": 200, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}, 4),
        ({"packing": False, "max_length": 256, "per_device_train_batch_size": 3}, 11),
    ],
)
def test_planned_steps_are_the_steps_sft_takes(recipe_dict, trainer, steps):
    recipe = validate_recipe(sft_only(recipe_dict, **trainer))
    assert training_plan(recipe, ["sft"]).stages[0].steps == steps


def test_the_dry_run_plans_the_packed_rows_the_trainer_takes(recipe_dict, write_recipe, tmp_path):
    path = write_recipe(sft_only(recipe_dict, packing=True, max_length=256, per_device_train_batch_size=1))
    dry = runner.invoke(app, ["sft", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    out = " ".join(dry.output.split())
    assert "steps: 15 per epoch (1 packed rows per step); 15 in all" in out
    assert "packing (bfd): 32 examples in 15 rows of up to 256 tokens" in out
    assert "micro-batch 1 x 256 tokens" in out  # a packed row, not the longest example
    trained = runner.invoke(app, ["sft", str(path)])
    assert trained.exit_code == 0, trained.output
    state = json.loads((tmp_path / "runs" / "tiny" / "sft" / "trainer_state.json").read_text())
    assert state["global_step"] == 15


@pytest.mark.parametrize(
    ("trainer", "warned"),
    [
        ({}, True),  # 4 steps by epochs, logging_steps 10 by default: the run logged no step, and no risk was said
        ({"packing": True, "max_length": 256, "per_device_train_batch_size": 4, "logging_steps": 5}, True),  # 4 steps
        ({"logging_steps": 4}, False),
        ({"logging_steps": 0.5}, False),  # a ratio of the steps
        ({"logging_strategy": "epoch"}, False),  # logging_steps is unread
    ],
)
def test_a_logging_interval_longer_than_the_planned_steps_is_a_risk(recipe_dict, trainer, warned):
    recipe = validate_recipe(sft_only(recipe_dict, **trainer))
    risks = training_plan(recipe, ["sft"]).stages[0].risks
    assert any("so no step is logged" in risk for risk in risks) == warned, risks


# prompts of 68-77 tokens, max_length 60: TRL trains no completion token only where it keeps a row's start
@pytest.mark.parametrize(
    ("trainer", "kept", "steps"),
    [
        ({"truncation_mode": "keep_start"}, 0, 0),  # every prompt fills max_length: dropped (and training stops)
        ({"truncation_mode": "keep_end"}, 32, 4),  # TRL keeps the last 60 tokens, completion included: 4 steps
        ({"packing": True, "packing_strategy": "wrapped"}, 32, 7),  # the rest goes in other rows: 51 rows, 7 steps
        ({"packing": True, "packing_strategy": "bfd", "truncation_mode": "keep_end"}, 0, 0),  # bfd keeps the start
    ],
)
def test_prompts_that_fill_max_length_are_dropped_only_where_trl_trains_nothing_of_them(
    recipe_dict, trainer, kept, steps
):
    """Measured with TRL 1.16: keep_end and wrapped trained 4 and 7 steps; recipe dropped every row and stopped."""
    recipe = validate_recipe(sft_only(recipe_dict, max_length=60, **trainer))
    plan = training_plan(recipe, ["sft"]).stages[0]
    assert (len(plan.prepared.rows), plan.steps) == (kept, steps)
