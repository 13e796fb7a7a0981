"""The answer checker at MATH level, and the strict and flexible modes of the accuracy reward.

``tests/data/answer_pairs.jsonl`` holds labelled (gold, completion) pairs written in the styles of
MATH, NuminaMath and OpenThoughts solutions and of R1-format completions: intervals, sets and
tuples, several boxes, text and choice letters, equations, inequalities, ratios, percentages,
units, bare LaTeX and final-answer lines in other languages, each with right and wrong answers.
``scripts/bench_rewards.py`` scores the same pairs with math-verify.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from recipe_cli.answer_forms import match_forms, parse_form
from recipe_cli.answers import check_answer, extract_answer, final_boxed, score_completion
from recipe_cli.metrics import majority_answer
from recipe_cli.rewards import check_reward_settings, get_reward, with_run_values

PAIRS_FILE = Path(__file__).parent / "data" / "answer_pairs.jsonl"
PAIRS = [json.loads(line) for line in PAIRS_FILE.read_text(encoding="utf-8").splitlines()]
CATEGORIES = {
    "number",
    "bare_latex",
    "interval",
    "membership",
    "inequality",
    "set_tuple",
    "multi_boxed",
    "text",
    "equation",
    "ratio",
    "percent",
    "units",
    "expression",
    "multilingual",
}
STRICT_FORMAT = ("</answer>", "\\boxed", "####")


def test_the_labelled_pairs_cover_every_category_both_ways():
    assert len(PAIRS) >= 500
    assert {pair["category"] for pair in PAIRS} == CATEGORIES
    counts = Counter((pair["category"], pair["correct"]) for pair in PAIRS)
    for category in CATEGORIES:
        assert counts[category, True] >= 5 and counts[category, False] >= 3, category
    assert len({(pair["gold"], pair["completion"]) for pair in PAIRS}) == len(PAIRS)  # no pair twice


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{p['category']}-{i}" for i, p in enumerate(PAIRS)])
def test_labelled_pair(pair):
    extracted, correct = score_completion(pair["completion"], pair["gold"])
    assert correct is pair["correct"], f"read {extracted!r} against gold {pair['gold']!r}"


def test_strict_mode_agrees_on_every_pair_written_in_a_strict_format():
    pairs = [p for p in PAIRS if any(marker in p["completion"] for marker in STRICT_FORMAT)]
    assert len(pairs) > 400
    wrong = [p for p in pairs if score_completion(p["completion"], p["gold"], mode="strict")[1] is not p["correct"]]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize(
    ("completion", "gold", "correct"),
    [
        (r"\frac{10}{9}", "10/9", True),  # bare LaTeX: its last expression, not its last digit
        (r"\frac{10}{9}", "9", False),
        (r"$\sqrt{2}$", r"\sqrt{2}", True),
        (r"$\sqrt{2}$", "2", False),
        ("$[0,1)$", "$[0,1)$", True),
        ("$[0,9)$", "$(0,9)$", False),  # the ends of an interval count
        (r"\boxed{1}, \boxed{2}, \boxed{3}", r"\{1,2,3\}", True),
        ("$E$", r"\text{E}", True),
        (r"$x \in [-2,7]$", r"\boxed{[-2, 7]}", True),
        ("Réponse : 220 $", "220", True),
        (r"答案：每份应该是 (\frac{2}{5}) 吨", r"\frac{2}{5}", True),
    ],
)
def test_the_reported_misreadings(completion, gold, correct):
    assert score_completion(completion, gold)[1] is correct


@pytest.mark.parametrize(
    ("completion", "extracted"),
    [
        (r"The solutions are $\boxed{1}$, $\boxed{2}$, and $\boxed{3}$.", "1, 2, 3"),
        (r"So $x = \boxed{-2}$ or $x = \boxed{3}$.", "-2, 3"),
        ("(a) $\\boxed{6}$\n(b) $\\boxed{15}$", "6, 15"),
        (r"First $a = \boxed{2}$, then substituting it, the count is $\boxed{3}$.", "3"),  # far apart: the last
        (r"$\boxed{18}$ $\boxed{18}$", "18"),  # the same box twice is one answer
        (r"Hence the area is $12\sqrt{3}$.", r"12\sqrt{3}"),
        ("She pays $5 for each and $20 in all", "20"),  # prices, not a formula
        ("Die Antwort ist 15.", "15."),  # as written; the check reads the number
        ("La respuesta es $\\sqrt{5}$.", "\\sqrt{5}"),
        ("所以答案是 $12$。", "12"),
        ("答：共有 36 个苹果。", "36"),
        ("よって、答えは 8 です。", "8"),
        ("अतः उत्तर 12 है।", "12"),
        ("الإجابة: 9", "9"),
        ("Ответ: $x \\in [1, 3]$", "x \\in [1, 3]"),
        ("**Antwort:** $\\frac{5}{6}$", "\\frac{5}{6}"),
        ("<answer>The probability is $\\frac{5}{36}$.</answer>", "\\frac{5}{36}"),
    ],
)
def test_extraction(completion, extracted):
    assert extract_answer(completion) == extracted


def test_final_boxed_reads_nested_braces_and_keeps_unclosed_boxes_out():
    assert final_boxed(r"\boxed{\frac{1}{2}} and \boxed{\sqrt{\frac{3}{4}}}") == r"\frac{1}{2}, \sqrt{\frac{3}{4}}"
    assert final_boxed(r"\boxed{7} then \boxed{8") == "7"


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        ("(1, 2)", "3", False),  # a tuple is not its last number
        ("1, 2, 3", "3", False),
        ("2,5", "2.5", True),  # a decimal comma against a number
        ("1,000", "1000", True),
        ("25%", "0.25", True),
        ("0.25", "25%", True),
        ("25", "0.25", False),
        (r"|x| \le 1", "[-1, 1]", True),
        (r"x < -1 \text{ or } x > 2", r"(-\infty,-1)\cup(2,\infty)", True),
        ("x=1, y=2", "(1, 2)", True),
        ("x=1, x=2", "(1, 2)", False),  # two values of x are not a point
        ("22:42", "11:21", True),
        (r"\textbf{(D)}", r"\textbf{(D)}\ 12", True),
        (r"\textbf{(D)}\ 11", r"\textbf{(D)}\ 12", False),  # the right letter with a wrong value
        (r"\text{odd}", r"\text{even}", False),
    ],
)
def test_check_answer_by_shape(answer, gold, correct):
    assert check_answer(answer, gold) is correct


def test_shapes_compare_without_a_value_checker_when_they_differ():
    """Brackets, sizes and kinds are decided before any value is compared (no worker call needed)."""

    def never(gold, answer):
        raise AssertionError(f"compared values {gold!r}, {answer!r}")

    assert match_forms(parse_form("(a, b)"), parse_form("[a, b)"), never) is False
    assert match_forms(parse_form(r"\{a, b\}"), parse_form("a"), never) is False
    assert match_forms(parse_form(r"\text{odd}"), parse_form("(a, b)"), never) is False


def test_a_pathological_part_of_a_set_is_cut_off_and_counted_wrong():
    started = time.perf_counter()
    assert check_answer(r"\{9^{9^{9^9}}, 1\}", r"\{3, 1\}", timeout=1.0) is False
    assert time.perf_counter() - started < 30  # worker start-up (sympy import) is not part of the bound


RUNAWAY = "9" * 5000  # more digits than Python turns into an int (sys.get_int_max_str_digits(): 4300)


@pytest.mark.parametrize(
    "completion",
    [
        f"The answer is {RUNAWAY}",
        f"<answer>{RUNAWAY}</answer>",
        f"<answer>0.{RUNAWAY}</answer>",
        f"<answer>1,{RUNAWAY}</answer>",  # a decimal comma
        f"<answer>1/{RUNAWAY}</answer>",
        f"<answer>\\frac{{{RUNAWAY}}}{{2}}</answer>",
    ],
    ids=["sentence", "integer", "decimal", "decimal-comma", "fraction", "latex-fraction"],
)
@pytest.mark.parametrize("mode", ["strict", "flexible"])
def test_a_runaway_number_is_a_wrong_answer_not_a_crash(completion, mode):
    assert get_reward("accuracy", mode=mode, latex_timeout=1.0)([completion], answer=["18"]) == [0.0]
    answer = extract_answer(completion, "flexible")
    assert majority_answer([answer, answer, "18"], numeric_gold=True) == answer  # maj@k counts its votes


@pytest.mark.parametrize(
    ("completion", "mode"),
    [
        ("\\(x " * 20000, "flexible"),  # formulas opened and never closed: 80k characters
        ("\\[x " * 20000, "flexible"),
        ("<answer> " * 10000, "strict"),  # answer tags opened and never closed
    ],
    ids=["inline-formula", "display-formula", "answer-tag"],
)
def test_a_runaway_completion_is_read_in_linear_time(completion, mode):
    started = time.perf_counter()
    extract_answer(completion, mode)
    assert time.perf_counter() - started < 2.0  # 15-30 s when each opener searched the rest of the text


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("word " * 8000 + "18", 1.0),  # 40k characters of prose, then the number
        ("18" + "." * 40000 + " dollars", 1.0),  # a degenerate run of dots or spaces before a unit
        ("19" + " " * 40000 + "dollars", 0.0),
    ],
    ids=["prose", "dots", "spaces"],
)
@pytest.mark.parametrize("mode", ["strict", "flexible"])
def test_a_long_answer_is_judged_in_linear_time(answer, score, mode):
    started = time.perf_counter()
    assert get_reward("accuracy", mode=mode)([f"<answer>{answer}</answer>"], answer=["18"]) == [score]
    assert time.perf_counter() - started < 2.0  # 18-29 s when regexes anchored at the end tried every position


def test_a_fresh_worker_is_ready_to_compare_within_the_bound():
    """The first comparison of a new worker (one per pathological answer killed) is not charged its start-up."""
    from recipe_cli.answers import _LatexJudges

    judges = _LatexJudges(size=1)
    try:
        judges._release(judges._acquire())  # started and ready: the start is never part of a bound
        assert judges.compare("(x+2)^2", "x^2+4x+4", timeout=0.3) is True  # took 0.4-0.6 s of loading on first use
    finally:
        judges.close()


UNFINISHED = "<think>\nShe has 16 - 3 - 4 = 9 eggs left, and 9 * 2 = 18"


def test_strict_mode_does_not_reward_an_unfinished_thought():
    accuracy = get_reward("accuracy")
    assert accuracy([UNFINISHED], answer=["18"]) == [1.0]  # flexible: the last number
    assert get_reward("accuracy", mode="strict")([UNFINISHED], answer=["18"]) == [0.0]


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("<think>x</think><answer>18</answer>", 1.0),
        ("<think>x</think><answer>$\\boxed{18}$</answer>", 1.0),
        ("<think>x</think><answer>१८</answer>", 1.0),  # Devanagari digits (recipes/gsm8k-hindi.yaml)
        ("<think>x</think><answer>१८ रुपये</answer>", 1.0),
        ("<think>x</think><answer>١٨</answer>", 1.0),  # Arabic-Indic
        ("<think>x</think><answer>１８</answer>", 1.0),  # full width
        ("<think>x</think><answer>१९</answer>", 0.0),
        ("<think>x</think><answer>₹18</answer>", 1.0),  # rupees, as GSM8K's dollars
        ("<think>x</think><answer>¥18</answer>", 1.0),
        ("<think>x</think><answer>₹19</answer>", 0.0),
        ("so the total is \\boxed{18}", 1.0),
        ("Janet makes 18 dollars.\n#### 18", 1.0),
        ("<think>x</think><answer>17</answer> 18", 0.0),  # the tag, not the last number
        ("The answer is 18.", 0.0),
        ("Answer: 18", 0.0),
        ("<think>x</think><answer>18", 0.0),  # the tag never closed
        ("18", 0.0),
    ],
)
def test_strict_mode_reads_only_the_asked_formats(completion, score):
    assert get_reward("accuracy", mode="strict")([completion], answer=["18"]) == [score]


def test_strict_mode_scores_a_completion_that_used_its_whole_budget_as_cut_off():
    strict = get_reward("accuracy", mode="strict", max_completion_len=8)
    done = "<think>x</think><answer>18</answer>"
    assert strict([done, done], answer=["18", "18"], completion_ids=[[1] * 7, [1] * 8]) == [1.0, 0.0]
    assert strict([done], answer=["18"]) == [1.0]  # no token ids: nothing counts as cut off
    flexible = get_reward("accuracy", max_completion_len=8)
    assert flexible([done], answer=["18"], completion_ids=[[1] * 8]) == [1.0]
    assert strict([done], answer=[""], completion_ids=[[1] * 8]) == [None]  # an unreadable gold stays None


def test_mode_is_checked_when_the_recipe_is_validated():
    (problem,) = check_reward_settings("accuracy", {"mode": "strcit"}, {"max_completion_len": 64})
    assert "mode='strcit': input should be 'strict' or 'flexible'" in problem
    assert with_run_values("accuracy", {"mode": "strict"}, {"max_completion_len": 64}) == {
        "mode": "strict",
        "max_completion_len": 64,
    }


def test_shipped_training_recipes_train_with_strict_accuracy():
    from recipe_cli.config import load_recipe

    recipes = Path(__file__).resolve().parent.parent / "recipes"
    for path in sorted(recipes.glob("*.yaml")):
        recipe, name = load_recipe(path), path.name
        (accuracy,) = [reward for reward in recipe.grpo.rewards if reward.name == "accuracy"]
        assert accuracy.params == {"mode": "strict"}, name


@pytest.mark.parametrize(
    ("completion", "gold", "strict", "flexible"),
    [
        ("<answer>18 km/h</answer>", "18", 1.0, 1.0),  # a unit with a slash or a power is still a unit
        ("#### 18 m/s", "18", 1.0, 1.0),
        (r"\boxed{18 km/h}", "18", 1.0, 1.0),
        ("<answer>18 cm^2</answer>", "18", 1.0, 1.0),
        ("<answer>18 m²</answer>", "18", 1.0, 1.0),
        ("The answer is 18 km/h.", "18", 0.0, 1.0),
        ("<answer>18 km/h</answer>", "36", 0.0, 0.0),
        ("<answer>3 x^2</answer>", "3", 0.0, 0.0),  # a power of one letter is algebra, not a unit
        ("<answer>3x</answer>", "3", 0.0, 0.0),  # an expression with a variable is not a number
        ("<answer>1.8e1</answer>", "18", 1.0, 1.0),  # scientific notation is a number
        ("#### 1.8E+1", "18", 1.0, 1.0),
        ("<answer>1.8e1</answer>", "1.8", 0.0, 0.0),
        (r"\boxed{6.02 \times 10^{23}}", "602000000000000000000000", 1.0, 1.0),  # exactly, not as a float
        (r"\boxed{6.02 \times 10^{23}}", "602000000000000000000001", 0.0, 0.0),
        ("<answer>1.8 x 10^1</answer>", "18", 1.0, 1.0),
        ("<answer>The distance is 1.5e3 meters</answer>", "1500", 1.0, 1.0),  # in a sentence, not its last digit
        ("<answer>1e999999999</answer>", "18", 0.0, 0.0),  # no billion-digit integer
        (r"\boxed{\$1.45 \text{ million}}", "1450000", 1.0, 1.0),  # a scale word multiplies
        ("<answer>1.45 million dollars</answer>", "1450000", 1.0, 1.0),
        ("<answer>She raised 1.45 million dollars</answer>", "1450000", 1.0, 1.0),
        ("The answer is $1.45 million.", "1450000", 0.0, 1.0),
        ("<answer>18 thousand</answer>", "18", 0.0, 0.0),  # not a unit to drop
        ("<answer>2 dozen</answer>", "2", 1.0, 1.0),  # answers "how many dozen"
        (r"<answer>Janet makes \$18 every day.</answer>", "18", 1.0, 1.0),  # Markdown's escaped dollar
        (r"<answer>Janet makes \$17 every day.</answer>", "18", 0.0, 0.0),
        (r"<answer>The price went up by 25\%.</answer>", "25", 1.0, 1.0),
        (r"**Answer:** Janet makes \$18 daily.", "18", 0.0, 1.0),
        ("<answer>18,50 €</answer>", "18.5", 1.0, 1.0),  # a decimal comma in a price
        ("<answer>€18,50</answer>", "18.5", 1.0, 1.0),
        ("Antwort: 3,75 €.", "3.75", 0.0, 1.0),
        ("<answer>2,5 kg</answer>", "2.5", 1.0, 1.0),
        ("<answer>1,000 €</answer>", "1000", 1.0, 1.0),  # three digits after the comma: a thousand
        ("<answer>18,50 €</answer>", "1850", 0.0, 0.0),
        ("<answer>18 (9×2)</answer>", "18", 1.0, 1.0),  # a remark after the number, not a product
        ("#### 18 (9 x 2)", "18", 1.0, 1.0),
        ("The answer is 18 (9×2).", "18", 0.0, 1.0),
        ("<answer>She has 18 apples (9 boxes of 2).</answer>", "18", 1.0, 1.0),
        ("<answer>18 (9×2)</answer>", "324", 0.0, 0.0),
        ("<answer>18 (or 20)</answer>", "20", 0.0, 0.0),  # a hedge gives two answers
        ("<answer>18 (or 20)</answer>", "18", 0.0, 0.0),
        ("<answer>18 (o 20)</answer>", "18", 0.0, 0.0),  # Spanish, Italian
        ("<answer>18 (by 2 o'clock)</answer>", "18", 1.0, 1.0),  # a lone "o" that is not "or"
        ("<answer>120 minutes (or 2 hours)</answer>", "120", 1.0, 1.0),  # the same quantity in another unit
        ("<answer>2 hours (or 120 minutes)</answer>", "120", 0.0, 0.0),  # the first answer is the one judged
        ("<answer>$0.50 (or 50 cents)</answer>", "0.5", 1.0, 1.0),
        ("The answer is 120 minutes (or 2 hours).", "120", 0.0, 1.0),
        ("<answer>0.5 (or 1/2)</answer>", "0.5", 1.0, 1.0),  # the same number written another way
        ("<answer>50% (or 0.5)</answer>", "50", 1.0, 1.0),
        ("<answer>$18 (or 20 dollars)</answer>", "18", 0.0, 0.0),  # one unit, two amounts: a hedge
        ("<answer>18 apples (or 20 apples)</answer>", "18", 0.0, 0.0),
        ("<answer>18 apples (or 20 if she keeps one)</answer>", "18", 0.0, 0.0),
        (r"\boxed{18 \text{ (or 20)}}", "18", 0.0, 0.0),  # a hedge written as text in the box
        (r"\boxed{120 \text{ minutes (or 2 hours)}}", "120", 1.0, 1.0),
        (r"\boxed{18 \text{ dollars (9 eggs at 2 each)}}", "18", 1.0, 1.0),
        ("#### **18**", "18", 1.0, 1.0),  # bold, as in <answer>**18**</answer>
        ("<answer>She loses −18 dollars</answer>", "-18", 1.0, 1.0),  # a minus sign (U+2212) in a sentence
        ("So she loses −18 dollars", "-18", 0.0, 1.0),
        ("So she loses −18 dollars", "18", 0.0, 0.0),
        ("<answer>The total is 1\u202f000\u202f000 dollars</answer>", "1000000", 1.0, 1.0),  # SI thin spaces
        ("The total is 1\u00a0000 dollars", "1000", 0.0, 1.0),
        ("<answer>She pays 3 100 dollar bills</answer>", "100", 1.0, 1.0),  # in a sentence only thin spaces group
        ("<answer>3 1/2</answer>", "7/2", 1.0, 1.0),  # a mixed number, as 3\frac{1}{2} is
        ("<answer>-3 1/2 cups</answer>", "-3.5", 1.0, 1.0),
        ("She needs 3 1/2 cups of flour.", "3.5", 0.0, 1.0),
        ("<answer>3 1/2</answer>", "3/2", 0.0, 0.0),  # not the product
    ],
)
def test_gsm8k_answer_forms(completion, gold, strict, flexible):
    scores = [get_reward("accuracy", mode=mode)([completion], answer=[gold])[0] for mode in ("strict", "flexible")]
    assert scores == [strict, flexible]
