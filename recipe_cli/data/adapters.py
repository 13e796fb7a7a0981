"""The adapters by name: each turns a dataset's rows into ``question``, ``answer`` (the gold), ``reasoning``
and ``final`` rows (see ``recipe_cli.data``). One module per adapter registers itself here."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from recipe_cli.errors import RecipeError

Adapter = Callable[["RawRows", Any], Iterator[dict]]
ADAPTERS: dict[str, Adapter] = {}


def register_adapter(name: str) -> Callable[[Adapter], Adapter]:
    def register(function: Adapter) -> Adapter:
        ADAPTERS[name] = function
        return function

    return register


def missing_gold(where: str, rows) -> RecipeError | None:
    """The error for the first row of TRL's formats (``prompt``, ``messages``: the gold column is optional there)
    that has no gold answer, or None; the other adapters require their gold column.

    GRPO's rewards and the eval score against the gold: without one every answer scores 0, without
    a word. SFT trains on the completion and needs none.

    >>> missing_gold("eval.dataset", [{"question": "2+2?", "prompt": "2+2?", "answer": ""}])  # doctest: +ELLIPSIS
    RecipeError("eval.dataset: the row asking '2+2?' has no gold answer, which ... (TRL's is `solution`)")
    """
    for row in rows:
        if "prompt" in row and not row["answer"].strip():
            return RecipeError(
                f"{where}: the row asking {row['question'][:60]!r} has no gold answer, which every answer is scored "
                "against; fill in its empty gold or drop the row, or, where the dataset has no gold column, map one "
                "with `columns: {answer: ...}` (TRL's is `solution`)"
            )
    return None


@dataclass
class RawRows:
    """A source's rows before the adapter: a ``datasets.Dataset`` or rows read from a file, with their names.

    ``lines`` holds each row's line in a JSONL/CSV file when it is known, so a message can point at it.
    """

    rows: Any  # an iterable of dicts
    column_names: list[str]
    path: str
    lines: list[int] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # why -> rows the adapter left out, for the chain's report

    def __iter__(self):
        return iter(self.rows)

    def skip(self, reason: str) -> None:
        """Count a row the adapter leaves out, and why (the chain reports each reason under ``read``)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def where(self, index: int) -> str:
        """How a message names row ``index``: ``row 3`` or ``row 3 (line 4)``."""
        line = f" (line {self.lines[index]})" if index < len(self.lines) else ""
        return f"row {index}{line}"

    def require(self, needed: dict[str, str]) -> None:
        """Every role's column is present, or one line naming the missing ones and the fix.

        >>> RawRows([], ["prompt"], "d.jsonl").require({"messages": "messages"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        recipe_cli.errors.RecipeError: dataset 'd.jsonl' has no column 'messages' ...; ... `columns: {messages: ...}`
        """
        absent = {role: column for role, column in needed.items() if column not in self.column_names}
        if absent:
            missing = ", ".join(f"'{column}' (for {role})" for role, column in absent.items())
            roles = ", ".join(f"{role}: ..." for role in absent)  # the roles this adapter reads, not question/answer
            raise RecipeError(
                f"dataset '{self.path}' has no column {missing}; its columns are {self.column_names}; "
                f"map them with `columns: {{{roles}}}`"
            )


EXACT_FLOAT = 2**53  # from here on a float64 holds only some of the integers: 2**53 + 1 reads as 2**53
INT64 = 2**63  # datasets reads a JSON integer from here on as a float64


def text_value(raw: RawRows, index: int, column: str, value: Any, role: str) -> str:
    """A question or gold cell as text: numbers become text, anything else that is not text is a one-line error.

    A float is written out in decimals, as a JSON file writes it: Python's ``str`` gives ``1e-05``
    for 0.00001, which no answer checker reads as the number. A gold number too large for a float
    to hold exactly is a one-line error: ``datasets`` reads a JSON integer of 2**63 or more, and one of
    2**53 or more in a column that also holds a decimal, as a float, so 12345678901234567890 would
    become the gold 12345678901234567000 and the right answer would score 0.

    >>> text_value(RawRows([], [], "d.jsonl"), 0, "answer", 42, "answer")
    '42'
    >>> [text_value(RawRows([], [], "d.jsonl"), 0, "answer", x, "answer") for x in (0.00001, 2.5e15, 0.5, 3.0)]
    ['0.00001', '2500000000000000.0', '0.5', '3.0']
    >>> text_value(RawRows([], [], "d.jsonl"), 0, "answer", 1.2345678901234567e19, "gold answer")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    recipe_cli.errors.RecipeError: dataset 'd.jsonl' row 0: column 'answer' (the gold answer) is ...; write it in ...)
    """
    if isinstance(value, str):
        return value
    if role == "gold answer" and _too_large(value):
        raise RecipeError(
            f"dataset '{raw.path}' {raw.where(index)}: column '{column}' (the gold answer) is {value!r}, a number too "
            "large for a float to hold exactly (`datasets` reads such JSON integers as floats, rounded to 17 "
            f'digits); write it in the file as a string, in quotes ("{column}": "12345678901234567890")'
        )
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = describe_type(value)
    raise RecipeError(
        f"dataset '{raw.path}' {raw.where(index)}: column '{column}' (the {role}) is {kind}, not text or a number; "
        "fix that row or map `columns` to another column"
    )


def _too_large(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) >= EXACT_FLOAT
    return isinstance(value, int) and abs(value) >= INT64


def gold_text(raw: RawRows, index: int, column: str, value: Any) -> str:
    """A gold answer cell as text (see ``filled_text``): every answer would be scored against an empty one, and SFT
    would teach an empty answer.

    >>> gold_text(RawRows([], [], "d.jsonl"), 0, "answer", 72)
    '72'
    """
    return filled_text(raw, index, column, value, "gold answer")


def question_text(raw: RawRows, index: int, column: str, value: Any) -> str:
    """A question cell as text (see ``filled_text``): the model would be trained and scored on answering nothing.

    >>> question_text(RawRows([], [], "d.jsonl"), 0, "question", "What is 2+2?")
    'What is 2+2?'
    """
    return filled_text(raw, index, column, value, "question")


def filled_text(raw: RawRows, index: int, column: str, value: Any, role: str) -> str:
    """A cell as text (see ``text_value``); a blank one is a one-line error, as a null one is."""
    text = text_value(raw, index, column, value, role)
    if not text.strip():
        raise RecipeError(
            f"dataset '{raw.path}' {raw.where(index)}: column '{column}' (the {role}) is empty; fill it in or "
            "delete the row"
        )
    return text


def describe_type(value: Any) -> str:
    """A cell's type in a message, with the value's start.

    >>> describe_type(42), describe_type(None), describe_type([1, 2])
    ('an int (42)', 'empty (null)', 'a list ([1, 2])')
    """
    if value is None:
        return "empty (null)"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({str(value)[:40]})"
