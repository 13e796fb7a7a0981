"""Datasets for every stage: load, normalise through an adapter, and build TRL's conversational rows.

Every adapter turns its source into the same rows: ``question``, ``answer`` (the gold, as the
rewards and the eval read it), ``reasoning`` (a worked solution, when the source has one) and
``final`` (what the SFT completion writes as its answer; the gold unless the source has a
written-out final solution). Rewards receive the gold as the ``answer`` column.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from recipe_cli.answers import final_boxed
from recipe_cli.config import LOCAL_DATA_SUFFIXES, DatasetSettings, PromptSettings, Recipe, is_local_path
from recipe_cli.errors import RecipeError
from recipe_cli.synthetic import generate_problems

log = logging.getLogger(__name__)

GSM8K_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>
THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.DOTALL)
SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)<\|end_of_solution\|>", re.DOTALL)
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def split_gsm8k_answer(text: str) -> tuple[str, str]:
    """GSM8K's answer field as ``(reasoning, gold)``; the gold is the number after ``####``, commas removed.

    Same rule as openai/grade-school-math (dataset.py): the final answer follows ``####``.

    >>> split_gsm8k_answer("She has 2 + 3 = <<2+3=5>>5 apples.\\n#### 1,005")
    ('She has 2 + 3 = 5 apples.', '1005')
    """
    if "####" not in text:
        raise ValueError("no '####' in the answer")
    reasoning, gold = text.rsplit("####", 1)
    return GSM8K_CALCULATOR.sub("", reasoning).strip(), gold.strip().replace(",", "")


def split_openthoughts_response(text: str) -> tuple[str, str] | None:
    """An OpenThoughts response as ``(reasoning trace, final solution)``, or None when it is not in that form."""
    thought, solution = THOUGHT.search(text), SOLUTION.search(text)
    if not thought or not solution:
        return None
    return thought.group(1).strip(), solution.group(1).strip()


def _assistant_turn(row: dict) -> str | None:
    """The R1 generation of an OpenThoughts row: the last assistant turn of ``conversations``.

    In open-r1/OpenThoughts-114k-math, ``messages`` holds NuminaMath's reference solution, not
    R1's trace, so it is only a fallback for copies that keep the trace there.
    """
    for message in reversed(row.get("conversations") or []):
        if message.get("from") in ("assistant", "gpt"):
            return message.get("value")
    for message in reversed(row.get("messages") or []):
        if message.get("role") == "assistant":
            return message.get("content")
    return None


def load_raw(settings: DatasetSettings):
    """The source rows as a ``datasets.Dataset`` (Hub id, local folder, or local JSON/JSONL/Parquet/CSV file)."""
    import datasets

    path = settings.path
    try:
        if is_local_path(path) and Path(path).is_file():
            builder = _BUILDERS[Path(path).suffix] if Path(path).suffix in _BUILDERS else None
            if builder is None:
                raise RecipeError(f"dataset '{path}': use a {'/'.join(LOCAL_DATA_SUFFIXES)} file")
            if Path(path).stat().st_size == 0:  # datasets' JSON builder fails on it with a bare StopIteration
                raise RecipeError(f"dataset '{path}' is an empty file; point `path` at a file with rows")
            return datasets.load_dataset(builder, data_files={settings.split: path}, split=settings.split)
        return datasets.load_dataset(path, settings.config, split=settings.split)
    except RecipeError:
        raise
    except ValueError as error:
        if "split" in str(error).lower():
            raise RecipeError(f"dataset '{path}' has no split '{settings.split}': {error}") from error
        raise RecipeError(f"dataset '{path}' could not be read: {error}") from error
    except (FileNotFoundError, ConnectionError, OSError) as error:
        raise RecipeError(
            f"dataset '{path}' could not be loaded ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "check the id and your network, or point `path` at a local file"
        ) from error
    except Exception as error:
        if type(error).__name__ in ("DatasetNotFoundError", "DataFilesNotFoundError", "HfHubHTTPError"):
            raise RecipeError(f"dataset '{path}' could not be loaded: {str(error).splitlines()[0]}") from error
        raise


def _require_columns(raw, needed: dict[str, str], path: str) -> None:
    missing = [f"'{column}' (for {role})" for role, column in needed.items() if column not in raw.column_names]
    if missing:
        raise RecipeError(
            f"dataset '{path}' has no column {', '.join(missing)}; its columns are {raw.column_names}; "
            "map them with `columns: {question: ..., answer: ...}`"
        )


def _gsm8k_rows(raw, settings: DatasetSettings) -> list[dict]:
    columns = {"question": "question", "answer": "answer", **settings.columns}
    _require_columns(raw, columns, settings.path)
    rows = []
    for index, row in enumerate(raw):
        try:
            reasoning, gold = split_gsm8k_answer(row[columns["answer"]])
        except ValueError:
            raise RecipeError(
                f"dataset '{settings.path}' row {index}: the answer has no '#### <number>'; "
                "is this GSM8K? use `adapter: columns` for other datasets"
            ) from None
        rows.append({"question": row[columns["question"]], "answer": gold, "reasoning": reasoning, "final": gold})
    return rows


def _openthoughts_rows(raw, settings: DatasetSettings) -> list[dict]:
    columns = {"question": "problem", **settings.columns}
    _require_columns(raw, {"question": columns["question"]}, settings.path)
    if "messages" not in raw.column_names and "conversations" not in raw.column_names:
        raise RecipeError(
            f"dataset '{settings.path}' has neither 'messages' nor 'conversations'; "
            "the openthoughts adapter reads the reasoning trace from one of them"
        )
    rows, skipped = [], 0
    for row in raw:
        if settings.only_correct and row.get("correct") is False:
            skipped += 1
            continue
        response = _assistant_turn(row)
        parts = split_openthoughts_response(response or "")
        if parts is None:
            skipped += 1
            continue
        reasoning, solution = parts
        gold = final_boxed(row.get("solution") or "") or final_boxed(solution)  # \boxed{1}, \boxed{2} is one answer
        if gold is None:
            skipped += 1
            continue
        rows.append({"question": row[columns["question"]], "answer": gold, "reasoning": reasoning, "final": solution})
    if skipped:
        log.info("openthoughts: skipped %d rows (incorrect, no thought/solution markers, or no boxed answer)", skipped)
    return rows


def _column_rows(raw, settings: DatasetSettings) -> list[dict]:
    columns = {"question": "question", "answer": "answer", **settings.columns}
    if "reasoning" not in columns and "reasoning" in raw.column_names:
        columns["reasoning"] = "reasoning"
    _require_columns(raw, columns, settings.path)
    return [
        {
            "question": str(row[columns["question"]]),
            "answer": str(row[columns["answer"]]),
            "reasoning": str(row[columns["reasoning"]]) if "reasoning" in columns else None,
            "final": str(row[columns["answer"]]),
        }
        for row in raw
    ]


def load_examples(settings: DatasetSettings, seed: int) -> list[dict]:
    """The normalised rows of a dataset section, at most ``max_samples`` of them."""
    if settings.adapter == "arithmetic":
        return generate_problems(
            settings.split, settings.max_samples, seed, teacher_error_rate=settings.teacher_error_rate
        )
    raw = load_raw(settings)
    if settings.max_samples is not None and settings.adapter != "openthoughts":
        raw = raw.select(range(min(settings.max_samples, len(raw))))
    adapt = {"gsm8k": _gsm8k_rows, "openthoughts": _openthoughts_rows, "columns": _column_rows}[settings.adapter]
    rows = adapt(raw, settings)
    if settings.max_samples is not None:
        rows = rows[: settings.max_samples]
    if not rows:
        raise RecipeError(f"dataset '{settings.path}' (split {settings.split}) has no usable rows")
    return rows


def build_messages(question: str, prompt: PromptSettings) -> list[dict]:
    """The conversation shown to the model: the system message (if any), then the user's question.

    >>> build_messages("1+1?", PromptSettings(system="Be brief.", user="Q: {question}"))
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Q: 1+1?'}]
    """
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return messages + [{"role": "user", "content": prompt.user.format(question=question)}]


def render_completion(row: dict, template: str) -> str:
    """The SFT target for a row, written with the recipe's completion template."""
    if "{reasoning}" in template and not row.get("reasoning"):
        raise RecipeError(
            "sft: a row has no reasoning but the completion template uses {reasoning}; "
            "map `columns.reasoning` or drop {reasoning} from `sft.completion`"
        )
    return template.format(reasoning=row.get("reasoning") or "", answer=row["final"])


