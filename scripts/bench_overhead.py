"""What `recipe` costs over a plain TRL script: the demo's GRPO stage both ways, side by side.

Both runs train the demo's tiny model with GRPOTrainer on the same prompts (dumped from recipe's
own data chain), the same rewards (recipe's `accuracy` and `format` functions, so reward time is
the same), and the same GRPOConfig (the one recipe builds, passed to the plain script as JSON).
The runs alternate, recipe first in even rounds and plain first in odd ones, so that a machine
that slows down or speeds up hurts both. Printed: the median whole-process wall time and
training seconds per step of each, and their ratios (targets: step <= 1.03x, process <= 1.05x);
then the wall time of `recipe --help` and `recipe validate recipes/gsm8k.yaml` (targets 0.5 s
and 1.5 s).

    python scripts/bench_overhead.py              # 3 rounds of 20 GRPO steps: ~10 minutes on 2 cores
    python scripts/bench_overhead.py --rounds 5 --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PLAIN_SCRIPT = """
import json, sys
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer
from recipe_cli.rewards import get_reward

spec = json.load(open(sys.argv[1]))
tokenizer = AutoTokenizer.from_pretrained(spec["model"])
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype="float32")
rows = [json.loads(line) for line in open(spec["data"])]
rewards = [get_reward(name, **params) for name, params in spec["rewards"]]
trainer = GRPOTrainer(
    model=model,
    reward_funcs=rewards,
    args=GRPOConfig(**spec["config"]),
    train_dataset=Dataset.from_list(rows),
    processing_class=tokenizer,
)
trainer.train()
trainer.state.save_to_json(spec["config"]["output_dir"] + "/trainer_state.json")
"""


def bench_recipe(work: Path, steps: int) -> Path:
    """The demo recipe cut to its GRPO stage from the base model, ``steps`` steps, in ``work``."""
    data = yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text())
    for section in ("sft", "eval"):
        data.pop(section)
    data.update(name="bench", runs_dir=str(work / "runs"))
    data["grpo"]["trainer"].update(max_steps=steps, logging_steps=steps)
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def plain_spec(recipe_path: Path, work: Path) -> Path:
    """What the plain script trains with: recipe's model, prompts, rewards and GRPOConfig, written to files."""
    sys.path.insert(0, str(REPO))
    from trl import GRPOConfig

    from recipe_cli.config import load_recipe
    from recipe_cli.data import grpo_prompts
    from recipe_cli.grpo import reward_functions
    from recipe_cli.models import load_tokenizer
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model, trainer_config

    recipe = load_recipe(recipe_path)
    base = prepare_base_model(recipe, RunFolder(recipe))
    tokenizer = load_tokenizer(base, recipe.model)
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in grpo_prompts(recipe, tokenizer)))
    bound = reward_functions(recipe, tokenizer)  # with the parameters recipe fills in
    rewards = [
        (r.name, {k: v for k, v in getattr(f, "keywords", {}).items()})
        for r, f in zip(recipe.grpo.rewards, bound, strict=True)
    ]
    config = trainer_config(
        GRPOConfig, recipe, "grpo", extra={"reward_weights": [r.weight for r in recipe.grpo.rewards]}
    )
    fields = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and v is not None}
    fields = {
        k: v
        for k, v in fields.items()
        if k in GRPOConfig.__dataclass_fields__ and GRPOConfig.__dataclass_fields__[k].init
    }
    fields.update(output_dir=str(work / "plain"), report_to="none", disable_tqdm=True)
    for key in ("generation_batch_size", "steps_per_generation", "hub_token", "push_to_hub_token"):
        fields.pop(key, None)  # computed from the others; recomputed alike
    spec = work / "plain.json"
    spec.write_text(json.dumps({"model": base, "data": str(data), "rewards": rewards, "config": fields}, default=str))
    (work / "plain.py").write_text(PLAIN_SCRIPT)
    return spec


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def seconds_per_step(state_file: Path) -> float:
    history = json.loads(state_file.read_text())["log_history"]
    final = next(row for row in reversed(history) if "train_runtime" in row)
    return final["train_runtime"] / max(row.get("step", 0) for row in history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recipe-overhead-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    recipe_path = bench_recipe(work, args.steps)
    spec = plain_spec(recipe_path, work)
    recipe_cmd = [sys.executable, "-m", "recipe_cli", "grpo", str(recipe_path), "--overwrite"]
    plain_cmd = [sys.executable, str(work / "plain.py"), str(spec)]
    walls = {"recipe": [], "plain": []}
    steps = {"recipe": [], "plain": []}
    for round_ in range(args.rounds):
        order = ["recipe", "plain"] if round_ % 2 == 0 else ["plain", "recipe"]
        for name in order:
            walls[name].append(timed(recipe_cmd if name == "recipe" else plain_cmd, env))
            state = work / ("runs/bench/grpo" if name == "recipe" else "plain") / "trainer_state.json"
            steps[name].append(seconds_per_step(state))
        print(
            f"round {round_ + 1}: recipe {walls['recipe'][-1]:.1f} s ({steps['recipe'][-1]:.3f} s/step), "
            f"plain TRL {walls['plain'][-1]:.1f} s ({steps['plain'][-1]:.3f} s/step)"
        )
    wall = {name: statistics.median(values) for name, values in walls.items()}
    step = {name: statistics.median(values) for name, values in steps.items()}
    print(f"\nGRPO, demo model, {args.steps} steps, medians of {args.rounds} alternating rounds:")
    print(
        f"  whole process: recipe {wall['recipe']:.1f} s, plain TRL {wall['plain']:.1f} s, "
        f"ratio {wall['recipe'] / wall['plain']:.3f} (target <= 1.05)"
    )
    print(
        f"  per step:      recipe {step['recipe']:.3f} s, plain TRL {step['plain']:.3f} s, "
        f"ratio {step['recipe'] / step['plain']:.3f} (target <= 1.03)"
    )
    helps = [timed([sys.executable, "-m", "recipe_cli", "--help"], env) for _ in range(5)]
    validates = [
        timed([sys.executable, "-m", "recipe_cli", "validate", str(REPO / "recipes" / "gsm8k.yaml")], env)
        for _ in range(5)
    ]
    print(f"  recipe --help: {statistics.median(helps):.2f} s (target < 0.5 s)")
    print(f"  recipe validate recipes/gsm8k.yaml: {statistics.median(validates):.2f} s (target < 1.5 s)")


if __name__ == "__main__":
    main()
