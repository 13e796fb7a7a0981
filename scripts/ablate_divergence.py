"""Ablation: the same GRPO stage from the same SFT checkpoint under several divergences to the reference model.

Usage: python scripts/ablate_divergence.py [RECIPE] [--beta 0.04] [--variants none,k3,k1:reward,js]
                                           [--grpo-steps N] [--eval-limit N] [--overwrite] [--set key=value ...]

Trains the recipe's SFT stage once (runs/<name>-ablation/start/), or reuses it when it finished with
the same settings, then runs its GRPO stage from that checkpoint once per variant, with the same seed
(so the same prompts in the same order), in runs/<name>-ablation/<variant>/. A variant is `none`
(beta 0: no reference model, the recipe's GRPO as shipped) or a divergence name with an optional
placement, `k1:reward`, `js:loss`; every variant but `none` uses the same --beta. A variant that
already finished with the same settings from the same SFT run is reused, one whose settings changed
is trained again; --overwrite trains everything again.

Each GRPO checkpoint is evaluated with the recipe's eval settings, then one table compares: greedy
accuracy and format on the eval split, pass@1 and pass@k when `eval.num_samples` > 1, the
divergence the variant trained against as logged during training (its own estimator's mean per
token: not comparable across rows), the task reward (the recipe's rewards with their weights, the
divergence penalty left out) at a few logged steps, and, measured the same way for every row, the
exact divergences of the trained policy from the SFT model over the whole vocabulary, averaged over
the tokens of the policy's own greedy eval completions.
The table is also written to runs/<name>-ablation/ablation.{md,json}.

One torch thread by default (--threads): on a machine whose cores other processes share, the demo
model trained about 3x faster on one thread than on two in our runs (the threads wait on each other).
`make ablation` (the demo, with 8 samples per eval problem) took 26 minutes on an otherwise idle
2-core machine: SFT 4.6 minutes, each GRPO variant 4 to 6 (a reference model adds a forward pass
per step, `in: reward` one more).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's recipe_cli, wherever run from

from recipe_cli.config import (  # noqa: E402
    DIVERGENCES,
    Recipe,
    apply_override,
    parse_override,
    read_recipe_file,
    validate_recipe,
)
from recipe_cli.console import quiet_libraries, silence_library_warnings  # noqa: E402
from recipe_cli.errors import RecipeError, TrainingStopped  # noqa: E402
from recipe_cli.resume import plan_start  # noqa: E402

DEFAULT_VARIANTS = "none,k3,k1:reward,js"
DEFAULT_BETA = 0.04  # the KL coefficient of the original GRPO/R1-era recipes (TRL's default before 0.20)
CURVE_POINTS = 4  # logged steps shown of each reward curve

log = logging.getLogger("ablation")


@dataclass(frozen=True)
class Variant:
    """One GRPO run of the ablation: a divergence and where it goes, or none."""

    name: str  # a divergence name or "none"
    placement: str = "loss"

    @property
    def label(self) -> str:
        """The variant's folder name and table label.

        >>> Variant("k1", "reward").label, Variant("js").label, Variant("none").label
        ('k1-reward', 'js-loss', 'none')
        """
        return "none" if self.name == "none" else f"{self.name}-{self.placement}"


def parse_variants(text: str) -> list[Variant]:
    """``none,k3,k1:reward`` -> variants; a divergence without a placement goes in the loss.

    >>> [v.label for v in parse_variants("none, k3,k1:reward")]
    ['none', 'k3-loss', 'k1-reward']
    """
    variants = []
    for item in (part.strip() for part in text.split(",")):
        name, _, placement = item.partition(":")
        if name != "none" and name not in DIVERGENCES:
            raise RecipeError(f"--variants: {name!r} is not a divergence; use none or one of {', '.join(DIVERGENCES)}")
        if placement not in ("", "loss", "reward") or (name == "none" and placement):
            raise RecipeError(f"--variants: {item!r}; write a divergence with :loss or :reward, e.g. k1:reward")
        variants.append(Variant(name, placement or "loss"))
    labels = [v.label for v in variants]
    if len(set(labels)) < len(labels):
        raise RecipeError(f"--variants: {labels} names a variant twice")
    return variants


def start_recipe(raw: dict, folder: Path) -> Recipe:
    """The recipe of the shared start: the recipe's model and SFT stage, in the ablation's folder."""
    data = copy.deepcopy(raw)
    data.update(name="start", runs_dir=str(folder))
    data.pop("grpo", None)
    data.pop("push", None)
    return validate_recipe(data, source="start")


def variant_data(raw: dict, variant: Variant, beta: float) -> dict:
    """The recipe's GRPO section with this variant's divergence and beta (model and SFT as the recipe has them)."""
    data = copy.deepcopy(raw)
    trainer = data["grpo"].setdefault("trainer", {})
    data["grpo"].pop("divergence", None)
    if variant.name == "none":
        trainer["beta"] = 0.0
    else:
        trainer["beta"] = beta
        data["grpo"]["divergence"] = {"name": variant.name, "in": variant.placement}
    return data


def variant_recipe(raw: dict, variant: Variant, beta: float, folder: Path, sft_checkpoint: Path) -> Recipe:
    """The variant's GRPO run: it starts from the shared SFT checkpoint, on disk, as `recipe grpo` would."""
    data = variant_data(raw, variant, beta)
    model = {key: value for key, value in data["model"].items() if key not in ("tiny", "path", "revision")}
    data.update(name=variant.label, runs_dir=str(folder), model={**model, "path": str(sft_checkpoint)})
    data.pop("sft", None)
    data.pop("push", None)
    return validate_recipe(data, source=variant.label)


