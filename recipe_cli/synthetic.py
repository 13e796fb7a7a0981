"""Seeded GSM8K-style arithmetic word problems for the offline demo and the tests.

Each problem is one or two steps of addition/subtraction on small whole numbers, told as a
short story. The gold answer is the bare number, as in GSM8K after ``####``; the reasoning
writes each step on a line of its own.

Train and test are disjoint by construction: a problem belongs to the test split when a
hash of its text says so, so no seed or size can put one problem in both.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re

TEST_SEED = 42  # the test split's problems, whatever the run's seed: the ones the demo (seed 42) was measured on
NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivy", "Jack", "Kai", "Lena", "Max", "Nora"]
ITEMS = ["apples", "books", "coins", "eggs", "marbles", "pens", "shells", "stickers", "cards", "cookies"]

# (story, steps): each step is (operator, operand name); the story names a, b and c.
TEMPLATES = [
    ("{n} has {a} {i}. {n} gets {b} more. How many {i} does {n} have now?", [("+", "b")]),
    ("{n} had {a} {i} and gave away {b}. How many {i} does {n} have left?", [("-", "b")]),
    ("{n} has {a} {i}. {n} finds {b} more and then loses {c}. How many {i} does {n} have?", [("+", "b"), ("-", "c")]),
    (
        "{n} had {a} {i}, sold {b} of them and then bought {c}. How many {i} does {n} have now?",
        [("-", "b"), ("+", "c")],
    ),
    ("{n} has {a} {i}, buys {b} more and then {c} more. How many {i} does {n} have now?", [("+", "b"), ("+", "c")]),
    ("{n} had {a} {i}, gave {b} to a friend and then lost {c}. How many {i} are left?", [("-", "b"), ("-", "c")]),
]

TEST_SHARE = 5  # one problem in TEST_SHARE goes to the test split
MAX_VALUE = 9  # operands 2..9: single-digit arithmetic, which the demo's tiny model learns within its SFT budget
# Each split with MAX_VALUE holds more problems than this (train 159,696, test 40,924), so a request up to it needs no
# count_problems (about a second: it writes and hashes every question).
ALWAYS_ENOUGH = 10_000


def _in_test_split(question: str) -> bool:
    digest = hashlib.sha256(question.encode()).digest()
    return digest[0] % TEST_SHARE == 0


def apply_step(value: int, op: str, operand: int) -> int:
    """One step's result.

    >>> apply_step(8, "-", 2)
    6
    """
    return value + operand if op == "+" else value - operand


def solve_steps(a: int, steps: list[tuple[str, int]]) -> list[tuple[int, str, int, int]]:
    """Return each step as ``(left, op, right, result)``.

    >>> solve_steps(5, [("+", 3), ("-", 2)])
    [(5, '+', 3, 8), (8, '-', 2, 6)]
    """
    out, value = [], a
    for op, operand in steps:
        result = apply_step(value, op, operand)
        out.append((value, op, operand, result))
        value = result
    return out


def write_steps(steps: list[tuple[int, str, int, int]]) -> str:
    r"""The worked solution: one line per step.

    >>> write_steps([(5, '+', 3, 8), (8, '-', 2, 6)])
    '5 + 3 = 8\n8 - 2 = 6'
    """
    return "\n".join(f"{left} {op} {right} = {result}" for left, op, right, result in steps)


STEP_LINE = re.compile(r"(-?\d+) ([+-]) (\d+) = (-?\d+)")  # one line of write_steps


def mistake_kind(completion: str, extracted: str | None, gold: str) -> str:
    r"""How an answer to one of these problems went: right, the teacher's slip, arithmetic, or other.

    ``slip`` is the imperfect teacher's mistake that GRPO should train away: every written step
    computed right, but the answer is the first step's result. ``arithmetic``: a written step is
    computed wrong. ``other``: anything else (a wrong operand, a missing step, no answer).

    >>> mistake_kind("5 + 3 = 8\n8 - 2 = 6", "6", "6")
    'right'
    >>> mistake_kind("5 + 3 = 8\n8 - 2 = 6", "8", "6")
    'slip'
    >>> mistake_kind("5 + 3 = 9\n9 - 2 = 7", "7", "6")
    'arithmetic'
    >>> mistake_kind("5 + 3 = 8", "8", "6")
    'other'
    """
    if extracted == gold:
        return "right"
    steps = [(int(left), op, int(right), int(result)) for left, op, right, result in STEP_LINE.findall(completion)]
    if any(apply_step(left, op, right) != result for left, op, right, result in steps):
        return "arithmetic"
    if len(steps) > 1 and extracted == str(steps[0][3]) and str(steps[-1][3]) == gold:
        return "slip"
    return "other"


def _draw(rng: random.Random, max_value: int) -> dict:
    story, ops = rng.choice(TEMPLATES)
    while True:
        values = {"a": rng.randint(2, max_value), "b": rng.randint(2, max_value), "c": rng.randint(2, max_value)}
        steps = solve_steps(values["a"], [(op, values[name]) for op, name in ops])
        if all(result >= 0 for *_, result in steps):
            break
    question = story.format(n=rng.choice(NAMES), i=rng.choice(ITEMS), **values)
    return {"question": question, "answer": str(steps[-1][3]), "reasoning": write_steps(steps), "steps": steps}


@functools.cache
def count_problems(split: str, max_value: int = MAX_VALUE) -> int:
    """How many distinct problems ``split`` holds: every story, name, item and operands whose steps stay >= 0.

    >>> count_problems("train", max_value=2) + count_problems("test", max_value=2)
    700
    """
    count = 0
    for story, ops in TEMPLATES:
        for values in itertools.product(range(2, max_value + 1), repeat=1 + len(ops)):
            operands = dict(zip(["a", *(name for _, name in ops)], values, strict=True))
            steps = solve_steps(operands["a"], [(op, operands[name]) for op, name in ops])
            if any(result < 0 for *_, result in steps):
                continue
            questions = (story.format(n=name, i=item, **operands) for name in NAMES for item in ITEMS)
            count += sum(_in_test_split(question) == (split == "test") for question in questions)
    return count


def generate_problems(
    split: str, size: int, seed: int, max_value: int = MAX_VALUE, teacher_error_rate: float = 0.0
) -> list[dict]:
    """Return ``size`` distinct problems of ``split`` ("train" or "test"): the train problems the same for the same
    seed, the test problems the same for every seed (the first ``size`` of one sequence), as a dataset's test split
    is, so runs of different seeds are evaluated on the same problems and their accuracies compare.

    Rows have ``question``, ``answer`` (the gold number as text), and the teacher's worked
    solution: ``reasoning`` (the steps, one per line) and ``final`` (the answer it ends with).
    With ``teacher_error_rate`` > 0, that share of the two-step solutions works both steps but
    answers the first step's result: an imperfect teacher, like the distilled traces a cold
    start learns from. ``answer`` always stays the true gold.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if split == "test":
        seed = TEST_SEED
    rng = random.Random(f"{seed}-{split}")
    noise = random.Random(f"{seed}-{split}-teacher")
    rows, seen = [], set()
    # Give up rather than loop forever when the space of problems is smaller than asked.
    for _ in range(size * 200):
        if len(rows) == size:
            break
        row = _draw(rng, max_value)
        if row["question"] in seen or _in_test_split(row["question"]) != (split == "test"):
            continue
        seen.add(row["question"])
        steps = row.pop("steps")
        slip = len(steps) > 1 and noise.random() < teacher_error_rate
        row["final"] = str(steps[0][3]) if slip else row["answer"]
        rows.append(row)
    if len(rows) < size:
        raise ValueError(f"only {len(rows)} distinct {split} problems with max_value={max_value}; ask for fewer")
    return rows


def corpus_text() -> list[str]:
    """Every word the generator can write, for training the demo tokenizer."""
    rng = random.Random(0)
    texts = [story for story, _ in TEMPLATES] + NAMES + ITEMS
    texts += [_draw(rng, 20)["question"] + "\n" + _draw(rng, 20)["reasoning"] for _ in range(2000)]
    return texts
