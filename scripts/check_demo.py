"""Check that the demo run learned (SFT beats the base model, GRPO beats SFT by 10+ points) and wrote its report.

Usage: python scripts/check_demo.py runs/demo
Reads runs/demo/eval/{base,sft,grpo}.json, prints them side by side with SFT's and GRPO's wrong
answers by kind (from eval/{sft,grpo}.jsonl), checks that GRPO trained away at least half of the
teacher's slips that SFT learned (the mechanism the demo shows, not only a higher number), that
runs/demo/report/report.md (which `recipe run` writes at the end) and every PNG it links exist,
and exits 1 if a claim fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's recipe_cli, wherever run from

from recipe_cli.synthetic import mistake_kind  # noqa: E402

MIN_PROBLEMS = 200
MIN_GRPO_GAIN = 0.10  # GRPO over SFT, in accuracy (10 points)
MAX_SLIPS_LEFT = 0.5  # GRPO's slips, as a share of SFT's
KINDS = ("slip", "arithmetic", "other")  # kinds of wrong answers, as recipe_cli.synthetic.mistake_kind names them
PNG_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")  # ![alt](plot.png), relative to the report


def missing_report_files(run_dir: Path) -> list[str]:
    """The report and the linked plots that are not there (the report links at least one plot)."""
    report = run_dir / "report" / "report.md"
    if not report.is_file():
        return [str(report)]
    links = PNG_LINK.findall(report.read_text())
    if not links:
        return [f"{report.parent}/*.png (the report links no plot)"]
    return [str(report.parent / link) for link in links if not (report.parent / link).is_file()]


def mistakes(eval_file: Path) -> Counter:
    """A stage's eval answers counted by kind: right, slip, arithmetic, other."""
    rows = [json.loads(line) for line in eval_file.read_text().splitlines() if line.strip()]
    return Counter(mistake_kind(row["completion"], row["extracted"], row["gold"]) for row in rows)


def grpo_checks(sft: float, grpo: float, sft_kinds: Counter, grpo_kinds: Counter) -> list[tuple[bool, str]]:
    """What GRPO must have done on top of SFT: a higher accuracy, and the teacher's slips trained away."""
    slips = sft_kinds["slip"], grpo_kinds["slip"]
    return [
        (
            grpo >= sft + MIN_GRPO_GAIN,
            f"GRPO beats SFT by at least {MIN_GRPO_GAIN * 100:.0f} points ({grpo - sft:+.1%})",
        ),
        (
            slips[1] <= MAX_SLIPS_LEFT * slips[0],
            f"GRPO trains away at least half of the teacher's slips SFT learned ({slips[0]} -> {slips[1]})",
        ),
    ]


def main(run_dir: str) -> int:
    folder = Path(run_dir) / "eval"
    try:
        runs = {label: json.loads((folder / f"{label}.json").read_text()) for label in ("base", "sft", "grpo")}
        kinds = {label: mistakes(folder / f"{label}.jsonl") for label in ("sft", "grpo")}
    except FileNotFoundError as error:
        print(f"missing eval result: {error.filename}; run `recipe run recipes/demo.yaml` first")
        return 1
    print(f"{'stage':<6} {'n':>5} {'accuracy':>9} {'format':>7}   wrong: slip / arithmetic / other")
    for label, summary in runs.items():
        line = f"{label:<6} {summary['n']:>5} {summary['accuracy']:>9.1%} {summary['format_rate']:>7.1%}"
        if label in kinds:
            line += "   " + " / ".join(str(kinds[label][kind]) for kind in KINDS)
        print(line)
    base, sft, grpo = (runs[label]["accuracy"] for label in ("base", "sft", "grpo"))
    checks = [
        (all(s["n"] >= MIN_PROBLEMS for s in runs.values()), f"every eval covers at least {MIN_PROBLEMS} problems"),
        (sft > base, "SFT beats the base model"),
        *grpo_checks(sft, grpo, kinds["sft"], kinds["grpo"]),
    ]
    missing = missing_report_files(Path(run_dir))
    report_claim = "the report and its plots exist" + (f" (missing: {', '.join(missing)})" if missing else "")
    checks.append((not missing, report_claim))
    for ok, claim in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {claim}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo", help="the demo's run folder (default: runs/demo)")
    sys.exit(main(parser.parse_args().run_dir))
