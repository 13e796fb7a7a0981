"""A custom reward for the end-to-end tests: it varies across any group of completions.

A tiny model after a few SFT steps rarely gets an answer right, so accuracy and format alone
would give every completion in a group the same reward: zero advantage, no gradient, and a test
that could not tell whether GRPO trains at all.
"""

from recipe_cli.rewards import completion_text


def closeness_to_length(completions, *, target: int = 12, **kwargs) -> list[float]:
    """Higher for completions whose length (in characters) is closer to ``target``."""
    return [-abs(len(completion_text(c)) - target) / target for c in completions]


def flat_on_even_answers(completions, answer, **kwargs) -> list[float]:
    """1.0 for every completion of a problem whose gold is even (a zero-signal group), else closeness to 12 chars."""
    varied = closeness_to_length(completions, target=12)
    return [1.0 if int(gold) % 2 == 0 else score for gold, score in zip(answer, varied, strict=True)]
