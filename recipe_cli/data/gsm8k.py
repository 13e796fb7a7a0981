"""GSM8K (openai/gsm8k, or a local copy): the gold is the number after ``####``."""

from __future__ import annotations

import re
from collections.abc import Iterator

from recipe_cli.data.adapters import RawRows, describe_type, question_text, register_adapter
from recipe_cli.errors import RecipeError

GSM8K_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


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


@register_adapter("gsm8k")
def gsm8k_rows(raw: RawRows, settings) -> Iterator[dict]:
    columns = {"question": "question", "answer": "answer", **settings.columns}
    raw.require(columns)
    for index, row in enumerate(raw):
        answer = row[columns["answer"]]
        if not isinstance(answer, str):
            kind = describe_type(answer)
            raise RecipeError(
                f"dataset '{raw.path}' {raw.where(index)}: column '{columns['answer']}' is {kind}, not GSM8K's "
                "'<worked solution> #### <number>' text; for a bare gold answer use `adapter: columns`"
            )
        try:
            reasoning, gold = split_gsm8k_answer(answer)
        except ValueError:
            raise RecipeError(
                f"dataset '{raw.path}' {raw.where(index)}: the answer has no '#### <number>'; "
                "is this GSM8K? use `adapter: columns` for other datasets"
            ) from None
        if not gold:
            raise RecipeError(
                f"dataset '{raw.path}' {raw.where(index)}: the answer has nothing after '####'; write the final "
                "number there or delete the row"
            )
        question = question_text(raw, index, columns["question"], row[columns["question"]])
        yield {"question": question, "answer": gold, "reasoning": reasoning, "final": gold}
