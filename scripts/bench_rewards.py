"""The `accuracy` reward against math-verify: speed on numbers, agreement with labelled MATH-style pairs.

Part 1, speed: both score the same GSM8K-style completions (the GSM8K test golds when
../shared/data/gsm8k is next to the checkout, else generated problems), half right and half
wrong, in several answer styles; the script prints completions/s for each, the ratio (target: at
least 20x), and how often their verdicts agree (with the styles where they do not).

Part 2, agreement: both score the labelled (gold, completion) pairs of
tests/data/answer_pairs.jsonl (MATH, NuminaMath, OpenThoughts and R1-format solutions: intervals,
sets, tuples, several boxes, text, equations, inequalities, ratios, percentages, units, bare
LaTeX, other languages); the script prints how often each agrees with the labels, overall, on the
held-out pairs, and per category, and lists the pairs where one is right and the other wrong.
math-verify gets the gold wrapped in dollars (`$gold$`; a bare gold reads worse) and the whole
completion; the "m-v extracted" column gives it the answer the reward extracted instead, to
compare the comparisons alone. The pairs marked holdout were written after the checker was built
and labelled before it ran on them; on its first run it agreed on 143 of those 148, and the five
misreadings (intervals with ";" and French "]a;b]" ends, a decimal comma, "x=1, y=2" against a
point, boxes labelled "(1)", "(2)") were then fixed.

Part 3, a LaTeX batch: a GRPO batch of MATH-style completions equal to their golds only after algebra
scored one after another and through `score_all`, which sends the batch's math-verify comparisons
to the worker processes side by side; the script prints both rates and their ratio (2.18x with
2 workers on an idle 2-core machine).

    python scripts/bench_rewards.py            # about a minute on 2 CPU cores
    python scripts/bench_rewards.py --n 1000   # fewer completions in part 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from recipe_cli.answers import LATEX_WORKERS, _math_verify, extract_answer, score_completion
from recipe_cli.data import split_gsm8k_answer
from recipe_cli.rewards import get_reward, score_all
from recipe_cli.synthetic import generate_problems

REPO = Path(__file__).resolve().parent.parent
GSM8K_TEST = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
PAIRS = REPO / "tests" / "data" / "answer_pairs.jsonl"
ROUNDS = 3  # timed rounds of part 1, each side
STYLES = {
    "boxed": "Adding the parts gives the total.\nSo the answer is $\\boxed{{{}}}$.",
    "answer is": "Adding the parts gives the total. The answer is {}.",
    "boxed, separators": "Adding the parts gives the total: $\\boxed{{{:,}}}$",
}
# Styles GRPO recipes ask for that math-verify alone does not read; scored on right answers only.
OTHER_STYLES = {"answer tag": "<think>\nAdding the parts.\n</think>\n<answer>{}</answer>", "hashes": "Adding.\n#### {}"}


def golds() -> tuple[list[str], str]:
    if GSM8K_TEST.is_file():
        rows = [json.loads(line) for line in GSM8K_TEST.read_text().splitlines()]
        return [split_gsm8k_answer(row["answer"])[1] for row in rows], f"GSM8K test golds ({GSM8K_TEST})"
    return [row["answer"] for row in generate_problems("test", 1000, seed=0)], "generated problems"


def completions(n: int) -> tuple[list[str], list[str], list[str], str]:
    """``n`` completions (styles x right/wrong, cycling over the golds), their golds and their styles."""
    gold_list, source = golds()
    texts, answers, styles = [], [], []
    index = 0
    while len(texts) < n:
        gold = gold_list[index % len(gold_list)]
        for style, template in STYLES.items():
            for value in (int(gold), int(gold) + 1):
                texts.append(template.format(value))
                answers.append(gold)
                styles.append(style)
        index += 1
    return texts[:n], answers[:n], styles[:n], source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="completions to score in part 1 (default 3000)")
    parser.add_argument("--examples", type=int, default=2, help="pairs shown per category where ours alone is right")
    parser.add_argument("--batch", type=int, default=64, help="LaTeX completions per batch in part 3 (default 64)")
    args = parser.parse_args()
    bench_numbers(args.n)
    bench_pairs(args.examples)
    bench_latex_batch(args.batch)


def bench_numbers(n: int) -> None:
    """Part 1: completions/s on GSM8K-style numbers, and the speed ratio."""

    from math_verify import parse, verify

    texts, answers, styles, source = completions(n)
    reward = get_reward("accuracy")
    reward(completions=texts[:10], answer=answers[:10])  # warm up (regex compilation, imports)
    parse("$1$")

    ours_times, theirs_times = [], []
    for _ in range(ROUNDS):  # alternating, so that a machine that slows down slows both
        started = time.perf_counter()
        ours = reward(completions=texts, answer=answers)
        ours_times.append(time.perf_counter() - started)

        started = time.perf_counter()
        theirs = []
        for text, gold in zip(texts, answers, strict=True):
            theirs.append(float(verify(parse(gold), parse(text))))
        theirs_times.append(time.perf_counter() - started)
    ours_seconds, theirs_seconds = statistics.median(ours_times), statistics.median(theirs_times)

    agree = sum(a == b for a, b in zip(ours, theirs, strict=True))
    disagreements = Counter(s for s, a, b in zip(styles, ours, theirs, strict=True) if a != b)
    ours_rate, theirs_rate = len(texts) / ours_seconds, len(texts) / theirs_seconds
    print(f"== speed on numbers (median of {ROUNDS} alternating rounds) ==")
    print(f"completions: {len(texts)} ({', '.join(STYLES)}; half right, half wrong) from {source}")
    print(f"accuracy reward:        {ours_rate:12,.0f} completions/s  ({ours_seconds:.3f} s)")
    print(f"math-verify parse+verify: {theirs_rate:10,.0f} completions/s  ({theirs_seconds:.3f} s)")
    print(f"speed-up: {ours_rate / theirs_rate:.0f}x (target: at least 20x)")
    print(f"identical verdicts: {agree}/{len(texts)} ({agree / len(texts):.2%})")
    print(f"accuracy reward right on: {sum(ours):.0f} ({sum(ours) / len(texts):.1%}; half of them are right)")
    for style, count in disagreements.most_common():
        example = next(
            (t, g, a, b)
            for t, g, a, b, s in zip(texts, answers, ours, theirs, styles, strict=True)
            if s == style and a != b
        )
        print(
            f"  differ on {count} '{style}' completions, e.g. gold {example[1]}: ours {example[2]}, "
            f"math-verify {example[3]} on {example[0]!r}"
        )

    gold_list = answers[::6][:500]
    for style, template in OTHER_STYLES.items():
        right = [template.format(gold) for gold in gold_list]
        ours_right = sum(reward(completions=right, answer=gold_list))
        theirs_right = sum(float(verify(parse(g), parse(t))) for t, g in zip(right, gold_list, strict=True))
        print(
            f"right answers written as '{style}' ({len(right)}): accuracy reward {ours_right / len(right):.1%}, "
            f"math-verify {theirs_right / len(right):.1%}"
        )


def math_verify_verdict(gold: str, completion: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(completion)))
    except Exception:  # math-verify raising is a wrong answer, as it is for the reward
        return False


def bench_pairs(examples: int) -> None:
    """Part 2: agreement of each checker with the labelled pairs, and where they differ."""
    pairs = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    score_completion(r"\sqrt{2}", r"\sqrt{3}")  # start the math-verify worker outside the timing
    started = time.perf_counter()
    ours = [bool(score_completion(p["completion"], p["gold"])[1]) for p in pairs]
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    theirs = [math_verify_verdict(p["gold"], p["completion"]) for p in pairs]
    theirs_seconds = time.perf_counter() - started
    # math-verify's comparison alone: it judges the answer our extraction read (None: nothing to judge)
    extracted = [extract_answer(p["completion"]) for p in pairs]
    judged = [a is not None and math_verify_verdict(p["gold"], f"${a}$") for p, a in zip(pairs, extracted, strict=True)]

    def agreement(indices: list[int], verdicts: list[bool]) -> str:
        right = sum(verdicts[i] == pairs[i]["correct"] for i in indices)
        return f"{right}/{len(indices)} ({right / len(indices):.1%})"

    everything = list(range(len(pairs)))
    held_out = [i for i in everything if pairs[i].get("split") == "holdout"]
    positives = sum(p["correct"] for p in pairs)
    wrong = len(pairs) - positives
    print(f"\n== agreement with {len(pairs)} labelled pairs ({positives} right answers, {wrong} wrong) ==")
    print(f"accuracy reward (flexible): {agreement(everything, ours)}  ({len(pairs) / ours_seconds:,.0f} pairs/s)")
    print(f"math-verify:                {agreement(everything, theirs)}  ({len(pairs) / theirs_seconds:,.0f} pairs/s)")
    print(f"math-verify on the answers the reward extracted: {agreement(everything, judged)}")
    if held_out:
        print(
            f"on the {len(held_out)} pairs written after the checker: accuracy reward {agreement(held_out, ours)}, "
            f"math-verify {agreement(held_out, theirs)} (on the extracted answers {agreement(held_out, judged)})"
        )
    print(f"{'category':14} {'pairs':>5} {'ours':>6} {'m-v':>6} {'ours only':>9} {'m-v only':>8} {'m-v extracted':>13}")
    categories = sorted({p["category"] for p in pairs})
    only_ours, only_theirs = [], []
    for category in categories:
        members = [i for i in everything if pairs[i]["category"] == category]
        ours_right = [i for i in members if ours[i] == pairs[i]["correct"]]
        theirs_right = [i for i in members if theirs[i] == pairs[i]["correct"]]
        alone = [i for i in ours_right if i not in theirs_right]
        beaten = [i for i in theirs_right if i not in ours_right]
        only_ours += alone[:examples]
        only_theirs += beaten
        judged_right = sum(judged[i] == pairs[i]["correct"] for i in members)
        print(
            f"{category:14} {len(members):5} {len(ours_right) / len(members):6.0%} "
            f"{len(theirs_right) / len(members):6.0%} {len(alone):9} {len(beaten):8} "
            f"{judged_right / len(members):13.0%}"
        )
    print(f"\nmath-verify right, accuracy reward wrong ({len(only_theirs)}):")
    for i in only_theirs:
        print(f"  [{pairs[i]['category']}] gold {pairs[i]['gold']!r}, label {pairs[i]['correct']}: {_tail(pairs[i])}")
    print(f"\naccuracy reward right, math-verify wrong (up to {examples} per category):")
    for i in only_ours:
        print(f"  [{pairs[i]['category']}] gold {pairs[i]['gold']!r}, label {pairs[i]['correct']}: {_tail(pairs[i])}")


def _tail(pair: dict) -> str:
    return repr(pair["completion"][-70:])


def latex_batch(size: int, offset: int) -> tuple[list[str], list[str]]:
    """``size`` MATH-style completions whose answers equal their golds only after algebra (math-verify's work).

    Every third one is wrong; ``offset`` keeps batches distinct, so no verdict comes from a cache.
    """
    shapes = [
        (r"\sqrt{{{square}}}", r"So $x = \boxed{{{a}\sqrt{{{b}}}}}$."),
        (r"(x+{a})^2", r"Expanding, the answer is $\boxed{{x^2+{two_a}x+{a_squared}}}$."),
        (r"\frac{{{a}\pi}}{{{b}}}", r"The area is $\boxed{{\frac{{{a}}}{{{b}}}\pi}}$."),
        (r"\frac{{\sqrt{{{b}}}}}{{{a}}}", r"Rationalising, $\boxed{{\frac{{1}}{{{a}}}\sqrt{{{b}}}}}$."),
    ]
    texts, golds = [], []
    for i in range(size):
        gold, completion = shapes[i % len(shapes)]
        a, b = offset + i + 2, 2 * (offset + i) + 3
        wrong = i % 3 == 2
        golds.append(gold.format(a=a, b=b, square=a * a * b))
        answer_a = a + 1 if wrong else a
        texts.append(completion.format(a=answer_a, b=b, two_a=2 * a, a_squared=answer_a * answer_a))
    return texts, golds


def bench_latex_batch(size: int, rounds: int = 3) -> None:
    """Part 3: one LaTeX batch scored one completion at a time, then side by side through the workers."""
    # start every worker before timing (importing sympy takes a second or two per worker)
    warm_texts, warm_golds = latex_batch(4 * LATEX_WORKERS, offset=10_000)
    score_all(warm_texts, warm_golds, 5.0, "flexible", [False] * len(warm_texts))
    seconds = {"one at a time": 0.0, "side by side": 0.0}
    verdicts = {}
    for round_index in range(rounds):
        for name in list(seconds) if round_index % 2 == 0 else list(seconds)[::-1]:
            texts, golds = latex_batch(size, offset=100 * round_index)
            _math_verify.cache_clear()  # every round compares afresh
            started = time.perf_counter()
            if name == "one at a time":
                result = [score_completion(t, g, 5.0)[1] for t, g in zip(texts, golds, strict=True)]
            else:
                result = score_all(texts, golds, 5.0, "flexible", [False] * len(texts))
            seconds[name] += time.perf_counter() - started
            verdicts.setdefault(name, []).extend(result)
    same = verdicts["one at a time"] == verdicts["side by side"]
    right = sum(bool(v) for v in verdicts["side by side"])
    print(f"\n== a LaTeX batch of {size} completions, {rounds} rounds, {LATEX_WORKERS} math-verify workers ==")
    for name, total in seconds.items():
        print(f"{name:14} {size * rounds / total:8,.0f} completions/s  ({total / rounds:.3f} s per batch)")
    print(f"side by side / one at a time: {seconds['one at a time'] / seconds['side by side']:.2f}x")
    expected = rounds * sum(i % 3 != 2 for i in range(size))
    print(f"identical verdicts: {same}; right: {right}/{len(verdicts['side by side'])} ({expected} expected)")


if __name__ == "__main__":
    main()
