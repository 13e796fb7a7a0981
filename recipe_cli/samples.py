"""A few GRPO completions kept in the run folder at every logging step, with their rewards.

TRL shows completions only with ``log_completions`` (printed, or sent to a tracker). recipe keeps
``SAMPLE_GROUPS`` prompts x ``SAMPLES_PER_GROUP`` completions of the latest generation batch at
each logging step in ``runs/<name>/grpo/samples.jsonl``, written by the main process only, so
``recipe report`` can show what the model wrote at the start, middle and end of GRPO and what
each reward paid for it.

One line per completion::

    {"step": 10, "group": 0, "prompt": "...", "completion": "...", "rewards": {"accuracy": 1.0, "format": 0.0},
     "reward": 1.0, "advantage": 0.42}

``reward`` is the weighted sum GRPO trains on; a reward that returned None is null and left out of it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recipe_cli.atomic import write_atomic

log = logging.getLogger(__name__)

SAMPLE_GROUPS = 2  # prompts per logging step (the first ones of the batch: the sampler shuffled them)
SAMPLES_PER_GROUP = 2  # completions kept per prompt, as generated (not the best or worst)
MAX_CHARS = 2000  # of a stored prompt or completion; a 1 000-step run logging every step stays under ~10 MB
SAMPLES_FILE = "samples.jsonl"


def text_of(value: Any) -> str:
    """The text of a prompt or completion as TRL hands it over: a string, or chat messages (the last one's content).

    >>> text_of("7 + 5 = 12")
    '7 + 5 = 12'
    >>> text_of([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "7 + 5?"}])
    '7 + 5?'
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and isinstance(value[-1], dict):
        content = value[-1].get("content", "")
        if isinstance(content, list):  # multimodal parts: keep the text ones
            return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    return str(value)


def shorten(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out.

    >>> shorten("abcdef", 4)
    'abcd… [2 more characters]'
    >>> shorten("abc", 4)
    'abc'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def pick_rows(rows: int, group_size: int, groups: int = SAMPLE_GROUPS, per_group: int = SAMPLES_PER_GROUP) -> list:
    """Positions in a generation batch of ``rows`` completions (consecutive groups of ``group_size``) to keep.

    >>> pick_rows(16, 4)
    [(0, 0), (0, 1), (1, 4), (1, 5)]
    >>> pick_rows(4, 4)  # one group only
    [(0, 0), (0, 1)]
    """
    picked = []
    for group in range(min(groups, rows // max(group_size, 1))):
        start = group * group_size
        picked += [(group, start + i) for i in range(min(per_group, group_size))]
    return picked


def _number(value: Any) -> float | None:
    """A reward as JSON keeps it: NaN (a reward that returned None) becomes None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sample_records(logs: dict, step: int, group_size: int, weights: dict[str, float]) -> list[dict]:
    """The records to keep from TRL's log of the latest generation batch (``GRPOTrainer._logs``).

    >>> logs = {"prompt": ["2+2?"] * 2, "completion": ["4", "5"], "rewards": {"accuracy": [1.0, 0.0]},
    ...         "advantages": [0.7, -0.7]}
    >>> [(r["completion"], r["reward"], r["advantage"]) for r in sample_records(logs, 3, 2, {"accuracy": 1.0})]
    [('4', 1.0, 0.7), ('5', 0.0, -0.7)]
    """
    prompts, completions = list(logs["prompt"]), list(logs["completion"])
    rewards = {name: list(values) for name, values in logs["rewards"].items()}
    advantages = list(logs.get("advantages", []))
    records = []
    for group, row in pick_rows(len(completions), group_size):
        scores = {name: _number(values[row]) if row < len(values) else None for name, values in rewards.items()}
        paid = [weights.get(name, 1.0) * score for name, score in scores.items() if score is not None]
        records.append(
            {
                "step": step,
                "group": group,
                "prompt": shorten(text_of(prompts[row])),
                "completion": shorten(text_of(completions[row])),
                "rewards": scores,
                "reward": sum(paid) if paid else None,
                "advantage": _number(advantages[row]) if row < len(advantages) else None,
            }
        )
    return records


def read_samples(path: Path) -> list[dict]:
    """The records of a samples file; a line cut off by a crash is skipped, also when cut inside a character."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def keep_samples_until(path: Path, step: int) -> None:
    """Drop the records after ``step``: a resumed run logs those steps again."""
    if not path.is_file():
        return
    kept = [record for record in read_samples(path) if record.get("step", 0) <= step]
    write_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in kept))


def samples_callback(trainer, path: Path):
    """A TrainerCallback that appends a few completions of ``trainer``'s latest generation batch to ``path``.

    It reads ``GRPOTrainer._logs``, which TRL fills at every generation whatever ``log_completions``
    says (gathered from every rank); a TRL without it leaves the file empty and says so once.
    """
    from transformers import TrainerCallback

    class KeepSamples(TrainerCallback):
        def __init__(self):
            self.last_step = 0
            self.warned = False

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                keep_samples_until(path, state.global_step)
            self.last_step = state.global_step  # a resumed run has its samples up to here
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            # training logs and the final summary (which carries the metrics of steps logged since); not evals
            training = logs and ("loss" in logs or "train_runtime" in logs)
            if not state.is_world_process_zero or not training or state.global_step == self.last_step:
                return control
            trainer_logs = getattr(trainer, "_logs", None)
            if not isinstance(trainer_logs, dict) or not {"prompt", "completion", "rewards"} <= trainer_logs.keys():
                if not self.warned:
                    log.warning("this TRL keeps no log of completions (GRPOTrainer._logs); %s stays empty", path)
                    self.warned = True
                return control
            names = list(getattr(trainer, "reward_func_names", []))
            weights = getattr(trainer, "reward_weights", None)
            weights = dict(zip(names, weights.tolist(), strict=False)) if weights is not None else {}
            records = sample_records(trainer_logs, state.global_step, trainer.num_generations, weights)
            if records:
                with path.open("a") as handle:
                    handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
                self.last_step = state.global_step
            return control

    return KeepSamples()
