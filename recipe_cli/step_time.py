"""Where each GRPO step's time goes: generation, the reference and old log-probabilities, reward scoring, the
policy's forward and backward passes, and recipe's own callbacks.

TRL logs one number per optimizer step, ``step_time``: the seconds of its ``training_step`` calls
(generation and scoring included, the optimizer step and the callbacks not). ``with_step_times``
splits it into phases logged beside it as ``step_time/<phase>`` (seconds per optimizer step),
adds ``step_time/callbacks`` (recipe's callbacks, outside TRL's number) and
``completions/tokens_per_second`` (completion tokens over generation seconds). On a GPU each
boundary synchronises the device, so a phase's seconds are its own and not its queued kernels'.
"""

from __future__ import annotations

import time
from collections import defaultdict
from functools import wraps

PHASES = ("generation", "logprobs", "rewards", "scoring", "policy", "callbacks")
OUTSIDE_TRL_STEP_TIME = ("callbacks",)  # phases TRL's `step_time` does not count


def _now() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


class StepTimeMixin:
    """A GRPOTrainer mixin that times the phases of every optimizer step (see the module docstring).

    ``logprobs`` is every forward pass without gradients (the reference's, the old policy's, and
    the policy's that a divergence in the reward needs, which runs inside the rewards); ``scoring``
    is what ``_generate_and_score_completions`` spends besides generating, the log-probabilities
    and the rewards (tokenising, gathering across ranks, advantages); ``policy`` is the rest of
    ``training_step``: the loss's forward and backward passes.
    """

    def _phase_clock(self) -> dict:
        if not hasattr(self, "_step_phases"):
            self._step_phases = defaultdict(float)
            self._scoring_depth = 0
            self._generated_tokens = 0
        return self._step_phases

    def add_phase_time(self, phase: str, seconds: float) -> None:
        self._phase_clock()[phase] += seconds

    def training_step(self, model, inputs, num_items_in_batch):
        phases = self._phase_clock()
        steps_logged = len(self._metrics["train"]["step_time"])
        scoring_before = phases["scoring_total"]
        started = _now()
        output = super().training_step(model, inputs, num_items_in_batch)
        phases["policy"] += _now() - started - (phases["scoring_total"] - scoring_before)
        if len(self._metrics["train"]["step_time"]) > steps_logged:  # TRL closed an optimizer step
            self._flush_phases()
        return output

    def _flush_phases(self) -> None:
        phases = self._phase_clock()
        inside = phases.pop("scoring_total", 0.0)
        phases["scoring"] = max(inside - phases["generation"] - phases["logprobs"] - phases["rewards"], 0.0)
        metrics = self._metrics["train"]
        for phase in PHASES:
            metrics[f"step_time/{phase}"].append(phases[phase])
        if phases["generation"] > 0:
            metrics["completions/tokens_per_second"].append(self._generated_tokens / phases["generation"])
        phases.clear()
        self._generated_tokens = 0

    def _generate_and_score_completions(self, *args, **kwargs):
        phases = self._phase_clock()
        self._scoring_depth += 1
        started = _now()
        try:
            return super()._generate_and_score_completions(*args, **kwargs)
        finally:
            self._scoring_depth -= 1
            if self._scoring_depth == 0:  # rounds nested in one call (dynamic sampling) count once
                phases["scoring_total"] += _now() - started

    def _generate(self, prompts):
        started = _now()
        result = super()._generate(prompts)
        self.add_phase_time("generation", _now() - started)
        self._generated_tokens += sum(len(ids) for ids in result[1])  # the completion ids
        return result

    def _calculate_rewards(self, *args, **kwargs):
        phases = self._phase_clock()
        logprobs_before = phases["logprobs"]
        started = _now()
        result = super()._calculate_rewards(*args, **kwargs)
        # a forward pass a reward makes (the divergence in the reward) is counted under logprobs, not twice
        self.add_phase_time("rewards", _now() - started - (phases["logprobs"] - logprobs_before))
        return result

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        self._phase_clock()
        if not self._scoring_depth:  # the policy's own pass in the loss: part of `policy`
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)
        started = _now()
        result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        self.add_phase_time("logprobs", _now() - started)
        return result


def with_step_times(trainer_class: type) -> type:
    """``trainer_class`` (GRPOTrainer or a subclass) with its step time split into phases."""
    return type(f"Timed{trainer_class.__name__}", (StepTimeMixin, trainer_class), {"__doc__": StepTimeMixin.__doc__})


def time_callbacks(trainer, callbacks: list) -> None:
    """Count the time ``callbacks`` (recipe's) spend in their events as the ``callbacks`` phase of the step."""
    if not isinstance(trainer, StepTimeMixin):
        return
    for callback in callbacks:
        for name, method in vars(type(callback)).items():
            if name.startswith("on_") and callable(method):
                setattr(callback, name, _timed(getattr(callback, name), trainer))


def _timed(event, trainer):
    @wraps(event)
    def timed(*args, **kwargs):
        started = _now()
        try:
            return event(*args, **kwargs)
        finally:
            trainer.add_phase_time("callbacks", _now() - started)

    return timed
