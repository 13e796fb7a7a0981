"""DAPO's dynamic sampling for TRL's GRPOTrainer: groups that carry no learning signal are replaced.

A group whose completions all got the same total reward has zero advantage for every completion
(GRPO's advantage is the reward minus the group mean), so it adds nothing to the policy gradient
while it still costs a generation and a backward pass, and it dilutes the step (DAPO, Yu et al.
2025, section 3.2; verl's ``filter_groups``, OpenRLHF's and NeMo-RL's dynamic sampling). TRL 1.16
only logs the share of such groups (``frac_reward_zero_std``). A divergence placed in the reward
is not counted: it differs a little for every sequence, and a group only it separates teaches no
task (``task_zero_signal_groups``).

``with_dynamic_sampling(GRPOTrainer)`` returns a subclass whose ``_generate_and_score_completions``
generates and scores the batch as TRL does, then, while zero-signal groups remain and at most
``max_rounds`` times, generates and scores fresh prompts and swaps their informative groups in.
The class is a mixin over whatever trainer class it is given, so it composes with other subclasses
that override other methods (``with_dynamic_sampling(MyGRPOTrainer)``).

How it fits TRL's machinery:

- Buffering. TRL calls ``_generate_and_score_completions`` once per generation batch (``per device
  batch x steps_per_generation`` rows), then shuffles the rows and serves them over
  ``steps_per_generation`` micro-steps, ``num_iterations`` times. The replacement happens inside that
  call, so the buffer holds only the final groups, and every micro-step and every iteration trains
  on them; the advantages of a fresh group are computed within its own round, as TRL computes them.
- Fresh prompts are drawn uniformly from the training set with a generator seeded by the run's seed,
  the process index and TRL's micro-step counter (which ``recipe_cli.grpo.align_generation_cycle``
  restores on resume), not from TRL's sampler: the sampler's order, and so what a resumed run
  sees, stays as without dynamic sampling. A fresh prompt may be one the epoch also serves later.
- Several processes. Each rank generates its own slice of the generation batch, and TRL gathers the
  rewards of every rank to compute advantages, so every rank must generate the same number of rows in
  each call. Each round therefore generates, on every rank, as many groups as the rank with the largest
  shortfall still needs; the gathered rewards tell every rank every rank's shortfall, so all ranks run
  the same rounds without extra communication. Each rank's share must hold whole groups (validated).
- Metrics. TRL's reward metrics and ``frac_reward_zero_std`` keep describing the batch as first drawn
  (what the policy produced; the health alarms read it); the extra rounds' entries are removed. Added:
  ``dynamic_sampling/zero_signal_fraction`` (the share of zero-signal groups before replacement, over
  all ranks), ``dynamic_sampling/replaced_fraction`` (the share replaced), ``dynamic_sampling/rounds`` and
  ``dynamic_sampling/zero_signal_left`` (the share left after the last round). The completions table
  (``log_completions``) also lists the extra rounds' completions. ``max_rounds: 0`` measures and
  replaces nothing: training is then exactly TRL's.
- TRL's ``frac_reward_zero_std`` tests the group's reward std with ``torch.isclose(std, 0)`` (absolute
  tolerance 1e-8), and float32 gives equal rewards that are not exact binary fractions a std of about
  1e-7 (eight rewards of 1.2, accuracy 1 + format 0.2: 1.3e-7), so it misses such groups: on the demo it
  logs 0.0 at every step while a quarter of the groups are zero-signal. Here rewards are compared with
  ``torch.isclose(max, min)`` (relative tolerance 1e-5).
"""

from __future__ import annotations

import random

from recipe_cli.config import DIVERGENCE_REWARD_PREFIX
from recipe_cli.errors import RecipeError

# Output tensors of TRL 1.16's _generate_and_score_completions: (padding side, pad value; None = pad id)
PADDED = {
    "prompt_ids": ("left", None),
    "prompt_mask": ("left", 0),
    "completion_ids": ("right", None),
    "completion_mask": ("right", 0),
    "old_per_token_logps": ("right", 0.0),
    "ref_per_token_logps": ("right", 0.0),
    "sampling_per_token_logps": ("right", 0.0),
    "tool_mask": ("right", 1),
}


