"""Any other dataset: ``columns`` maps its names to question, answer (the gold) and reasoning."""

from __future__ import annotations

from collections.abc import Iterator

from recipe_cli.data.adapters import RawRows, gold_text, question_text, register_adapter


@register_adapter("columns")
def column_rows(raw: RawRows, settings) -> Iterator[dict]:
    columns = {"question": "question", "answer": "answer", **settings.columns}
    if "reasoning" not in columns and "reasoning" in raw.column_names:
        columns["reasoning"] = "reasoning"
    raw.require(columns)
    for index, row in enumerate(raw):
        gold = gold_text(raw, index, columns["answer"], row[columns["answer"]])
        reasoning = row[columns["reasoning"]] if "reasoning" in columns else None
        yield {
            "question": question_text(raw, index, columns["question"], row[columns["question"]]),
            "answer": gold,
            "reasoning": None if reasoning is None else str(reasoning),
            "final": gold,
        }
