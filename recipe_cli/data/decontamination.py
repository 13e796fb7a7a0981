"""Decontamination: training questions that share a word n-gram with a benchmark question are removed.

Questions are compared as words after normalising case, punctuation and whitespace, so a copy
re-cased, re-spaced or re-punctuated is caught, and so is one with a sentence added (its n-grams
still contain the original's). The rule is open-r1's ``scripts/decontaminate.py`` (8-grams, as in
the Llama-2/Tülu reports); n-grams that cross a sentence added in front or behind do not matter,
one shared n-gram suffices.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from recipe_cli.errors import RecipeError

NON_WORD = re.compile(r"[^\w\s]|_")


def normalise_words(text: str) -> list[str]:
    """The words of a text, lower-cased, punctuation removed (numbers keep their digits: 1,000 -> 1000).

    >>> normalise_words("  Janet's ducks LAY 16 eggs...\\nper day; 1,000  ")
    ['janets', 'ducks', 'lay', '16', 'eggs', 'per', 'day', '1000']
    """
    text = unicodedata.normalize("NFKC", text).lower()
    return NON_WORD.sub("", text).split()


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The text's word n-grams after ``normalise_words``; a text shorter than ``n`` words is one n-gram of its own.

    >>> sorted(word_ngrams("A b, c d!", 3))
    [('a', 'b', 'c'), ('b', 'c', 'd')]
    >>> word_ngrams("Two words", 8)
    {('two', 'words')}
    """
    words = normalise_words(text)
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class BenchmarkIndex:
    """The n-grams (or whole normalised questions) of the benchmark questions, with which question each came from."""

    n: int
    exact: bool = False
    grams: dict[tuple[str, ...], int] = field(default_factory=dict)  # n-gram -> index into questions
    questions: list[tuple[str, str]] = field(default_factory=list)  # (benchmark name, question)

    def add(self, name: str, question: str) -> None:
        index = len(self.questions)
        self.questions.append((name, question))
        keys = {tuple(normalise_words(question))} if self.exact else word_ngrams(question, self.n)
        for gram in keys:
            self.grams.setdefault(gram, index)

    def match(self, question: str) -> tuple[tuple[str, ...], str, str] | None:
        """``(shared n-gram, benchmark, benchmark question)`` of the first overlap, or None for a clean question."""
        keys = [tuple(normalise_words(question))] if self.exact else word_ngrams(question, self.n)
        for gram in keys:
            if gram in self.grams:
                name, other = self.questions[self.grams[gram]]
                return gram, name, other
        return None


QUESTION_COLUMNS = ("question", "problem", "prompt")


def benchmark_questions(path: str) -> list[str]:
    """The questions of a benchmark file named in ``decontaminate.benchmarks``: its question/problem/prompt column."""
    from recipe_cli.data.files import read_rows

    rows = [row for _, row in read_rows(Path(path).expanduser())]
    for column in QUESTION_COLUMNS:
        if rows and all(isinstance(row.get(column), str) for row in rows):
            return [row[column] for row in rows]
    found = sorted({key for row in rows[:5] for key in row})
    raise RecipeError(
        f"decontaminate.benchmarks: '{path}' has no text column named {' or '.join(QUESTION_COLUMNS)} "
        f"(its columns: {found}); rename the question column to one of them"
    )
