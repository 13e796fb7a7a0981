"""Training health: stop on a NaN/inf gradient, loss or weight before it is saved; warn when GRPO stops learning.

GRPO learns only from differences between the completions of one prompt. When every completion
of most groups gets the same reward (zero variance), when most completions hit the length limit,
or when a reward's mean never moves, the run burns GPU hours and learns nothing; these alarms
say so once per incident, on the console and in ``<stage folder>/health.log``.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from pathlib import Path

from recipe_cli.atomic import write_atomic
from recipe_cli.config import HealthSettings

log = logging.getLogger(__name__)

# logged steps in a row whose gradient norm was exactly 0 before the alarm (at most ``window_steps``): such a step
# changed no weight, which no healthy run does for long, so it is told well before the other alarms' window
ZERO_GRADIENT_LOGS = 3


def is_finite_number(value) -> bool:
    """Whether a logged value is a finite number (non-numbers are not judged).

    >>> [is_finite_number(v) for v in (1.5, float("nan"), float("inf"), "n/a")]
    [True, False, False, True]
    """
    return not isinstance(value, float) or math.isfinite(value)


def nonfinite_callback():
    """A TrainerCallback that stops training at the first NaN/inf gradient norm, loss or weight, saving nothing more.

    The gradient norm and loss are checked when logged. The logged loss alone would miss it:
    ``logging_nan_inf_filter`` (on by default) leaves NaN/inf losses out of the logged mean. The
    weights are checked at the end of a step that saves (so no checkpoint is written) and again
    once any checkpoint is written (``save_strategy: epoch`` or ``best`` decide to save only after
    the step ended): ``healthy`` is then False and the completion marker is not written, so a
    checkpoint of a diverged model is never complete. Such a checkpoint is deleted.
    """
    from transformers import TrainerCallback

    from recipe_cli.ranks import agree_max

    class StopOnNonFinite(TrainerCallback):
        def __init__(self):
            self.problem: str | None = None

        def _stop(self, control, problem: str):
            if self.problem is None:
                self.problem = problem
                log.error("%s: stopping without saving", problem)
            control.should_save = False
            control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if value is not None and not is_finite_number(value):
                    self._stop(control, f"{key} is {value} at step {state.global_step}")
            return control

        @property
        def healthy(self) -> bool:
            return self.problem is None

        def on_step_end(self, args, state, control, model=None, **kwargs):
            # every rank asks (the weights may be sharded), so every rank stops after the same step
            if control.should_save and model is not None and agree_max(int(not _weights_finite(model))):
                self._stop(control, f"the weights hold NaN/inf after step {state.global_step}")
            return control

        def on_save(self, args, state, control, model=None, **kwargs):
            if model is not None and self.problem is None and agree_max(int(not _weights_finite(model))):
                self._stop(control, f"the weights hold NaN/inf after step {state.global_step}")
            if self.problem is not None and state.is_world_process_zero:
                written = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                log.error("deleting %s: saved from non-finite weights", written)
                shutil.rmtree(written, ignore_errors=True)
            return control

    return StopOnNonFinite()


def _weights_finite(model) -> bool:
    """Whether this rank's trainable weights are finite (the caller agrees over ranks). Under DeepSpeed ZeRO-3 a
    parameter outside its forward is an empty placeholder; this rank's part of it is ``ds_tensor``."""
    import torch

    def held(p):
        part = getattr(p, "ds_tensor", None)
        return part if part is not None and p.numel() == 0 else p

    return all(bool(torch.isfinite(held(p)).all()) for p in model.parameters() if p.requires_grad)


