"""Datasets for every stage: load, normalise through an adapter, and build TRL's conversational rows.

Every adapter turns its source into the same rows: ``question``, ``answer`` (the gold, as the
rewards and the eval read it), ``reasoning`` (a worked solution, when the source has one) and
``final`` (what the SFT completion writes as its answer; the gold unless the source has a
written-out final solution). Rewards receive the gold as the ``answer`` column.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def _gsm8k_rows(raw, settings: DatasetSettings) -> Iterator[dict]:
    columns = {"question": "question", "answer": "answer", **settings.columns}
    _require_columns(raw, columns, settings.path)
    for index, row in enumerate(raw):
        try:
            reasoning, gold = split_gsm8k_answer(row[columns["answer"]])
        except ValueError:
            raise RecipeError(
                f"dataset '{settings.path}' row {index}: the answer has no '#### <number>'; "
                "is this GSM8K? use `adapter: columns` for other datasets"
            ) from None
        yield {"question": row[columns["question"]], "answer": gold, "reasoning": reasoning, "final": gold}


def _openthoughts_rows(raw, settings: DatasetSettings) -> Iterator[dict]:
    columns = {"question": "problem", **settings.columns}
    _require_columns(raw, {"question": columns["question"]}, settings.path)
    if "messages" not in raw.column_names and "conversations" not in raw.column_names:
        raise RecipeError(
            f"dataset '{settings.path}' has neither 'messages' nor 'conversations'; "
            "the openthoughts adapter reads the reasoning trace from one of them"
        )
    skipped = 0
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
        yield {"question": row[columns["question"]], "answer": gold, "reasoning": reasoning, "final": solution}
    if skipped:
        log.info("openthoughts: skipped %d rows (incorrect, no thought/solution markers, or no boxed answer)", skipped)


def _column_rows(raw, settings: DatasetSettings) -> Iterator[dict]:
    columns = {"question": "question", "answer": "answer", **settings.columns}
    if "reasoning" not in columns and "reasoning" in raw.column_names:
        columns["reasoning"] = "reasoning"
    _require_columns(raw, columns, settings.path)
    for row in raw:
        yield {
            "question": str(row[columns["question"]]),
            "answer": str(row[columns["answer"]]),
            "reasoning": str(row[columns["reasoning"]]) if "reasoning" in columns else None,
            "final": str(row[columns["answer"]]),
        }


def iter_examples(settings: DatasetSettings, seed: int) -> Iterator[dict]:
    """Every normalised row of a dataset section, read lazily (``max_samples`` is the caller's to apply)."""
    if settings.adapter == "arithmetic":  # generates exactly max_samples problems
        yield from generate_problems(
            settings.split, settings.max_samples, seed, teacher_error_rate=settings.teacher_error_rate
        )
        return
    raw = load_raw(settings)
    adapt = {"gsm8k": _gsm8k_rows, "openthoughts": _openthoughts_rows, "columns": _column_rows}[settings.adapter]
    yield from adapt(raw, settings)


def load_examples(settings: DatasetSettings, seed: int) -> list[dict]:
    """The first ``max_samples`` normalised rows of a dataset section (every row without it)."""
    rows = list(itertools.islice(iter_examples(settings, seed), settings.max_samples))
    if not rows:
        raise _no_rows(settings)
    return rows


def _no_rows(settings: DatasetSettings) -> RecipeError:
    return RecipeError(f"dataset '{settings.path}' (split {settings.split}) has no usable rows")


def build_prompt(question: str, prompt: PromptSettings) -> list[dict] | str:
    """What the model is shown: the system message (if any) and the user's question as a conversation, or
    the plain-text ``template`` filled in (rendered by ``recipe_cli.chat``).

    >>> build_prompt("1+1?", PromptSettings(system="Be brief.", user="Q: {question}"))
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Q: 1+1?'}]
    >>> build_prompt("1+1?", PromptSettings(template="User: {question}\\nAssistant: <think>"))
    'User: 1+1?\\nAssistant: <think>'
    """
    if prompt.template is not None:
        return prompt.template.format(question=question)
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


def prompt_rows(rows: list[dict], prompt: PromptSettings) -> list[dict]:
    """Conversational prompt rows with the gold in ``answer``, for GRPO and for the eval."""
    return [{"prompt": build_prompt(row["question"], prompt), "answer": row["answer"]} for row in rows]


def count_prompt_tokens(tokenizer, prompt: list[dict] | str) -> int:
    """Tokens of a prompt as generation sees it (a conversation with the template's generation prompt)."""
    from recipe_cli.chat import prompt_token_ids

    return len(prompt_token_ids(tokenizer, prompt))


@dataclass
class PreparedData:
    """A training stage's rows as the trainer receives them, and what filtering removed on the way."""

    stage: str
    rows: list[dict] = field(default_factory=list)
    read: int = 0  # rows read from the source (after the adapter) until max_samples were kept
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows removed
    prompt_tokens: list[int] = field(default_factory=list)  # of every row read, kept or not
    completion_tokens: list[int] = field(default_factory=list)  # SFT: of every row read, end-of-turn included
    kept: list[bool] = field(default_factory=list)  # whether each row read was kept

    def add(self, row: dict | None, prompt_tokens: int, completion_tokens: int = 0, dropped: str | None = None):
        self.read += 1
        self.prompt_tokens.append(prompt_tokens)
        self.completion_tokens.append(completion_tokens)
        self.kept.append(dropped is None)
        if dropped is None:
            self.rows.append(row)
        else:
            self.dropped[dropped] = self.dropped.get(dropped, 0) + 1

    def kept_lengths(self, kind: str) -> list[int]:
        """``prompt_tokens`` or ``completion_tokens`` of the kept rows."""
        return [n for n, kept in zip(getattr(self, kind), self.kept, strict=True) if kept]


def _too_long(settings: DatasetSettings, prompt_tokens: int, completion_tokens: int = 0) -> str | None:
    """Why a row is filtered out by the section's token limits, or None when it fits."""
    if settings.max_prompt_tokens is not None and prompt_tokens > settings.max_prompt_tokens:
        return "prompt over max_prompt_tokens"
    if settings.max_completion_tokens is not None and completion_tokens > settings.max_completion_tokens:
        return "completion over max_completion_tokens"
    return None


PROMPT_FILLS_MAX_LENGTH = "prompt fills sft.trainer.max_length"


def sft_max_length(recipe: Recipe) -> int:
    """The SFT sequence length TRL truncates to: the recipe's ``max_length``, else SFTConfig's default."""
    from recipe_cli.trainer_fields import trainer_fields

    value = recipe.sft.trainer.get("max_length", trainer_fields("SFTConfig")["max_length"].default)
    return value if isinstance(value, int) else 10**9  # None: no truncation


def prepare_sft(recipe: Recipe, tokenizer, *, check: bool = True) -> PreparedData:
    """The SFT stage's examples as trained on: token ids and loss masks, filtered, at most ``max_samples``.

    Each example is the prompt as generation sees it (masked) and the recipe's completion with
    the end-of-turn token (trained on), built by ``recipe_cli.chat.sft_token_ids``. Rows whose
    prompt is over ``max_prompt_tokens`` or whose completion is over ``max_completion_tokens``
    are dropped before ``max_samples`` counts, so the stage gets that many examples that fit.
    ``check`` raises when nothing is left (a dry run reports it instead).
    """
    from recipe_cli.chat import completion_end_id, sft_token_ids, think_prefilled

    settings = recipe.sft.dataset
    prefilled = think_prefilled(recipe, tokenizer)
    end_id = completion_end_id(tokenizer, plain=recipe.prompt.template is not None)
    max_length = sft_max_length(recipe)
    prepared = PreparedData("sft")
    for row in iter_examples(settings, recipe.seed):
        if settings.max_samples is not None and len(prepared.rows) >= settings.max_samples:
            break
        prompt = build_prompt(row["question"], recipe.prompt)
        completion = render_completion(row, recipe.sft.completion)
        ids, mask = sft_token_ids(tokenizer, prompt, completion, prefilled=prefilled, end_id=end_id)
        completion_tokens = sum(mask)
        prompt_tokens = len(ids) - completion_tokens
        example = {"input_ids": ids, "completion_mask": mask}
        dropped = _too_long(settings, prompt_tokens, completion_tokens)
        if dropped is None and prompt_tokens >= max_length:  # TRL would truncate every completion token away
            dropped = PROMPT_FILLS_MAX_LENGTH
        prepared.add(example, prompt_tokens, completion_tokens, dropped)
    _report(prepared, settings, "sft.dataset", check)
    return prepared


def prepare_grpo(recipe: Recipe, tokenizer, *, check: bool = True) -> PreparedData:
    """The GRPO stage's prompts (gold in ``answer``), prompts over ``max_prompt_tokens`` dropped, at most
    ``max_samples`` (GRPO never truncates prompts itself)."""
    settings = recipe.grpo.dataset
    prepared = PreparedData("grpo")
    for row in iter_examples(settings, recipe.seed):
        if settings.max_samples is not None and len(prepared.rows) >= settings.max_samples:
            break
        prompt = prompt_rows([row], recipe.prompt)[0]
        tokens = count_prompt_tokens(tokenizer, prompt["prompt"])
        prepared.add(prompt, tokens, dropped=_too_long(settings, tokens))
    _report(prepared, settings, "grpo.dataset", check)
    return prepared


def _report(prepared: PreparedData, settings: DatasetSettings, where: str, check: bool) -> None:
    if not prepared.read:
        raise _no_rows(settings)
    for reason, count in prepared.dropped.items():
        log.info("%s: dropped %d of %d rows: %s", where, count, prepared.read, reason)
    if check and not prepared.rows:
        if PROMPT_FILLS_MAX_LENGTH in prepared.dropped and len(prepared.dropped) == 1:
            longest = max(prepared.prompt_tokens)
            raise RecipeError(
                f"{where}: every prompt fills sft.trainer.max_length (the shortest has {min(prepared.prompt_tokens)}"
                f" tokens, the longest {longest}), so no completion token would be trained; raise max_length "
                "within the model's positions, or shorten the prompts (prompt.system) or filter them "
                "(dataset.max_prompt_tokens)"
            )
        too_long = [
            f"every {part} is longer than {key}={getattr(settings, key)}"
            for part, key in (("prompt", "max_prompt_tokens"), ("completion", "max_completion_tokens"))
            if any(key in reason for reason in prepared.dropped)
        ]
        raise RecipeError(f"{where}: {' or '.join(too_long) or 'every row was filtered out'}; raise it")


def sft_examples(recipe: Recipe, tokenizer) -> list[dict]:
    """The SFT stage's examples as trained on (see ``prepare_sft``)."""
    return prepare_sft(recipe, tokenizer).rows


def grpo_prompts(recipe: Recipe, tokenizer) -> list[dict]:
    """The GRPO stage's prompts as trained on (see ``prepare_grpo``)."""
    return prepare_grpo(recipe, tokenizer).rows
