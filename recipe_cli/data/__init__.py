"""Datasets for every stage: read through an adapter, then the chain of data steps, into TRL's rows.

Every adapter (``recipe_cli.data.gsm8k``, ``openthoughts``, ``columns``; generated problems from
``recipe_cli.synthetic``) turns its source into the same rows: ``question``, ``answer`` (the gold,
as the rewards and the eval read it), ``reasoning`` (a worked solution, when the source has one)
and ``final`` (what the SFT completion writes as its answer; the gold unless the source has a
written-out final solution). Rewards receive the gold as the ``answer`` column.
``recipe_cli.data.chain`` takes a stage's rows through its steps (duplicates, decontamination,
token lengths, pass rate, fraction, max_samples) for training, ``--dry-run`` and ``recipe data``.
"""

from __future__ import annotations

from recipe_cli.data.chain import PROMPT_FILLS_MAX_LENGTH, PreparedData, prepare_stage, write_stage_data
from recipe_cli.data.gsm8k import split_gsm8k_answer
from recipe_cli.data.openthoughts import split_openthoughts_response
from recipe_cli.data.prompts import build_prompt, count_prompt_tokens, prompt_rows, render_completion, row_prompt
from recipe_cli.data.sources import iter_examples, load_examples, load_raw

__all__ = [
    "PROMPT_FILLS_MAX_LENGTH",
    "PreparedData",
    "build_prompt",
    "count_prompt_tokens",
    "grpo_prompts",
    "iter_examples",
    "load_examples",
    "load_raw",
    "prepare_grpo",
    "prepare_sft",
    "prepare_stage",
    "prompt_rows",
    "render_completion",
    "row_prompt",
    "sft_examples",
    "split_gsm8k_answer",
    "split_openthoughts_response",
    "write_stage_data",
]


def prepare_sft(recipe, tokenizer, *, check: bool = True, model: str | None = None, sample: bool = False):
    """The SFT stage's examples as trained on: token ids and loss masks, through the chain, at most ``max_samples``.

    Each example is the prompt as generation sees it (masked) and the recipe's completion with
    the end-of-turn token (trained on), built by ``recipe_cli.chat.sft_token_ids``.
    """
    return prepare_stage(recipe, "sft", tokenizer, model=model, sample=sample, check=check)


def prepare_grpo(recipe, tokenizer, *, check: bool = True, model: str | None = None, sample: bool = False):
    """The GRPO stage's prompts (gold in ``answer``) through the chain (GRPO never truncates prompts itself)."""
    return prepare_stage(recipe, "grpo", tokenizer, model=model, sample=sample, check=check)


def sft_examples(recipe, tokenizer, model: str | None = None) -> list[dict]:
    """The SFT stage's examples as trained on (see ``prepare_sft``); the pass-rate filter samples from ``model``."""
    return prepare_sft(recipe, tokenizer, model=model, sample=model is not None).rows


def grpo_prompts(recipe, tokenizer, model: str | None = None) -> list[dict]:
    """The GRPO stage's prompts as trained on (see ``prepare_grpo``); the pass-rate filter samples from ``model``."""
    return prepare_grpo(recipe, tokenizer, model=model, sample=model is not None).rows