class HealthWatch:
    """Counts, per alarm, how many consecutive training steps its condition has held; warns once per incident."""

    def __init__(self, settings: HealthSettings, log_file: Path | None = None):
        self.settings = settings
        self.log_file = log_file
        self.steps_held: dict[str, int] = {}
        self.warned: set[str] = set()
        self.last_value: dict[str, float] = {}
        self.last_step = 0
        self.incidents: list[str] = []

    def resume(self, step: int, history: list[dict]) -> None:
        """Go on from a resumed run's checkpoint at ``step``: replay its log (``history``), so an incident that
        goes on is neither warned again nor counted from zero, and drop the warnings of the steps after it from
        the log file (the run trains them again)."""
        for row in history:
            if "loss" in row and isinstance(row.get("step"), int) and row["step"] <= step:
                self.observe(row["step"], row, quiet=True)
        self.last_step = step
        if self.log_file is not None and self.log_file.is_file():
            lines = self.log_file.read_text().splitlines(keepends=True)
            kept = [line for line in lines if (warned_at(line) or 0) <= step]
            if len(kept) < len(lines):
                write_atomic(self.log_file, "".join(kept))

    def observe(self, step: int, logs: dict, quiet: bool = False) -> list[str]:
        """Take one training log (averaged over the steps since the last one); return the new warnings, which are
        also logged and written to the log file unless ``quiet`` (a replay of steps already watched)."""
        span = max(step - self.last_step, 1)
        self.last_step = step
        s = self.settings
        conditions = {}
        # recipe's own count (recipe_cli.dynamic_sampling); TRL's frac_reward_zero_std misses equal float32 totals
        zero_std = logs.get("frac_reward_zero_signal", logs.get("frac_reward_zero_std"))
        if zero_std is not None:
            conditions["zero_std"] = (
                zero_std >= s.zero_std_fraction,
                f"{zero_std:.0%} of groups had the same reward for every completion (no learning signal)",
                "raise temperature or num_generations, or use easier prompts / a graded reward",
            )
        clipped = logs.get("completions/clipped_ratio")
        if clipped is not None:
            conditions["truncated"] = (
                clipped >= s.truncated_fraction,
                f"{clipped:.0%} of completions reached max_completion_length (truncated)",
                "raise grpo.trainer.max_completion_length or ask for shorter reasoning in the prompt",
            )
        grad_norm = logs.get("grad_norm")
        if grad_norm is not None:
            conditions["zero_gradient"] = (
                grad_norm == 0,
                "the gradient was exactly 0 (the steps changed no weight)",
                _zero_gradient_fix(zero_std, clipped),
                min(s.window_steps, ZERO_GRADIENT_LOGS * span),
            )
        for key, value in logs.items():
            if key.startswith("rewards/") and key.endswith("/mean") and value is not None:
                name = key[len("rewards/") : -len("/mean")]
                same = key in self.last_value and abs(value - self.last_value[key]) < 1e-9
                self.last_value[key] = value
                conditions[f"constant:{name}"] = (
                    same,
                    f"the mean of reward '{name}' stayed at {value:g}",
                    "check that the reward can tell completions apart (its column, its parser)",
                )
        new = []
        for alarm, (holds, what, fix, *window) in conditions.items():
            if not holds:
                self.steps_held[alarm] = 0
                self.warned.discard(alarm)
                continue
            self.steps_held[alarm] = self.steps_held.get(alarm, 0) + span
            if self.steps_held[alarm] >= (window[0] if window else s.window_steps) and alarm not in self.warned:
                self.warned.add(alarm)
                message = f"grpo health, step {step}: {what} for {self.steps_held[alarm]} steps; {fix}"
                new.append(message)
        if quiet:
            return new
        for message in new:
            log.warning(message)
            self.incidents.append(message)
            if self.log_file is not None:
                with self.log_file.open("a") as handle:
                    handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {message}\n")
        return new


def _zero_gradient_fix(zero_std: float | None, clipped: float | None) -> str:
    """What to change when the gradient is 0, from the step's other logs.

    >>> _zero_gradient_fix(1.0, 0.0)[:40]
    'every group scored all its completions a'
    """
    if clipped is not None and clipped >= 1:
        return (
            "every completion reached max_completion_length, and mask_truncated_completions leaves truncated ones "
            "out of the loss: raise grpo.trainer.max_completion_length or turn mask_truncated_completions off"
        )
    if zero_std is not None and zero_std >= 1:
        return (
            "every group scored all its completions alike (zero advantage): raise grpo.trainer.temperature (near 0 "
            "a prompt's samples are all the same) or num_generations, or use a reward that tells them apart"
        )
    return "check the rewards, grpo.trainer.temperature and the loss settings (e.g. top_entropy_quantile)"


def warned_at(line: str) -> int | None:
    """The step of a warning in ``health.log`` (None for a line that is not one).

    >>> warned_at("2026-01-01T10:00:00+0000 grpo health, step 40: 90% of groups had the same reward ...")
    40
    """
    found = re.search(r"grpo health, step (\d+):", line)
    return int(found.group(1)) if found else None


def health_callback(settings: HealthSettings, log_file: Path | None = None):
    """A TrainerCallback feeding GRPO's training logs to a ``HealthWatch``."""
    from transformers import TrainerCallback

    class WatchHealth(TrainerCallback):
        def __init__(self):
            self.watch = HealthWatch(settings, log_file)

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:  # a resumed run goes on from its checkpoint's log
                self.watch.resume(state.global_step, state.log_history)
            self.watch.last_step = state.global_step
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:  # training logs, not eval/summary
                self.watch.observe(state.global_step, logs)
            return control

    return WatchHealth()
