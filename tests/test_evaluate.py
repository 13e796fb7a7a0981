"""Evaluation: pass@k and maj@k, the eval schema."""

from __future__ import annotations

import copy
import itertools
import math

import pytest

from recipe_cli.config import validate_recipe
from recipe_cli.errors import RecipeError
from recipe_cli.metrics import answer_key, majority_answer, majority_correct, pass_at_k

from .conftest import TINY_RECIPE


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 is the share of correct samples
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (10, 3, 10, 1.0),
        (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
        (200, 10, 100, 1 - math.comb(190, 100) / math.comb(200, 100)),
        (8, 0, 8, 0.0),
    ],
)
def test_pass_at_k_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 2, 2), (6, 1, 3), (6, 4, 3), (7, 3, 4)])
def test_pass_at_k_equals_counting_every_draw(n, c, k):
    """The estimator is the exact share of k-subsets of the n samples that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    draws = list(itertools.combinations(samples, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(d) for d in draws) / len(draws))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


@pytest.mark.parametrize(
    ("answers", "majority"),
    [
        (["3", "4", "4"], "4"),
        (["4", "3", "3", "4"], "4"),  # tie 2-2: the answer voted for first wins
        (["3", "4", "3", "4"], "3"),
        ([None, None, "7", "8"], "7"),  # unanswered samples do not vote; tie 1-1 goes to the first vote
        ([None, "8", None, "7", "7"], "7"),  # two votes beat one, however many samples gave no answer
        (["1,000", "7", "1000", "1000.0"], "1,000"),  # votes are counted by value
        (["$5", "5 apples", "6", "6"], "$5"),  # 2-2 by value: the first spelling stands for its group
        ([None, None], None),
        ([], None),
    ],
)
def test_majority_vote_and_its_tie_rule(answers, majority):
    assert majority_answer(answers) == majority


@pytest.mark.parametrize(
    ("answers", "gold", "correct"),
    [
        (["12", "12", "13"], "12", True),
        (["13", "12"], "12", False),  # a tie the wrong answer was voted into first counts as wrong
        (["12", "13"], "12", True),
        (["1,2", "12.0", "12"], "12", True),  # "1,2" is 12 as well: commas are thousands separators
        ([None, None, "12"], "12", True),
        ([None, None], "12", False),
    ],
)
def test_majority_correct(answers, gold, correct):
    assert majority_correct(answers, gold) is correct


def test_answer_key_compares_numbers_by_value():
    assert answer_key("1,000") == answer_key("1000") == answer_key("1000.00")
    assert answer_key("1/2") == answer_key("0.5")
    assert answer_key(r"\sqrt{2}") != answer_key("2")


def eval_recipe(**eval_settings) -> dict:
    data = copy.deepcopy(TINY_RECIPE)
    data["eval"].update(eval_settings)
    return data


def test_eval_schema_defaults_are_greedy():
    settings = validate_recipe(eval_recipe()).eval
    assert (settings.num_samples, settings.pass_k, settings.backend, settings.batch_size) == (1, [1], "auto", 128)


def test_eval_schema_fills_and_sorts_k():
    assert validate_recipe(eval_recipe(num_samples=8)).eval.pass_k == [1, 2, 4, 8]
    assert validate_recipe(eval_recipe(num_samples=6, pass_k=[6, 1, 1])).eval.pass_k == [1, 6]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"num_samples": 4, "pass_k": [1, 8]}, "eval: pass_k: k=8 is larger than num_samples=4; set num_samples to"),
        ({"pass_k": [4]}, "k=4 is larger than num_samples=1"),
        ({"pass_k": [0]}, "k=0 is not a sample count"),
        ({"temperature": 0.0}, "eval.temperature: input should be greater than 0"),
        ({"top_p": 1.5}, "eval.top_p: input should be less than or equal to 1"),
        ({"backend": "tgi"}, "eval.backend: input should be 'auto', 'transformers' or 'vllm'"),
        ({"num_sample": 4}, "eval.num_sample: unknown key; did you mean 'num_samples'?"),
    ],
)
def test_eval_schema_mistakes(settings, expected):
    with pytest.raises(RecipeError) as caught:
        validate_recipe(eval_recipe(**settings))
    assert expected.lower() in str(caught.value).lower()
