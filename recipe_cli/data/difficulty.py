"""Difficulty filtering by pass rate: keep the prompts the stage's starting model solves neither always nor never.

``samples`` completions per prompt are drawn with eval's generation code (batched transformers
generation, or vLLM when it is installed on a GPU; ``recipe_cli.generation``) and scored by the
recipe's own ``accuracy`` reward with its parameters (mode, ``answer_after``, ``latex_timeout``,
``max_completion_len``), so a pass is what GRPO pays 1.0 for: under ``mode: strict`` a sample
that reaches GRPO's completion budget (or the sampling budget, when that is smaller) is cut off
and fails. open-r1's DAPO filtering keeps prompts solved 10-60% of the time; LIMO and s1 keep the
hard ones.

Pass counts are cached in ``runs/<name>/data/pass_rates/<key>.jsonl``, one line per prompt, the
key a hash of everything that decides a count (the model and its weight files, ``samples``,
temperature, top_p, max_new_tokens, seed, the accuracy reward's parameters, ``max_completion_len``
under ``mode: strict`` only); a line is keyed by
the rendered prompt and the gold. A rerun, a resume or ``recipe data`` followed by training samples nothing again, and
an interrupted filter keeps the chunks it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from recipe_cli.config import DifficultySettings, Recipe, grpo_max_completion_length

log = logging.getLogger(__name__)

CHUNK_PROMPTS = 256  # prompts sampled together; the chain stops asking once max_samples rows are kept


def model_identity(path: str, revision: str | None) -> dict:
    """What identifies the weights a path holds: a local folder by its weight files' names, sizes and times."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return {"model": path, "revision": revision}
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return {
        "model": str(folder.resolve()),
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def difficulty_max_new_tokens(recipe: Recipe, settings: DifficultySettings) -> int:
    """The completion budget of the pass-rate samples: the setting, else GRPO's ``max_completion_length``."""
    if settings.max_new_tokens is not None:
        return settings.max_new_tokens
    if recipe.grpo is not None:
        return grpo_max_completion_length(recipe.grpo.trainer) or 512
    return recipe.eval.max_new_tokens if recipe.eval is not None else 512


def pass_rate_reward_params(recipe: Recipe, max_new_tokens: int) -> dict:
    """The ``accuracy`` reward's parameters a sample is scored with: the recipe's, completed as GRPO completes them
    (``max_completion_len``: GRPO's budget), the cut-off length no larger than the sampling budget.

    >>> from recipe_cli.config import validate_recipe
    >>> recipe = validate_recipe({"name": "r", "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"},
    ...     "grpo": {"dataset": {"path": "openai/gsm8k"}, "trainer": {"max_completion_length": 256},
    ...              "rewards": [{"name": "accuracy", "params": {"mode": "strict", "answer_after": "</think>"}}]}})
    >>> pass_rate_reward_params(recipe, 512)
    {'max_completion_len': 256, 'mode': 'strict', 'answer_after': '</think>'}
    >>> pass_rate_reward_params(recipe, 128)["max_completion_len"]
    128
    """
    from recipe_cli.evaluate import accuracy_params
    from recipe_cli.rewards import with_run_values

    budget = grpo_max_completion_length(recipe.grpo.trainer) if recipe.grpo is not None else None
    params = with_run_values("accuracy", accuracy_params(recipe), {"max_completion_len": budget})
    cut_at = params.get("max_completion_len")
    params["max_completion_len"] = max_new_tokens if cut_at is None else min(cut_at, max_new_tokens)
    return params


def scoring_key(params: dict) -> dict:
    """The accuracy parameters that decide a pass: ``max_completion_len`` only under ``mode: strict``, the one
    mode that fails a cut-off sample, so changing GRPO's budget keeps a flexible cache.

    >>> scoring_key({"max_completion_len": 256, "answer_after": "</think>"})
    {'answer_after': '</think>'}
    >>> scoring_key({"max_completion_len": 256, "mode": "strict"})
    {'max_completion_len': 256, 'mode': 'strict'}
    """
    if params.get("mode", "flexible") == "strict":
        return params
    return {key: value for key, value in params.items() if key != "max_completion_len"}


def prompt_key(prompt: str, gold: str) -> str:
    """A cache line's key: the rendered prompt and the gold.

    >>> prompt_key("p", "1") == prompt_key("p", "1") != prompt_key("p", "2")
    True
    """
    return hashlib.sha256(json.dumps([prompt, gold]).encode()).hexdigest()[:24]


class PassRates:
    """Pass counts of one model and sampling setup: read from the cache, sampled for the prompts it lacks."""

    def __init__(self, recipe: Recipe, settings: DifficultySettings, model: str | None, folder: Path, writes: bool):
        from recipe_cli.rewards import get_reward

        self.recipe, self.settings, self.model, self.writes = recipe, settings, model, writes
        self.max_new_tokens = difficulty_max_new_tokens(recipe, settings)
        self.reward_params = pass_rate_reward_params(recipe, self.max_new_tokens)
        self.reward = get_reward("accuracy", **self.reward_params)
        self.setup = {
            **(model_identity(model, recipe.model.revision) if model else {"model": None}),
            "samples": settings.samples,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": recipe.seed,
            "accuracy": scoring_key(self.reward_params),
        }
        key = hashlib.sha256(json.dumps(self.setup, sort_keys=True).encode()).hexdigest()[:16]
        self.path = folder / f"{key}.jsonl"
        self.counts: dict[str, int] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                entry = json.loads(line)
                self.counts[entry["key"]] = entry["correct"]
        self.cached = len(self.counts)
        self.sampled = 0
        self.seconds = 0.0
        self._engine = None

    def lookup(self, keys: list[str]) -> list[int | None]:
        return [self.counts.get(key) for key in keys]

    def sample(self, prompts: list[str], golds: list[str], keys: list[str]) -> list[int]:
        """Pass counts of prompts not in the cache: ``samples`` completions each, scored; appended to the cache."""
        from recipe_cli.generation import Decoding

        engine = self._load_engine()
        decoding = Decoding(
            self.max_new_tokens,
            self.settings.samples,
            self.settings.temperature,
            self.settings.top_p,
            seed=self.recipe.seed,
        )
        generation = engine.generate(prompts, decoding, self.settings.batch_size)
        self.seconds += generation.seconds
        samples = self.settings.samples
        scores = self.reward(  # one batch, as GRPO scores a generation batch
            completions=[c for completions in generation.completions for c in completions],
            answer=[gold for gold in golds for _ in range(samples)],
            completion_ids=[range(n) for lengths in generation.tokens for n in lengths],  # read for their lengths
        )
        counts = [sum(1 for s in scores[i * samples : (i + 1) * samples] if s == 1.0) for i in range(len(prompts))]
        self.counts.update(zip(keys, counts, strict=True))
        self.sampled += len(prompts)
        if self.writes:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.writelines(
                    json.dumps({"key": k, "correct": c}) + "\n" for k, c in zip(keys, counts, strict=True)
                )
        return counts

    def _load_engine(self):
        if self._engine is None:
            from recipe_cli.generation import load_engine

            self._engine = load_engine(self.settings.backend, self.model, self.recipe)
            log.info(
                "difficulty: sampling %d completions per prompt from %s (%s)",
                self.settings.samples,
                self.model,
                self._engine.name,
            )
        return self._engine

    def close(self) -> None:
        """Let the sampling model go before training loads its own."""
        from recipe_cli.models import free_model_memory

        if self._engine is not None:
            self._engine.close()
        self._engine = None
        free_model_memory()


def pass_rate_histogram(counts: list[int], samples: int) -> dict[str, int]:
    """How many prompts were solved 0, 1, ..., ``samples`` times out of ``samples``.

    >>> pass_rate_histogram([0, 2, 2, 4], 4)
    {'0/4': 1, '1/4': 0, '2/4': 2, '3/4': 0, '4/4': 1}
    """
    return {f"{c}/{samples}": sum(1 for n in counts if n == c) for c in range(samples + 1)}