def plan_stage(run, stage: str, overwrite: bool):
    """Reuse (or resume) a stage that ran with the same settings; train it again when they changed or when asked."""
    if not overwrite:
        try:
            return plan_start(run, stage, resume=True, overwrite=False, force=False)
        except RecipeError as error:  # changed settings or length: this folder is the ablation's own, train again
            log.info("%s: %s; training it again", run.stage_dir(stage), str(error).split(";")[0])
    return plan_start(run, stage, resume=False, overwrite=True, force=False)


def train_start(recipe: Recipe, overwrite: bool) -> tuple[Path, bool]:
    """The shared SFT checkpoint, trained now or reused; whether it was trained now."""
    from recipe_cli.runs import RunFolder

    run = RunFolder(recipe)
    start = plan_stage(run, "sft", overwrite)
    if start.skip:
        log.info("reusing the SFT checkpoint in %s", run.stage_dir("sft"))
        return Path(run.finished("sft")["path"]), False
    return train(recipe, start), True


def train_variant(recipe: Recipe, retrain: bool) -> tuple[Path, bool]:
    """The variant's GRPO checkpoint, trained now or reused (same settings, same SFT start)."""
    from recipe_cli.runs import RunFolder

    run = RunFolder(recipe)
    start = plan_stage(run, "grpo", retrain)
    if start.skip:
        return Path(run.finished("grpo")["path"]), False
    return train(recipe, start), True


def train(recipe: Recipe, start) -> Path:
    """One stage as `recipe sft|grpo` trains it, holding the run folder's lock."""
    from recipe_cli.console import ConsoleReporter
    from recipe_cli.lock import RunLock
    from recipe_cli.pipeline import train_one

    with RunLock(recipe.run_dir, f"scripts/ablate_divergence.py ({start.stage})"):
        return train_one(recipe, start, ConsoleReporter())


def task_reward(row: dict, weights: dict[str, float]) -> float | None:
    """The recipe's rewards, weighted, in one logged row; the divergence penalty is left out.

    >>> task_reward({"rewards/accuracy/mean": 0.5, "rewards/format/mean": 1.0, "rewards/divergence_k1/mean": 3.0},
    ...             {"accuracy": 1.0, "format": 0.2})
    0.7
    """
    keys = [f"rewards/{name}/mean" for name in weights]
    if not all(key in row for key in keys):
        return None
    return round(sum(weights[name] * row[f"rewards/{name}/mean"] for name in weights), 6)


def reward_curve(history: list[dict], weights: dict[str, float]) -> list[tuple[int, float]]:
    """(step, task reward) at CURVE_POINTS logged steps spread over training, the last included."""
    from recipe_cli.card import curve_rows

    keys = [f"rewards/{name}/mean" for name in weights]
    return [(row["step"], task_reward(row, weights)) for row in curve_rows(history, keys, max_rows=CURVE_POINTS)]


def reward_names(recipe: Recipe) -> dict[str, float]:
    """The name TRL logs each reward under (a function's name) and its weight."""
    return {reward.name.rsplit(":", 1)[-1]: reward.weight for reward in recipe.grpo.rewards}


