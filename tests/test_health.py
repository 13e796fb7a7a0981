"""Training health: GRPO alarms fire once per incident; a NaN loss stops training and keeps the last good checkpoint."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import HealthSettings
from recipe_cli.health import HealthWatch

runner = CliRunner()


def test_each_alarm_warns_once_per_incident(tmp_path):
    watch = HealthWatch(HealthSettings(window_steps=3), tmp_path / "health.log")
    flat = {"loss": 0.0, "frac_reward_zero_std": 1.0, "completions/clipped_ratio": 0.9, "rewards/accuracy/mean": 0.0}

    def alarms(step, logs):
        return [
            "signal" if "no learning signal" in w else "truncated" if "truncated" in w else "constant"
            for w in watch.observe(step, logs)
        ]

    # zero variance and truncation hold from step 1; the reward is "constant" from its second value on
    assert [alarms(step, flat) for step in range(1, 8)] == [[], [], ["signal", "truncated"], ["constant"], [], [], []]
    healthy = {"loss": 0.1, "frac_reward_zero_std": 0.1, "completions/clipped_ratio": 0.0, "rewards/accuracy/mean": 0.5}
    assert alarms(8, healthy) == []  # every incident ends
    assert [alarms(step, flat) for step in range(9, 13)] == [[], [], ["signal", "truncated"], ["constant"]]
    assert len((tmp_path / "health.log").read_text().splitlines()) == 6


def test_constant_reward_is_reported_after_the_window():
    watch = HealthWatch(HealthSettings(window_steps=2))
    logs = [{"loss": 0.0, "rewards/format/mean": 1.0}] * 4
    found = [w for step, log in enumerate(logs, start=1) for w in watch.observe(step, log)]
    assert found == [
        "grpo health, step 3: the mean of reward 'format' stayed at 1 for 2 steps; "
        "check that the reward can tell completions apart (its column, its parser)"
    ]


def test_logging_every_n_steps_counts_n_steps():
    watch = HealthWatch(HealthSettings(window_steps=20))
    assert watch.observe(10, {"loss": 0.0, "frac_reward_zero_std": 0.9}) == []
    assert len(watch.observe(20, {"loss": 0.0, "frac_reward_zero_std": 0.9})) == 1


@pytest.mark.slow
def test_grpo_without_learning_signal_warns(recipe_dict, write_recipe, tmp_path, caplog):
    del recipe_dict["sft"], recipe_dict["eval"]
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}]  # an untrained model: every answer wrong, every group flat
    recipe_dict["grpo"]["trainer"].update(max_steps=3, logging_steps=1)
    recipe_dict["grpo"]["health"] = {"window_steps": 2}
    result = runner.invoke(app, ["grpo", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output
    health_log = (tmp_path / "runs" / "tiny" / "grpo" / "health.log").read_text()
    assert "no learning signal" in health_log and "no learning signal" in caplog.text
    assert health_log.count("no learning signal") == 1  # once per incident, not once per step


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(recipe_dict, write_recipe, tmp_path):
    del recipe_dict["grpo"], recipe_dict["eval"]
    recipe_dict["sft"]["trainer"].update(
        max_steps=12, learning_rate=1.0e25, save_strategy="steps", save_steps=1, logging_steps=1, max_grad_norm=0.0
    )
    result = runner.invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 3, result.output
    assert "stopped:" in result.stderr and "the last good checkpoint is" in result.stderr
    assert "Traceback" not in result.output
    stage_dir = tmp_path / "runs" / "tiny" / "sft"
    saved = sorted(int(p.name.split("-")[1]) for p in stage_dir.glob("checkpoint-*"))
    history = json.loads((stage_dir / f"checkpoint-{saved[-1]}" / "trainer_state.json").read_text())["log_history"]
    assert all(entry["loss"] == entry["loss"] for entry in history if "loss" in entry)  # no NaN in what was kept
    assert not (stage_dir / "model.safetensors").exists()  # no final model from diverged weights
    assert json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())["stages"]["sft"]["status"] == "training"