def zero_signal_groups(rewards_per_func, weights, num_generations: int) -> list[bool]:
    """Per group of ``num_generations`` consecutive completions: whether all got the same total reward.

    Totals are weighted sums over the reward functions (a function's None is skipped, as TRL
    does); a completion no function scored is left out, and a group with fewer than two scored
    completions has no signal either.

    >>> import torch
    >>> rewards = torch.tensor([[1.0, 0.2], [1.0, 0.2], [0.0, 0.2], [1.0, 0.2]])
    >>> zero_signal_groups(rewards, torch.tensor([1.0, 1.0]), 2)
    [True, False]
    """
    import torch

    totals = (rewards_per_func * weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
    totals[torch.isnan(rewards_per_func).all(dim=1)] = float("nan")
    flags = []
    for group in totals.view(-1, num_generations):
        scored = group[~torch.isnan(group)]
        flags.append(bool(scored.numel() < 2 or torch.isclose(scored.max(), scored.min())))
    return flags


def task_zero_signal_groups(trainer, rewards) -> list[bool]:
    """``zero_signal_groups`` over the task reward: every reward column but a divergence placed in the reward.

    A divergence in the reward (``divergence_<name>``, ``grpo.divergence: {in: reward}``) differs a
    little for every sequence, so counting it would leave no group zero-signal. The one definition
    both the ``frac_reward_zero_signal`` metric and dynamic sampling use.

    >>> import torch
    >>> from types import SimpleNamespace
    >>> trainer = SimpleNamespace(reward_func_names=["accuracy", "divergence_k3"], num_generations=2,
    ...     reward_weights=torch.tensor([1.0, 1.0]))
    >>> task_zero_signal_groups(trainer, torch.tensor([[1.0, -0.01], [1.0, -0.02], [0.0, -0.01], [1.0, -0.01]]))
    [True, False]
    """
    task = [i for i, name in enumerate(trainer.reward_func_names) if not name.startswith(DIVERGENCE_REWARD_PREFIX)]
    return zero_signal_groups(rewards[:, task], trainer.reward_weights[task], trainer.num_generations)


class SignalMetricMixin:
    """Logs ``frac_reward_zero_signal``: the share of groups whose completions all got the same task reward.

    TRL's ``frac_reward_zero_std`` misses such groups whenever equal float32 totals have a std
    above 1e-8 (eight rewards of 1.2 give 1.3e-7), so on the demo it reads 0 while about 30% of
    the groups teach nothing; the health alarm and the report read this metric instead. A
    divergence placed in the reward (``divergence_<name>``) is left out: it is not a task signal.
    """

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        flags = task_zero_signal_groups(self, rewards)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["frac_reward_zero_signal"].append(sum(flags) / len(flags) if flags else 0.0)
        return rewards


def with_signal_metric(trainer_class: type) -> type:
    """``trainer_class`` (GRPOTrainer or a subclass) logging ``frac_reward_zero_signal``."""
    return type(f"Signal{trainer_class.__name__}", (SignalMetricMixin, trainer_class), {})


class DynamicSamplingMixin:
    """Replaces zero-signal groups with fresh prompts' groups; see the module docstring."""

    dynamic_max_rounds = 4

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = rewards  # every rank's, gathered by TRL: the same on every rank
        return rewards

    def _zero_signal(self) -> list[bool]:
        return task_zero_signal_groups(self, self._gathered_rewards)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return output
        size = self.num_generations
        groups = len(inputs) // size
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        zero = self._zero_signal()
        shortfall = [sum(zero[r * groups : (r + 1) * groups]) for r in range(world)]
        first_zero = sum(shortfall)
        kept = [(output, g) for g in range(groups) if not zero[rank * groups + g]]
        spare = [(output, g) for g in range(groups) if zero[rank * groups + g]]
        metrics = self._metrics["train"]
        lengths = {key: len(values) for key, values in metrics.items()}
        rounds = 0
        while max(shortfall) > 0 and rounds < self.dynamic_max_rounds:
            rounds += 1
            need = max(shortfall)
            fresh = super()._generate_and_score_completions(self._fresh_inputs(need, rounds))
            zero = self._zero_signal()
            for r in range(world):
                shortfall[r] = max(0, shortfall[r] - sum(not flag for flag in zero[r * need : (r + 1) * need]))
            kept += [(fresh, g) for g in range(need) if not zero[rank * need + g]][: groups - len(kept)]
        for key in list(metrics):  # TRL's metrics keep describing the batch as first drawn
            if key not in lengths:
                del metrics[key]
            else:
                del metrics[key][lengths[key] :]
        total = world * groups
        metrics["dynamic_sampling/zero_signal_fraction"].append(first_zero / total)
        metrics["dynamic_sampling/replaced_fraction"].append((first_zero - sum(shortfall)) / total)
        metrics["dynamic_sampling/zero_signal_left"].append(sum(shortfall) / total)
        metrics["dynamic_sampling/rounds"].append(float(rounds))
        if rounds == 0:
            return output
        kept += spare[: groups - len(kept)]  # the limit was reached: zero-signal groups fill the rest
        return self._merge_groups(kept)

    def _fresh_inputs(self, groups: int, round_number: int) -> list[dict]:
        """``groups`` prompts drawn from the training set, each repeated for its group as TRL's sampler does."""
        rng = random.Random(f"{self.args.seed}-{self.accelerator.process_index}-{self._step}-{round_number}")
        rows = [dict(self.train_dataset[rng.randrange(len(self.train_dataset))]) for _ in range(groups)]
        return [row for row in rows for _ in range(self.num_generations)]

    def _merge_groups(self, picked: list[tuple[dict, int]]) -> dict:
        """One output dict from groups of several rounds' outputs: tensors re-padded, the loss-token count redone."""
        import torch
        import torch.nn.functional as F

        size = self.num_generations
        first = picked[0][0]
        unknown = set(first) - set(PADDED) - {"advantages", "num_items_in_batch", "importance_sampling_ratio"}
        if unknown:
            raise RecipeError(
                f"grpo.dynamic_sampling: TRL returned {sorted(unknown)} (multimodal or tool inputs), which dynamic "
                "sampling cannot regroup; set grpo.dynamic_sampling.enabled: false"
            )
        merged = {}
        for key in first:
            if key == "num_items_in_batch":
                continue
            parts = [out[key][g * size : (g + 1) * size] for out, g in picked]
            side, value = PADDED.get(key, ("right", 1.0))
            if key == "importance_sampling_ratio" and parts[0].size(1) == 1:  # sequence-level: one ratio per row
                merged[key] = torch.cat(parts)
                continue
            if parts[0].dim() < 2:
                merged[key] = torch.cat(parts)
                continue
            value = self._tokenizer.pad_token_id if value is None else value
            width = max(part.size(1) for part in parts)
            padded = []
            for part in parts:
                missing = width - part.size(1)
                padded.append(F.pad(part, (missing, 0) if side == "left" else (0, missing), value=value))
            merged[key] = torch.cat(padded)
        loss_mask = merged["completion_mask"]
        if "tool_mask" in merged:
            loss_mask = loss_mask * merged["tool_mask"]
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        return merged


def with_dynamic_sampling(trainer_class: type, max_rounds: int) -> type:
    """``trainer_class`` (GRPOTrainer or a subclass) with dynamic sampling, at most ``max_rounds`` extra rounds."""
    return type(
        f"DynamicSampling{trainer_class.__name__}",
        (DynamicSamplingMixin, trainer_class),
        {"dynamic_max_rounds": max_rounds, "__doc__": DynamicSamplingMixin.__doc__},
    )