def sft_rows(rows: list[dict], recipe: Recipe) -> list[dict]:
    """Conversational prompt/completion rows for TRL's SFTTrainer (loss on the completion only)."""
    return [
        {
            "prompt": build_messages(row["question"], recipe.prompt),
            "completion": [{"role": "assistant", "content": render_completion(row, recipe.sft.completion)}],
        }
        for row in rows
    ]


def prompt_rows(rows: list[dict], prompt: PromptSettings) -> list[dict]:
    """Conversational prompt rows with the gold in ``answer``, for GRPO and for the eval."""
    return [{"prompt": build_messages(row["question"], prompt), "answer": row["answer"]} for row in rows]


def count_prompt_tokens(tokenizer, messages: list[dict], *, generation_prompt: bool = True) -> int:
    """Tokens of a conversation rendered with the chat template (the generation prompt included by default).

    transformers 5 returns a ``BatchEncoding`` from ``apply_chat_template(tokenize=True)``, whose
    ``len`` is its number of keys (2), not of tokens: count ``input_ids``.
    """
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    return len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def sft_examples(recipe: Recipe, tokenizer) -> list[dict]:
    """The SFT stage's rows as trained on: loaded, rendered, prompts over ``max_prompt_tokens`` dropped."""
    rows = sft_rows(load_examples(recipe.sft.dataset, recipe.seed), recipe)
    return drop_long_prompts(rows, tokenizer, recipe.sft.dataset.max_prompt_tokens, "sft.dataset")


def grpo_prompts(recipe: Recipe, tokenizer) -> list[dict]:
    """The GRPO stage's prompts (gold in ``answer``), prompts over ``max_prompt_tokens`` dropped."""
    rows = prompt_rows(load_examples(recipe.grpo.dataset, recipe.seed), recipe.prompt)
    return drop_long_prompts(rows, tokenizer, recipe.grpo.dataset.max_prompt_tokens, "grpo.dataset")


def drop_long_prompts(rows: list[dict], tokenizer, max_tokens: int | None, where: str) -> list[dict]:
    """Rows whose rendered prompt fits ``max_tokens`` (GRPO never truncates prompts itself)."""
    if max_tokens is None:
        return rows
    kept = [row for row in rows if count_prompt_tokens(tokenizer, row["prompt"]) <= max_tokens]
    if len(kept) < len(rows):
        log.info(
            "%s: dropped %d of %d prompts longer than %d tokens", where, len(rows) - len(kept), len(rows), max_tokens
        )
    if not kept:
        raise RecipeError(f"{where}: every prompt is longer than max_prompt_tokens={max_tokens}; raise it")
    return kept
