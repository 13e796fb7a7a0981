"""Dynamic sampling: zero-signal groups are found from the gathered rewards and replaced by fresh prompts' groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.dynamic_sampling import DynamicSamplingMixin, SignalMetricMixin, zero_signal_groups

runner = CliRunner()
REWARDS = Path(__file__).parent / "shaping_rewards.py"


@pytest.mark.parametrize(
    ("rewards", "expected"),
    [
        ([[1.0], [1.0], [0.0], [1.0]], [True, False]),  # the first group all scored 1
        ([[0.0], [0.0], [0.0], [0.0]], [True, True]),
        ([[float("nan")], [1.0], [0.0], [float("nan")]], [True, True]),  # one scored completion: no comparison
        ([[float("nan")], [1.0], [float("nan")], [float("nan")]], [True, True]),
    ],
)
def test_zero_signal_groups(rewards, expected):
    assert zero_signal_groups(torch.tensor(rewards), torch.tensor([1.0]), 2) == expected


def test_weights_decide_the_total():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # different per function, same weighted total
    assert zero_signal_groups(rewards, torch.tensor([1.0, 1.0]), 2) == [True]
    assert zero_signal_groups(rewards, torch.tensor([1.0, 0.5]), 2) == [False]


class FakeTrainer:
    """What the zero-signal test reads of a trainer: the reward columns' names and weights, the group size."""

    def __init__(self, names, rewards):
        self.reward_func_names = names
        self.reward_weights = torch.ones(len(names))
        self.num_generations = 2
        self._gathered_rewards = torch.tensor(rewards)
        self._metrics = {"train": {"frac_reward_zero_signal": []}}
        self.model = torch.nn.Linear(1, 1)  # in training mode


def test_zero_signal_groups_leave_a_divergence_in_the_reward_out():
    """Dynamic sampling and the logged metric agree: the per-sequence penalty always differs, the task reward not."""
    rewards = [[1.0, -0.011], [1.0, -0.023], [0.0, -0.017], [1.0, -0.012]]  # accuracy, divergence_k3
    trainer = FakeTrainer(["accuracy", "divergence_k3"], rewards)
    assert DynamicSamplingMixin._zero_signal(trainer) == [True, False]

    class Scored:
        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            return torch.tensor(rewards)

    class Logged(SignalMetricMixin, Scored, FakeTrainer):
        pass

    logged = Logged(["accuracy", "divergence_k3"], rewards)
    logged._calculate_rewards([], [], [], [])
    assert logged._metrics["train"]["frac_reward_zero_signal"] == [0.5]


@pytest.mark.slow
def test_grpo_replaces_zero_signal_groups(recipe_dict, write_recipe, tmp_path):
    """Half the problems (even golds) give every completion the same reward; dynamic sampling swaps them out."""
    recipe_dict["sft"] = None
    recipe_dict["eval"] = None
    recipe_dict["grpo"]["rewards"] = [{"name": f"{REWARDS}:flat_on_even_answers"}]
    recipe_dict["grpo"]["trainer"].update(max_steps=3, logging_steps=1)
    recipe_dict["grpo"]["dynamic_sampling"] = {"enabled": True, "max_rounds": 8}
    result = runner.invoke(app, ["grpo", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output + repr(result.exception)

    run_dir = tmp_path / "runs" / "tiny"
    logs = json.loads((run_dir / "grpo" / "trainer_state.json").read_text())["log_history"]
    steps = [entry for entry in logs if "dynamic_sampling/zero_signal_fraction" in entry]
    assert len(steps) == 3
    drawn = [entry["dynamic_sampling/zero_signal_fraction"] for entry in steps]
    assert any(fraction > 0 for fraction in drawn), drawn
    for entry in steps:
        assert entry["dynamic_sampling/zero_signal_left"] == 0.0  # 8 rounds are plenty at a 50% rate
        assert entry["dynamic_sampling/replaced_fraction"] == entry["dynamic_sampling/zero_signal_fraction"]
        # TRL's own metric still describes the batch as drawn
        assert entry["frac_reward_zero_std"] == entry["dynamic_sampling/zero_signal_fraction"]
    assert json.loads((run_dir / "data" / "grpo.json").read_text())["rows"] == 32


@pytest.mark.slow
def test_zero_rounds_measure_and_replace_nothing(recipe_dict, write_recipe, tmp_path):
    """max_rounds 0 logs the zero-signal share and leaves the batch as drawn (the same loss as without it)."""
    recipe_dict["sft"] = None
    recipe_dict["eval"] = None
    recipe_dict["grpo"]["rewards"] = [{"name": f"{REWARDS}:flat_on_even_answers"}]
    recipe_dict["grpo"]["trainer"].update(max_steps=2, logging_steps=1)
    losses = {}
    for label, sampling in (("plain", None), ("measured", {"enabled": True, "max_rounds": 0})):
        recipe_dict["name"] = label
        if sampling:
            recipe_dict["grpo"]["dynamic_sampling"] = sampling
        result = runner.invoke(app, ["grpo", str(write_recipe(recipe_dict, f"{label}.yaml"))])
        assert result.exit_code == 0, result.output + repr(result.exception)
        logs = json.loads((tmp_path / "runs" / label / "grpo" / "trainer_state.json").read_text())["log_history"]
        losses[label] = [entry["loss"] for entry in logs if "loss" in entry]
        if sampling:
            steps = [entry for entry in logs if "dynamic_sampling/rounds" in entry]
            assert all(entry["dynamic_sampling/rounds"] == 0 for entry in steps)
            assert all(entry["dynamic_sampling/replaced_fraction"] == 0 for entry in steps)
            assert any(entry["dynamic_sampling/zero_signal_left"] > 0 for entry in steps)
    assert losses["plain"] == losses["measured"]


def test_zero_signal_groups_are_counted_where_trls_std_test_misses_them():
    """Eight rewards of 1.0 x 1.0 + 1.0 x 0.2 = 1.2 have a float32 std of ~1e-7: TRL's isclose(std, 0) says signal."""
    from collections import defaultdict

    import torch

    from recipe_cli.dynamic_sampling import with_signal_metric

    class Scored:
        reward_func_names = ["accuracy", "format", "divergence_k1"]
        reward_weights = torch.tensor([1.0, 0.2, -0.04])
        num_generations = 8
        model = torch.nn.Linear(1, 1)

        def __init__(self):
            self._metrics = {"train": defaultdict(list)}

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            same = torch.tensor([[1.0, 1.0, 0.3 + 0.01 * i] for i in range(8)])  # the penalty varies
            mixed = torch.tensor([[float(i % 2), 1.0, 0.3] for i in range(8)])
            return torch.cat([same, mixed])

    trainer = with_signal_metric(Scored)()
    rewards = trainer._calculate_rewards(None, None, None, None)
    totals = (rewards[:, :2] * torch.tensor([1.0, 0.2])).sum(1).view(-1, 8)
    assert not torch.isclose(totals[0].std(), torch.tensor(0.0))  # TRL would count the first group as signal
    assert trainer._metrics["train"]["frac_reward_zero_signal"] == [0.5]
