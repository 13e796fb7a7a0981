"""Every registered reward: table-driven positive and negative cases, as strings and as chat messages."""

from __future__ import annotations

import re

import pytest

from recipe_cli.errors import RecipeError
from recipe_cli.rewards import available, check_reward_settings, describe, get_reward, with_run_values

from .conftest import REPO

GOOD = "<think>\nStep 1: 2 + 2 = 4\n</think>\n<answer>4</answer>"
HINDI = "<think>\nदो और दो मिलाकर चार होते हैं, इसलिए उत्तर 4 है।\n</think>\n<answer>4</answer>"

# (reward, params, completion, extra columns, expected score)
CASES = [
    ("accuracy", {}, GOOD, {"answer": "4"}, 1.0),
    ("accuracy", {}, GOOD, {"answer": "5"}, 0.0),
    ("accuracy", {}, r"<answer>\frac{1}{2}</answer>", {"answer": "0.5"}, 1.0),
    ("accuracy", {}, r"<answer>\sqrt{8}</answer>", {"answer": r"2\sqrt{2}"}, 1.0),
    ("accuracy", {}, "<answer>4</answer>", {"answer": ""}, None),
    ("accuracy", {"answer_after": "</think>"}, "<think>\n4\n</think>\nSo \\boxed{4}", {"answer": "4"}, 1.0),
    ("accuracy", {"answer_after": "</think>"}, "<think>\n2 + 2 = 4", {"answer": "4"}, 0.0),  # thought not closed
    ("accuracy", {"answer_after": "</think>"}, "<think>\n<answer>4</answer>\n</think> 5", {"answer": "4"}, 0.0),
    ("think_format", {}, "<think>\n2 + 2 = 4\n</think>\nThe answer is \\boxed{4}.", {}, 1.0),
    ("think_format", {}, GOOD, {}, 1.0),
    ("think_format", {}, "<think>a<think>b</think>", {}, 0.0),
    ("think_format", {}, "The answer is 4.", {}, 0.0),
    ("think_format", {"think_prefilled": True}, "2 + 2 = 4\n</think>\n4", {}, 1.0),
    ("think_format", {"think_prefilled": True}, GOOD, {}, 0.0),
    ("format", {}, GOOD, {}, 1.0),
    ("format", {}, "<answer>4</answer>", {}, 0.0),
    ("format", {}, "<think>a</think><answer>4</answer> and more", {}, 0.0),
    ("format", {"think_prefilled": True}, "2 + 2 = 4\n</think>\n<answer>4</answer>", {}, 1.0),
    ("format", {"think_prefilled": True}, GOOD, {}, 0.0),
    ("tag_count", {}, GOOD, {}, 1.0),
    ("tag_count", {}, "<think>a</think><think>b</think><answer>4", {}, 0.25),
    ("tag_count", {"think_prefilled": True}, "a</think><answer>4</answer>", {}, 1.0),
    ("reasoning_steps", {}, "Step 1: a\nStep 2: b\nStep 3: c", {}, 1.0),
    ("reasoning_steps", {}, "We know:\n1. a\n2. b\n3. c", {}, 1.0),
    ("reasoning_steps", {"min_steps": 2}, "First, a.", {}, 0.5),
    ("reasoning_steps", {}, "It is 4.", {}, 0.0),
    ("repetition_penalty", {}, "the cat sat on the mat today", {}, 0.0),
    ("repetition_penalty", {"ngram_size": 1, "max_penalty": -0.5}, "no no no no", {}, -0.375),
    ("repetition_penalty", {}, "", {}, 0.0),
    ("xml_format", {}, "<reasoning>\nline 1\nline 2\n</reasoning>\n<answer>\n4\n</answer>\n", {}, 1.0),
    ("xml_format", {}, "<reasoning>line 1\nline 2</reasoning> <answer>4</answer>", {}, 1.0),
    ("xml_format", {"strict": True}, "<reasoning>line 1\nline 2</reasoning> <answer>4</answer>", {}, 0.0),
    ("xml_format", {"strict": True}, "<reasoning>\nline 1\nline 2\n</reasoning>\n<answer>\n4\n</answer>\n", {}, 1.0),
    ("xml_format", {}, GOOD, {}, 0.0),
    ("integer_answer", {}, "<answer>1,000</answer>", {}, 1.0),
    ("integer_answer", {}, "<answer>-7</answer>", {}, 1.0),
    ("integer_answer", {}, "<answer>3/4</answer>", {}, 0.0),
    ("integer_answer", {}, "<answer>x + 1</answer>", {}, 0.0),
    ("language", {"language": "hi"}, HINDI, {}, 1.0),
    ("language", {"language": "hi"}, GOOD, {}, 0.0),
    ("language", {"language": "en"}, GOOD, {}, 1.0),
    ("language", {"language": "hi"}, "<think>दो plus दो</think>", {}, 0.5),
    ("language", {"language": "ru"}, r"<think>\frac{1}{2} это половина</think>", {}, 1.0),
    ("language", {"language": "hi"}, "<think>2 + 2 = 4</think>", {}, 0.0),
    ("soft_overlong_punishment", {"max_completion_len": 8, "soft_punish_cache": 4}, "x", {"ids": 4}, 0.0),
    ("soft_overlong_punishment", {"max_completion_len": 8, "soft_punish_cache": 4}, "x", {"ids": 6}, -0.5),
    ("soft_overlong_punishment", {"max_completion_len": 8, "soft_punish_cache": 4}, "x", {"ids": 8}, -1.0),
    ("cosine", {"max_len": 100}, "<answer>4</answer>" + " " * 82, {"answer": "4"}, 0.5),
    ("cosine", {"max_len": 100}, "<answer>4</answer>" + " " * 500, {"answer": "4"}, 0.5),
    ("cosine", {"max_len": 100}, "<answer>4</answer>" + " " * 32, {"answer": "4"}, 0.75),
    ("cosine", {"max_len": 100}, "<answer>5</answer>" + " " * 82, {"answer": "4"}, -0.5),
    ("cosine", {"max_len": 100}, "<answer>5</answer>" + " " * 32, {"answer": "4"}, -0.75),
    ("cosine", {}, "<answer>4</answer>", {"answer": ""}, None),
]


