"""Throughput of the `accuracy` reward against calling math-verify's parse + verify directly.

Both score the same GSM8K-style completions (the GSM8K test golds when ../shared/data/gsm8k is
next to the checkout, else generated problems), half right and half wrong, in several answer
styles, side by side in one run; the script prints completions/s for each, the ratio, and how
often their verdicts agree (with the styles where they do not).

    python scripts/bench_rewards.py            # about a minute on 2 CPU cores
    python scripts/bench_rewards.py --n 1000   # fewer completions
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from recipe_cli.data import split_gsm8k_answer
from recipe_cli.rewards import get_reward
from recipe_cli.synthetic import generate_problems

GSM8K_TEST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
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
    parser.add_argument("--n", type=int, default=3000, help="completions to score (default 3000)")
    args = parser.parse_args()

    from math_verify import parse, verify

    texts, answers, styles, source = completions(args.n)
    reward = get_reward("accuracy")
    reward(completions=texts[:10], answer=answers[:10])  # warm up (regex compilation, imports)
    parse("$1$")

    started = time.perf_counter()
    ours = reward(completions=texts, answer=answers)
    ours_seconds = time.perf_counter() - started

    started = time.perf_counter()
    theirs = []
    for text, gold in zip(texts, answers, strict=True):
        theirs.append(float(verify(parse(gold), parse(text))))
    theirs_seconds = time.perf_counter() - started

    agree = sum(a == b for a, b in zip(ours, theirs, strict=True))
    disagreements = Counter(s for s, a, b in zip(styles, ours, theirs, strict=True) if a != b)
    ours_rate, theirs_rate = len(texts) / ours_seconds, len(texts) / theirs_seconds
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


if __name__ == "__main__":
    main()