def measure_drift(recipe: Recipe, policy: Path, reference: Path, records: list[dict]) -> dict[str, float]:
    """Exact divergences of ``policy`` from ``reference`` per token, over the tokens of the policy's eval completions.

    Both models score each prompt + completion; at every completion position the next-token
    distributions over the whole vocabulary are compared exactly (``recipe_cli.divergence.exact_divergences``).
    """
    import torch

    from recipe_cli.divergence import exact_divergences
    from recipe_cli.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(policy, recipe.model)
    models = [load_causal_lm(path, recipe.model).eval() for path in (policy, reference)]
    totals: dict[str, float] = {}
    tokens = 0
    for record in records:
        prompt = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
        completion = tokenizer(record["completion"], add_special_tokens=False)["input_ids"]
        if not completion:
            continue
        ids = torch.tensor([prompt + completion])
        with torch.inference_mode():
            # the logits at position i predict token i + 1: the completion's tokens are predicted from len(prompt) - 1
            logps = [
                torch.log_softmax(model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float(), dim=-1)
                for model in models
            ]
        for name, value in exact_divergences(*logps).items():
            totals[name] = totals.get(name, 0.0) + value * len(completion)
        tokens += len(completion)
    return {name: total / max(tokens, 1) for name, total in totals.items()}


