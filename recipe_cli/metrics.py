"""Eval metrics over sampled completions: pass@k (unbiased estimator) and maj@k (majority vote).

Both read answers through ``recipe_cli.answers``, the checker the ``accuracy`` reward uses, so a
sample counts as correct here exactly when the reward would have paid 1.0 for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from recipe_cli.answer_forms import spelling
from recipe_cli.answers import answer_value, check_answer, parse_number

DIGITS_APART = re.compile(r"\d\s+\d")  # digits that removing spaces would run together


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k samples drawn from n (c of them correct) is correct.

    The unbiased estimator of Chen et al. 2021 (Codex paper, eq. 1): ``1 - C(n-c, k) / C(n, k)``,
    computed with exact integers, so it is also right for large n.

    >>> pass_at_k(10, 0, 1), pass_at_k(10, 10, 1), pass_at_k(10, 3, 1)
    (0.0, 1.0, 0.3)
    >>> round(pass_at_k(10, 3, 5), 6)  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    0.916667
    >>> pass_at_k(10, 6, 5)  # fewer than k wrong samples: every draw of 5 holds a correct one
    1.0
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    total = math.comb(n, k)
    return (total - math.comb(n - c, k)) / total  # one rounding, at the end


def answer_key(answer: str, numeric_gold: bool = False) -> Fraction | str:
    """What a vote is counted by: the answer's number, else its shape written back without spaces.

    Against a numeric gold, numbers group as the checker reads them (``x = 12`` votes with
    ``12``); otherwise only a plainly written number counts as one (``\\frac12`` too). Symbolic
    answers group by ``spelling``: delimiters, spacing, ``\\dfrac`` and the ways of writing a
    choice do not split a vote (``$\\dfrac{\\pi}{2}$`` votes with ``\\frac{\\pi}{ 2}``, ``(1,2)`` with
    ``(1, 2)``, ``C`` with ``\\text{(C)}``), but equivalent LaTeX written two ways (``x+1``, ``1+x``)
    votes apart.

    >>> answer_key("1,000") == answer_key("1000.0") == answer_key("$1000") == answer_key("x = 1000", True)
    True
    >>> answer_key(" x +  1 "), answer_key(r"$\\dfrac{\\pi}{2}$") == answer_key(r"\\frac{\\pi}{ 2}")
    ('x+1', True)
    >>> answer_key("(1,2)") == answer_key("(1, 2)"), answer_key(r"\\frac12")
    (True, Fraction(1, 2))
    >>> answer_key("2 1/2", True) == answer_key("10.5", True)
    False
    """
    number = answer_value(answer) if numeric_gold else parse_number(answer)
    if number is not None:
        return number
    spelled = spelling(answer)
    if DIGITS_APART.search(answer):  # "2 1/2" spells "21/2": a mixed number or not, it is not ten and a half
        return spelled
    number = parse_number(spelled)
    return number if number is not None else spelled


def majority_answer(answers: Sequence[str | None], numeric_gold: bool = False) -> str | None:
    """The most common extracted answer (compared by value); ties go to the one voted for first.

    Unanswered samples (None) do not vote; with no answer at all the result is None. The tie rule
    is deterministic and never looks at the gold, as a real majority vote could not.

    >>> majority_answer(["1,000", "7", "1000", None, None])
    '1,000'
    >>> majority_answer(["7", "8", "8", "7"])  # 2 votes each: 7 was voted for first
    '7'
    >>> majority_answer([None, None]) is None
    True
    """
    votes: dict[Fraction | str, list] = {}  # key -> [count, first position, first spelling]
    for position, answer in enumerate(answers):
        if answer is None:
            continue
        entry = votes.setdefault(answer_key(answer, numeric_gold), [0, position, answer])
        entry[0] += 1
    if not votes:
        return None
    count, first, spelling = max(votes.values(), key=lambda entry: (entry[0], -entry[1]))
    return spelling


def majority_correct(answers: Sequence[str | None], gold: str) -> bool:
    """Whether the majority answer (see ``majority_answer``) equals the gold.

    >>> majority_correct(["12", "12", "13"], "12"), majority_correct(["13", "12"], "12"), majority_correct([None], "1")
    (True, False, False)
    """
    return bool(check_answer(majority_answer(answers, parse_number(gold) is not None), gold))
