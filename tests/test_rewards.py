"""Rewards and the answer checker: table-driven, strings and chat messages alike."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from recipe_cli.answers import check_answer, extract_answer, parse_number, score_completion
from recipe_cli.errors import RecipeError
from recipe_cli.rewards import available, get_reward, score_all

from .conftest import GSM8K_DIR


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize(
    ("completion", "extracted"),
    [
        ("<think>x</think><answer>72</answer>", "72"),
        ("<think>x</think><answer>\n72\n</answer>", "72"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),
        (r"so the result is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{x^{2}+1}", "x^{2}+1"),
        ("<answer>the total is \\boxed{18}</answer>", "18"),
        ("Janet makes 9 * 2 = 18.\n#### 18", "18"),
        ("So the answer is 1,000 dollars.", "1,000 dollars."),
        ("Answer: 42", "42"),
        ("A: 42", "42"),
        ("first 3, then 4, finally 12", "12"),
        ("<answer>12", "12"),  # cut off before the closing tag
        ("nothing to see", None),
    ],
)
def test_extract_answer(completion, extracted):
    assert extract_answer(completion) == extracted


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        ("1,000", "1000", True),
        ("1000.0", "1000", True),
        ("1,000.00", "1000", True),
        ("$18", "18", True),
        ("18.", "18", True),
        ("50%", "50", True),
        ("-3", "-3", True),
        ("3/4", "0.75", True),
        (r"\frac{3}{4}", "0.75", True),
        ("12 apples", "12", True),
        ("17", "18", False),
        ("1,001", "1000", False),
        (r"\frac{1}{2}", r"\frac{2}{4}", True),
        ("x^2 + 1", "1 + x^2", True),
        (r"\sqrt{2}", r"\sqrt{3}", False),
        (None, "5", False),
    ],
)
def test_check_answer(answer, gold, correct):
    assert check_answer(answer, gold) is correct


def test_parse_number_has_no_float_error():
    assert parse_number("0.1") + parse_number("0.2") == parse_number("0.3")


@pytest.mark.parametrize("as_chat", [False, True])
def test_accuracy_reward(as_chat):
    completions = ["<think>2+2</think><answer>4</answer>", "<answer>5</answer>", "#### 1,234", "no number"]
    if as_chat:
        completions = [chat(c) for c in completions]
    scores = get_reward("accuracy")(completions=completions, answer=["4", "4", "1234", "3"])
    assert scores == [1.0, 0.0, 1.0, 0.0]


def test_accuracy_is_none_when_the_gold_cannot_be_read():
    assert get_reward("accuracy")(completions=["<answer>4</answer>"], answer=[""]) == [None]


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("<think>\nstep one\nstep two\n</think>\n<answer>4</answer>", 1.0),
        ("<think>a</think><answer>4</answer>", 1.0),
        ("  <think>\na\n</think>\n\n<answer>\n4\n</answer>\n", 1.0),
        ("<answer>4</answer>", 0.0),
        ("<think>a</think>", 0.0),
        ("<think>a</think><answer>4</answer> extra words", 0.0),
        ("The answer is 4", 0.0),
    ],
)
@pytest.mark.parametrize("as_chat", [False, True])
def test_format_reward(completion, score, as_chat):
    given = chat(completion) if as_chat else completion
    assert get_reward("format")(completions=[given]) == [score]


def test_registry_lists_and_rejects():
    assert {"accuracy", "format"} <= set(available())
    with pytest.raises(RecipeError, match="unknown reward 'acuracy'; did you mean 'accuracy'\\? available: accuracy"):
        get_reward("acuracy")


def test_custom_reward_from_a_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "def short(completions, *, limit=10, **kwargs):\n"
        "    return [1.0 if len(c) <= limit else 0.0 for c in completions]\n"
        "def bad(completions):\n    return []\n"
    )
    reward = get_reward(f"{path}:short", limit=3)
    assert reward(completions=["abc", "abcd"]) == [1.0, 0.0]
    assert reward.__name__ == "short"  # TRL logs rewards by name
    with pytest.raises(RecipeError, match="has no parameter 'size'; its parameters: limit"):
        get_reward(f"{path}:short", size=3)
    with pytest.raises(RecipeError, match=r"must accept \*\*kwargs"):
        get_reward(f"{path}:bad")
    with pytest.raises(RecipeError, match="has no function 'nope'"):
        get_reward(f"{path}:nope")


def test_rewards_are_thread_safe():
    """TRL may call rewards from worker threads; the LaTeX path must not rely on signals there."""
    reward = get_reward("accuracy")
    completions = [r"<answer>x^{2}+1</answer>", r"<answer>\sqrt{8}</answer>", "<answer>7</answer>"] * 12
    golds = ["1+x^2", r"2\sqrt{2}", "7"] * 12
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda pair: reward(completions=[pair[0]], answer=[pair[1]])[0], zip(completions, golds, strict=True)
            )
        )
    assert results == [1.0] * 36


def test_a_batch_scored_side_by_side_matches_one_at_a_time():
    """score_all sends a batch's LaTeX comparisons to the workers together; verdicts and order stay those of
    scoring each completion alone, the pathological one included."""
    texts = [
        r"\boxed{2\sqrt{3}}",
        r"\boxed{x^2+6x+9}",
        "<answer>7</answer>",
        r"\boxed{9^{9^{9^9}}}",
        r"\boxed{3\sqrt{3}}",
    ]
    golds = [r"\sqrt{12}", "(x+3)^2", "8", "3", r"\sqrt{12}"]
    cut_off = [False, False, False, False, True]
    alone = [score_completion(t, g, 2.0, truncated=c)[1] for t, g, c in zip(texts, golds, cut_off, strict=True)]
    assert alone == [True, True, False, False, False]
    assert score_all(texts, golds, 2.0, "flexible", cut_off) == alone
    assert score_all(texts, golds, 2.0, "strict", cut_off) == [True, True, False, False, False]
    assert score_all(["7"], ["7"], 2.0, "flexible", [False]) == [True]


def test_a_pathological_answer_is_cut_off_and_counted_wrong():
    """sympy would spend hours on 9^{9^{9^9}}; the worker is killed at the time bound."""
    started = time.perf_counter()
    assert check_answer(r"9^{9^{9^9}}", "3", timeout=1.0) is False
    assert time.perf_counter() - started < 30  # worker start-up (sympy import) is not part of the bound
    assert check_answer(r"x^{2}+1", "1+x^2") is True  # a fresh worker takes over


@pytest.mark.skipif(not (GSM8K_DIR / "test.jsonl").is_file(), reason="GSM8K is not next to the checkout")
@pytest.mark.parametrize(
    "style",
    [
        "<think>work</think>\n<answer>{}</answer>",
        "<think>work</think>\n<answer>\n{}\n</answer>",
        "so the total is \\boxed{{{}}}.",
        "<answer>The total is $\\boxed{{{}}}$</answer>",
        "Natalia sold 48 clips.\n#### {}",
        "The answer is {}.",
        "The final answer is: {}",
        "Answer: {}",
        "A: {}",
        "First 3 + 4 = 7, then the result is {}",
    ],
)
@pytest.mark.parametrize("written", ["plain", "separators", "dollars", "decimals"])
def test_every_gsm8k_test_gold_scores_in_each_answer_style(style, written):
    from recipe_cli.data import split_gsm8k_answer

    rows = [json.loads(line) for line in (GSM8K_DIR / "test.jsonl").read_text().splitlines()]
    golds = [split_gsm8k_answer(row["answer"])[1] for row in rows]
    how = {"plain": "{}", "separators": "{:,}", "dollars": "${:,}", "decimals": "{:.2f}"}[written]
    answers = [how.format(int(g)) for g in golds]
    reward = get_reward("accuracy")
    as_chat = written == "separators"  # TRL's conversational form, on one of the writings
    completions = [style.format(a) for a in answers]
    if as_chat:
        completions = [chat(c) for c in completions]
    assert reward(completions=completions, answer=golds) == [1.0] * len(golds)
    wrong = [style.format(how.format(int(g) + 1)) for g in golds]
    assert reward(completions=wrong, answer=golds) == [0.0] * len(golds)