def summarise(variant: Variant, beta: float, recipe: Recipe, output: Path, summary: dict, drift: dict) -> dict:
    """One row of the ablation table."""
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    metric = f"divergence/{variant.name}"
    logged = [row[metric] for row in history if metric in row]
    runtime = next((row["train_runtime"] for row in reversed(history) if "train_runtime" in row), None)
    return {
        "variant": variant.label,
        "divergence": recipe.grpo.describe_divergence(),
        "beta": 0.0 if variant.name == "none" else beta,
        "accuracy": summary["accuracy"],
        "format_rate": summary["format_rate"],
        "n": summary["n"],
        "pass_at_k": (summary["sampled"] or {}).get("pass@k"),  # with eval.num_samples > 1
        "logged_divergence": sum(logged) / len(logged) if logged else None,
        "reward_curve": reward_curve(history, reward_names(recipe)),
        "drift_from_sft": drift,
        "train_seconds": runtime,
        "checkpoint": str(output),
    }


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def render_markdown(rows: list[dict], sft: dict, notes: list[str]) -> str:
    """The ablation table, the SFT start's row first, in Markdown."""
    steps = [step for step, _ in rows[0]["reward_curve"]] if rows else []
    ks = sorted({int(k) for row in [sft, *rows] for k in row.get("pass_at_k") or {}})
    sampled = sorted({ks[0], ks[-1]}) if ks else []  # pass@1 and pass@k for the largest k
    head = ["variant", "beta", "accuracy", "format", *[f"pass@{k}" for k in sampled]]
    head += ["logged divergence (own estimator)", *[f"task reward @{step}" for step in steps]]
    head += ["KL(pi‖sft)", "KL(sft‖pi)", "JS", "TV", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in [{"variant": "SFT start", "beta": None, **sft}, *rows]:
        passes = row.get("pass_at_k") or {}
        cells = [row["variant"], _number(row["beta"]), f"{row['accuracy']:.1%}", f"{row['format_rate']:.1%}"]
        cells += [f"{passes[str(k)]:.1%}" if str(k) in passes else "-" for k in sampled]
        cells.append(_number(row.get("logged_divergence")))
        cells += [_number(reward, 3) for _, reward in row.get("reward_curve") or [(step, None) for step in steps]]
        drift = row.get("drift_from_sft") or dict.fromkeys(("reverse_kl", "forward_kl", "js", "tv"), 0.0)
        cells += [_number(drift[key]) for key in ("reverse_kl", "forward_kl", "js", "tv")]
        cells.append(_number(row.get("train_seconds"), 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", default="recipes/demo.yaml")
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA, help="coefficient of every variant but none")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated (default {DEFAULT_VARIANTS})")
    parser.add_argument("--grpo-steps", type=int, help="GRPO max_steps for a quicker look (default: the recipe's)")
    parser.add_argument("--eval-limit", type=int, help="evaluate the first N problems only")
    parser.add_argument("--overwrite", action="store_true", help="train the SFT start and every variant again")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override a recipe value")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    silence_library_warnings()
    quiet_libraries()
    try:
        rows, sft_summary, markdown = run_ablation(args)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingStopped as stopped:  # a signal (checkpoint saved: the same command resumes) or NaN/inf
        hint = "; run the same command again (without --overwrite) to continue" if stopped.resumable else ""
        print(f"stopped: {stopped}{hint}", file=sys.stderr)
        return stopped.exit_code
    print(markdown)
    return 0


def run_ablation(args) -> tuple[list[dict], dict, str]:
    """Train (or reuse) the start and every variant, evaluate, measure, and write the table."""
    from recipe_cli.evaluate import evaluate_model

    if args.beta <= 0:
        raise RecipeError("--beta must be > 0: it is the coefficient of every divergence variant")
    variants = parse_variants(args.variants)
    raw = read_recipe_file(args.recipe)
    # progress bars and per-step log lines of every run would bury the table; trainer_state.json keeps the logs
    overrides = ["sft.trainer.disable_tqdm=true", "grpo.trainer.disable_tqdm=true", *args.overrides]
    if args.grpo_steps:
        overrides.append(f"grpo.trainer.max_steps={args.grpo_steps}")
    for text in overrides:
        apply_override(raw, *parse_override(text))
    recipe = validate_recipe(raw, source=args.recipe)
    if recipe.sft is None or recipe.grpo is None or recipe.eval is None:
        raise RecipeError(f"{args.recipe}: the ablation needs sft, grpo and eval sections")
    for variant in variants:  # every variant's settings checked before anything trains
        validate_recipe(variant_data(raw, variant, args.beta), source=f"{args.recipe} ({variant.label})")
    folder = recipe.run_dir.with_name(f"{recipe.name}-ablation")
    notes = [
        f"Recipe {args.recipe}, seed {recipe.seed}, GRPO {recipe.grpo.trainer.get('max_steps')} steps from the same "
        f"SFT checkpoint; beta {args.beta:g} for every variant but none; eval: greedy on "
        f"{'the first ' + str(args.eval_limit) if args.eval_limit else 'all'} {recipe.eval.dataset.split} problems.",
        "Task reward @step: the recipe's rewards with their weights (no penalty), mean of the logging window ending "
        "at that step.",
        "KL(pi‖sft), KL(sft‖pi), JS, TV: exact over the vocabulary, mean per token of the policy's greedy eval "
        "completions.",
        "train s: GRPO training time; it depends on what else the machine runs.",
    ]
    if recipe.eval.num_samples > 1:
        notes.insert(
            1,
            f"pass@k: unbiased estimate from {recipe.eval.num_samples} samples per problem at temperature "
            f"{recipe.eval.temperature:g} (seed {recipe.seed}).",
        )

    start = start_recipe(raw, folder)
    started = time.perf_counter()
    sft_checkpoint, sft_trained = train_start(start, args.overwrite)
    sft_summary = evaluate_model(start, str(sft_checkpoint), "sft", limit=args.eval_limit)
    rows = []
    for variant in variants:
        recipe_v = variant_recipe(raw, variant, args.beta, folder, sft_checkpoint)
        log.info("variant %s: %s", variant.label, recipe_v.grpo.describe_divergence())
        output, trained = train_variant(recipe_v, retrain=args.overwrite or sft_trained)
        if not trained:
            notes.append(f"{variant.label}: reused the run that finished in {output}.")
        summary = evaluate_model(recipe_v, str(output), "grpo", limit=args.eval_limit)
        records = [json.loads(line) for line in (folder / variant.label / "eval" / "grpo.jsonl").open()]
        drift = measure_drift(recipe_v, output, sft_checkpoint, records)
        rows.append(summarise(variant, args.beta, recipe_v, output, summary, drift))
    notes.append(f"Wall time {time.perf_counter() - started:.0f} s (SFT {'trained' if sft_trained else 'reused'}).")
    sft = {key: sft_summary[key] for key in ("accuracy", "format_rate", "n")}
    sft["pass_at_k"] = (sft_summary["sampled"] or {}).get("pass@k")
    markdown = render_markdown(rows, sft, notes)
    (folder / "ablation.md").write_text(markdown)
    result = {"sft": sft, "variants": rows, "notes": notes}
    (folder / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    return rows, sft_summary, markdown


if __name__ == "__main__":
    sys.exit(main())