def _call(name, params, completion, extra, as_chat):
    columns = {key: [value] for key, value in extra.items() if key != "ids"}
    if "ids" in extra:
        columns["completion_ids"] = [[7] * extra["ids"]]
    given = [{"role": "assistant", "content": completion}] if as_chat else completion
    return get_reward(name, **params)(completions=[given], **columns)[0]


@pytest.mark.parametrize("as_chat", [False, True], ids=["text", "chat"])
@pytest.mark.parametrize(("name", "params", "completion", "extra", "expected"), CASES)
def test_reward_cases(name, params, completion, extra, expected, as_chat):
    score = _call(name, params, completion, extra, as_chat)
    assert score == pytest.approx(expected) if expected is not None else score is None


def test_every_reward_has_cases():
    assert {case[0] for case in CASES} | {"length"} == set(available())


def test_length_is_relative_within_each_prompt():
    """Kimi 1.5: the shortest correct answer gets 0.5, the longest -0.5; wrong answers never go above 0."""
    completions = [
        "<answer>4</answer>",
        "two and two: <answer>4</answer>",
        "<answer>5</answer>",
        "x <answer>9</answer>",
    ]
    prompts = [[{"role": "user", "content": "2+2?"}]] * 3 + [[{"role": "user", "content": "3*3?"}]]
    scores = get_reward("length")(completions=completions, answer=["4", "4", "4", "9"], prompts=prompts)
    assert scores[:3] == [0.5, -0.5, 0.0]  # the wrong one is as short as the shortest: min(0, 0.5) = 0
    assert scores[3] == 0.0  # alone in its group: nothing to compare with (open-r1 would mix the groups)


def test_length_counts_tokens_when_asked():
    reward = get_reward("length", unit="tokens")
    scores = reward(completions=["<answer>4</answer>"] * 2, answer=["4", "4"], completion_ids=[[1] * 3, [1] * 9])
    assert scores == [0.5, -0.5]


def test_cosine_punishes_short_wrong_answers_most():
    """Sign conventions, as documented: short correct > long correct > long wrong > short wrong."""
    reward = get_reward("cosine", max_len=50)
    short_right, long_right, long_wrong, short_wrong = reward(
        completions=["<answer>4</answer>", "<answer>4</answer>" + "." * 40, "<answer>5</answer>" + "." * 40, "5"],
        answer=["4"] * 4,
    )
    assert short_right > long_right > 0 > long_wrong > short_wrong


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("repetition_penalty", {"max_penalty": 1.0}, "max_penalty=1.0: input should be less than or equal to 0"),
        ("repetition_penalty", {"ngram_size": "3"}, "ngram_size='3': input should be a valid integer"),
        ("cosine", {"min_value_correct": 1.0, "max_value_correct": 0.5}, "min_value_correct must not be above"),
        ("language", {}, "needs `params: {language: ...}`"),
        ("language", {"language": "klingon"}, "language 'klingon' is not known; use one of en,"),
        ("soft_overlong_punishment", {"max_completion_len": 8, "soft_punish_cache": 8}, "must be below"),
        ("length", {"unit": "bytes"}, "unit='bytes': input should be 'characters' or 'tokens'"),
        ("format", {"think_prefiled": True}, "has no parameter 'think_prefiled'; its parameters: think_prefilled"),
    ],
)
def test_bad_parameters_are_caught_before_training(name, params, message):
    problems = check_reward_settings(name, params, {"max_completion_len": 512})
    assert len(problems) == 1 and message in problems[0]


def test_run_values_fill_only_unset_parameters():
    assert with_run_values("soft_overlong_punishment", {}, {"max_completion_len": 64}) == {"max_completion_len": 64}
    assert with_run_values("format", {"think_prefilled": False}, {"think_prefilled": True}) == {
        "think_prefilled": False
    }
    assert with_run_values("accuracy", {}, {"max_completion_len": 64, "think_prefilled": True}) == {
        "max_completion_len": 64  # strict mode scores a completion that used the whole budget as cut off
    }


def test_custom_reward_parameters_are_type_checked(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def short(completions, *, limit: int = 10, **kwargs):\n    return [0.0 for _ in completions]\n")
    assert check_reward_settings(f"{path}:short", {"limit": 5}) == []
    (problem,) = check_reward_settings(f"{path}:short", {"limit": "five"})
    assert "limit='five': input should be a valid integer" in problem
    with pytest.raises(RecipeError, match="has no function"):
        get_reward(f"{path}:long")


def test_readme_lists_every_reward_with_its_parameters():
    """The README's catalogue is written from the registry (`recipe rewards` prints the same)."""
    readme = (REPO / "README.md").read_text()
    for name in available():
        params, _ = describe(name)
        line = re.search(rf"^\| `{name}` \| (.*?) \|", readme, re.M)
        assert line, f"README has no catalogue row for {name}"
        assert line.group(1) == (f"`{params}`" if params else ""), name
