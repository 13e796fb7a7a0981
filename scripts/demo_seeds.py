"""Run the demo on several seeds and tabulate, seed by seed, what SFT and GRPO got right and wrong.

Usage: python scripts/demo_seeds.py [RECIPE] [--seeds 42-46] [--overwrite] [--set key=value ...]

For each seed, one after another: `recipe run RECIPE --set seed=N --set name=<name>-seedN --resume`
(a finished run with the same settings is reused, a stopped one continues, changed settings stop
the script with recipe's own message; --overwrite trains every seed again). Then it reads each
run's eval results and prints one markdown row per seed: SFT and GRPO accuracy, the gain, whether
it passes scripts/check_demo.py's checks of GRPO (the gain, the slips trained away), and each
stage's wrong answers by kind, as check_demo counts them (`recipe_cli.synthetic.mistake_kind`):
`slip`, the imperfect teacher's first-step answer that GRPO should train away; `arithmetic`, a step
computed wrong, which GRPO can hardly teach; `other`.

The demo as shipped takes 5.5 to 6 minutes a seed on 2 CPU cores: 7 seeds, about 40 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's recipe_cli, wherever run from
sys.path.insert(0, str(REPO / "scripts"))

from check_demo import KINDS, grpo_checks, mistakes  # noqa: E402

from recipe_cli.config import apply_override, parse_override, read_recipe_file, validate_recipe  # noqa: E402
from recipe_cli.errors import RecipeError  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    """``42-46`` or ``42,45,50`` -> the seeds.

    >>> parse_seeds("42-44"), parse_seeds("7, 9")
    ([42, 43, 44], [7, 9])
    """
    try:
        if "-" in text.strip("-"):
            first, last = (int(part) for part in text.split("-"))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise RecipeError(f"--seeds {text!r}: write a range (42-46) or a list (42,45,50)") from None
    if not seeds:
        raise RecipeError(f"--seeds {text!r} names no seed; write a range such as 42-46")
    return seeds


def run_seed(recipe: str, name: str, seed: int, sets: list[str], overwrite: bool) -> tuple[int, float]:
    """`recipe run` for one seed, its output on this terminal; returns its exit code and minutes."""
    command = [sys.executable, "-m", "recipe_cli", "run", recipe]
    command += [arg for value in [*sets, f"seed={seed}", f"name={name}"] for arg in ("--set", value)]  # the last wins
    command.append("--overwrite" if overwrite else "--resume")
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    code = subprocess.run(command, env=env).returncode
    return code, (time.perf_counter() - started) / 60


def table_row(seed: int, run_dir: Path, minutes: float) -> tuple[str, float, bool]:
    """One markdown row for a finished run, its gain (GRPO - SFT), and whether it passes check_demo's GRPO checks."""
    sft, grpo = (json.loads((run_dir / "eval" / f"{label}.json").read_text())["accuracy"] for label in ("sft", "grpo"))
    sft_kinds, grpo_kinds = (mistakes(run_dir / "eval" / f"{label}.jsonl") for label in ("sft", "grpo"))
    gain = grpo - sft
    passed = all(ok for ok, _ in grpo_checks(sft, grpo, sft_kinds, grpo_kinds))
    cells = [
        str(seed),
        f"{sft:.1%}",
        f"{grpo:.1%}",
        f"{gain * 100:+.1f}",
        "ok" if passed else "FAIL",
        " / ".join(str(sft_kinds[kind]) for kind in KINDS),
        " / ".join(str(grpo_kinds[kind]) for kind in KINDS),
        f"{minutes:.1f}",
    ]
    return "| " + " | ".join(cells) + " |", gain, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/demo.yaml")
    parser.add_argument("--seeds", default="42-46", help="a range (42-46) or a list (42,45,50)")
    parser.add_argument("--overwrite", action="store_true", help="train every seed again")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
        data = read_recipe_file(args.recipe)
        for text in args.sets:
            apply_override(data, *parse_override(text))
        recipe = validate_recipe(data, source=args.recipe)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows, gains, passed, code = [], [], 0, 0
    for seed in seeds:
        name = f"{recipe.name}-seed{seed}"
        code, minutes = run_seed(args.recipe, name, seed, args.sets, args.overwrite)
        if code == 2:  # a user mistake, e.g. a finished run with other settings: recipe said what to do
            break
        if code != 0:
            rows.append(f"| {seed} | run failed (exit {code}) |")
            continue
        row, gain, ok = table_row(seed, Path(recipe.runs_dir) / name, minutes)
        rows.append(row)
        gains.append(gain)
        passed += ok
    if rows:
        print(f"\n{args.recipe}; wrong answers by kind: slip / arithmetic / other (of each eval set)")
        print("| seed | SFT | GRPO | GRPO - SFT | check | SFT wrong | GRPO wrong | minutes |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    if gains:
        print(
            f"GRPO - SFT: median {statistics.median(gains) * 100:+.1f} points, lowest {min(gains) * 100:+.1f}; "
            f"{passed} of {len(seeds)} seeds pass scripts/check_demo.py's checks of GRPO"
        )
    if code == 2:
        return 2
    return 0 if passed == len(seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
