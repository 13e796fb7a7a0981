"""Training health: GRPO alarms fire once per incident; diverged weights stop training and keep the last good checkpoint."""

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


def test_a_resumed_run_goes_on_with_the_incidents_of_its_checkpoint(tmp_path):
    """An incident that held before a preemption is neither warned again after the resume nor counted from zero."""
    health_log = tmp_path / "health.log"
    flat = {"loss": 0.0, "frac_reward_zero_std": 1.0}
    history = [{"step": step, **flat} for step in range(1, 5)]
    before = HealthWatch(HealthSettings(window_steps=3), health_log)
    assert [len(before.observe(row["step"], row)) for row in history] == [0, 0, 1, 0]
    with health_log.open("a") as handle:  # warned at step 6, after the checkpoint at step 4, then killed
        handle.write("2026-01-01T10:00:00+0000 grpo health, step 6: 100% of groups had the same reward ...\n")
    after = HealthWatch(HealthSettings(window_steps=3), health_log)
    after.resume(4, history)
    assert [line.split(" ", 1)[1][:22] for line in health_log.read_text().splitlines()] == ["grpo health, step 3: 1"]
    assert [after.observe(step, flat) for step in (5, 6, 7)] == [[], [], []]  # the same incident goes on
    resumed = HealthWatch(HealthSettings(window_steps=6))
    resumed.resume(4, history)
    assert resumed.observe(5, flat) == []
    [warning] = resumed.observe(6, flat)
    assert warning.startswith("grpo health, step 6: 100% of groups") and "for 6 steps" in warning  # 4 before


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


def test_a_zero_gradient_is_told_after_three_logs_not_the_window():
    """A step whose gradient is exactly 0 changed no weight: told after 3 logged steps, whatever the window."""
    zero = {"loss": 0.0, "grad_norm": 0.0, "completions/clipped_ratio": 1.0}
    watch = HealthWatch(HealthSettings())  # window_steps 30
    found = [w for step in range(1, 6) for w in watch.observe(step, zero) if "gradient" in w]
    assert found == [
        "grpo health, step 3: the gradient was exactly 0 (the steps changed no weight) for 3 steps; every completion "
        "reached max_completion_length, and mask_truncated_completions leaves truncated ones out of the loss: raise "
        "grpo.trainer.max_completion_length or turn mask_truncated_completions off"
    ]
    sparse = HealthWatch(HealthSettings())  # logging_steps 5: the 3rd log, step 15
    flat = {"loss": 0.0, "grad_norm": 0.0, "frac_reward_zero_signal": 1.0}
    assert [len(sparse.observe(step, flat)) for step in (5, 10)] == [0, 0]
    [warning] = [w for w in sparse.observe(15, flat) if "gradient" in w]
    assert warning.startswith("grpo health, step 15:") and "raise grpo.trainer.temperature" in warning
    assert HealthWatch(HealthSettings(window_steps=2)).observe(2, flat)  # a shorter window is kept
    learning = HealthWatch(HealthSettings())  # a lone zero between learning steps is no incident
    norms = [0.0, 0.0, 0.5, 0.0, 0.0, 0.3, 0.0]
    assert [w for step, g in enumerate(norms, 1) for w in learning.observe(step, {"loss": 0.1, "grad_norm": g})] == []


@pytest.mark.slow
def test_grpo_that_trains_nothing_says_so_early(recipe_dict, write_recipe, tmp_path, caplog):
    """Every completion cut off and masked out of the loss: the run is told at step 3, not after the window (30)."""
    del recipe_dict["sft"], recipe_dict["eval"]
    recipe_dict["grpo"]["trainer"].update(
        max_steps=4, logging_steps=1, max_completion_length=1, mask_truncated_completions=True
    )
    result = runner.invoke(app, ["grpo", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output
    health_log = (tmp_path / "runs" / "tiny" / "grpo" / "health.log").read_text()
    assert "grpo health, step 3: the gradient was exactly 0" in health_log
    assert "mask_truncated_completions off" in caplog.text


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


def assert_no_diverged_checkpoint_is_complete(stage_dir, kept_one: bool):
    """Every checkpoint with NaN/inf weights lacks the completion marker; the last complete one is finite."""
    import torch
    from safetensors.torch import load_file

    from recipe_cli.checkpoints import checkpoint_folders, is_complete, last_complete_checkpoint

    for checkpoint in checkpoint_folders(stage_dir):
        finite = all(bool(torch.isfinite(t).all()) for t in load_file(checkpoint / "model.safetensors").values())
        assert finite or not is_complete(checkpoint), checkpoint
    kept = last_complete_checkpoint(stage_dir)
    assert (kept is not None) == kept_one
    assert kept is None or all(bool(torch.isfinite(t).all()) for t in load_file(kept / "model.safetensors").values())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("saving", "kept"),
    [
        ({"save_strategy": "steps", "save_steps": 1, "logging_steps": 1}, "the last good checkpoint is"),
        # logging too sparse to see the gradient norm; epoch saves are decided after the step ends, and the
        # weights diverge within the first epoch (4 steps), so no checkpoint is good
        ({"save_strategy": "epoch", "logging_steps": 100}, "no checkpoint was saved before it"),
    ],
    ids=["steps", "epoch"],
)
def test_divergence_stops_and_keeps_the_last_good_checkpoint(recipe_dict, write_recipe, tmp_path, saving, kept):
    del recipe_dict["grpo"], recipe_dict["eval"]
    recipe_dict["sft"]["trainer"].update(max_steps=12, learning_rate=1.0e25, max_grad_norm=0.0, **saving)
    result = runner.invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 3, result.output
    assert "stopped:" in result.stderr and kept in result.stderr
    assert "Traceback" not in result.output
    stage_dir = tmp_path / "runs" / "tiny" / "sft"
    assert_no_diverged_checkpoint_is_complete(stage_dir, kept_one="good" in kept)
    assert not (stage_dir / "model.safetensors").exists()  # no final model from diverged weights
    assert json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())["stages"]["sft"]["status"] == "training"


def test_no_rank_writes_into_a_checkpoint_saved_from_non_finite_weights(tmp_path):
    """The main process deletes such a checkpoint while the other ranks run their own save callbacks: a rank that
    got there first must not write into it (a FileNotFoundError mid-deletion, or a leftover folder)."""
    from types import SimpleNamespace

    import torch

    from recipe_cli.training import LOG_STATE, log_state_callback

    trainer = SimpleNamespace(_tr_loss=torch.tensor(0.5), _globalstep_last_logged=2)
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=3)
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()  # not deleted yet
    healthy = {"now": False}
    callback = log_state_callback(trainer, None, lambda: healthy["now"])
    callback.on_save(args, state, SimpleNamespace())
    assert list(folder.iterdir()) == []
    healthy["now"] = True
    callback.on_save(args, state, SimpleNamespace())
    assert json.loads((folder / LOG_STATE.format(rank=0)).read_text())["last_logged"] == 2


def test_sharded_weights_are_checked_in_the_part_this_rank_holds():
    """Under ZeRO-3 a parameter is an empty placeholder outside its forward; its shard is ``ds_tensor``."""
    import torch

    from recipe_cli.health import _weights_finite

    model = torch.nn.Linear(2, 2)
    assert _weights_finite(model)
    for parameter in model.parameters():
        parameter.ds_tensor = torch.tensor([1.0, float("nan")])  # this rank's shard
        parameter.data = torch.empty(0)
    assert not _weights_finite(model)
