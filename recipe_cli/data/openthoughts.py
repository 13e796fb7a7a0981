"""OpenThoughts (open-r1/OpenThoughts-114k-math): R1's reasoning trace and final solution, gold from ``\\boxed{}``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from recipe_cli.answers import final_boxed
from recipe_cli.data.adapters import RawRows, question_text, register_adapter
from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)

THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.DOTALL)
SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)<\|end_of_solution\|>", re.DOTALL)


def split_openthoughts_response(text: str) -> tuple[str, str] | None:
    """An OpenThoughts response as ``(reasoning trace, final solution)``, or None when it is not in that form.

    >>> split_openthoughts_response("<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>s<|end_of_solution|>")
    ('t', 's')
    """
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


MARKED_INCORRECT = "marked incorrect by the dataset (only_correct)"
NO_TRACE = "no thought/solution markers (no usable reasoning trace)"
NO_GOLD = "no boxed answer (no usable gold)"


@register_adapter("openthoughts")
def openthoughts_rows(raw: RawRows, settings) -> Iterator[dict]:
    """Rows marked incorrect (``only_correct``), without the thought/solution markers or a boxed answer are skipped;
    the chain's report counts each reason under ``read``."""
    columns = {"question": "problem", **settings.columns}
    raw.require({"question": columns["question"]})
    if "messages" not in raw.column_names and "conversations" not in raw.column_names:
        raise RecipeError(
            f"dataset '{raw.path}' has neither 'messages' nor 'conversations'; "
            "the openthoughts adapter reads the reasoning trace from one of them"
        )
    for index, row in enumerate(raw):
        if settings.only_correct and row.get("correct") is False:
            raw.skip(MARKED_INCORRECT)
            continue
        parts = split_openthoughts_response(_assistant_turn(row) or "")
        if parts is None:
            raw.skip(NO_TRACE)
            continue
        reasoning, solution = parts
        gold = final_boxed(row.get("solution") or "") or final_boxed(solution)  # \boxed{1}, \boxed{2} is one answer
        if gold is None:
            raw.skip(NO_GOLD)
            continue
        question = question_text(raw, index, columns["question"], row[columns["question"]])
        yield {"question": question, "answer": gold, "reasoning": reasoning, "final": solution}
    if raw.skipped:
        log.info("openthoughts: skipped %s", ", ".join(f"{n} rows: {why}" for why, n in raw.skipped.items()))
