"""Stage 3: evaluation on the eval split, scored with the accuracy reward's answer checker.

Every checkpoint gets a greedy pass (``accuracy``: strict when the recipe's accuracy reward trains
with ``mode: strict``, else flexible; both are reported as ``accuracy_strict`` and
``accuracy_flexible``, like lm-eval's GSM8K ``strict-match`` and ``flexible-extract``); with
``eval.num_samples > 1`` a seeded sampling pass adds pass@k (unbiased estimator), maj@k (majority
vote over the first k extracted answers) and the mean accuracy of the samples. Results go to
``runs/<name>/eval/<label>.json`` (summary with the exact settings and package versions) and
``<label>.jsonl`` (one line per problem).
"""

from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path

from recipe_cli.answers import LATEX_TIMEOUT_SECONDS, parse_number, score_completion
from recipe_cli.atomic import write_atomic
from recipe_cli.chat import prompt_token_ids, render_prompt, think_prefilled
from recipe_cli.config import DatasetSettings, Recipe
from recipe_cli.data import load_examples, prompt_rows
from recipe_cli.data.adapters import missing_gold
from recipe_cli.generation import Decoding, Generation, open_engine
from recipe_cli.metrics import majority_answer, majority_correct, pass_at_k
from recipe_cli.models import is_adapter
from recipe_cli.rewards import format as format_reward
from recipe_cli.runs import RunFolder, settings_hash

log = logging.getLogger(__name__)

PACKAGES = ("recipe-cli", "torch", "transformers", "trl", "peft", "vllm")
ANSWER_CHECKER = "recipe_cli.answers.score_completion"  # the accuracy reward's checker


def evaluate_model(
    recipe: Recipe,
    model_path: str,
    label: str,
    limit: int | None = None,
    progress=None,
    eval_set: tuple[str, str, DatasetSettings] | None = None,
    engine=None,
    rows: list[dict] | None = None,
) -> dict:
    """Evaluate one checkpoint on one of the recipe's eval sets (default: the headline one); write and return
    its summary, labelled ``label`` plus the set's suffix (``sft@math500``). ``engine``: the checkpoint as
    ``open_engine`` loaded it, shared by its eval sets; loaded here (and let go) when not given. ``rows``:
    the set's ``eval_rows`` when the caller has them."""
    settings = recipe.eval
    eval_set = eval_set or settings.sets[0]
    if rows is None:
        rows = eval_rows(recipe, eval_set, limit)  # a data mistake stops before the model loads
    if engine is None:
        with open_engine(recipe, model_path) as engine:
            return evaluate_model(recipe, model_path, label, limit, progress, eval_set, engine, rows)
    suffix, title, dataset = eval_set
    label = f"{label}{suffix}"
    prefilled = think_prefilled(recipe, engine.tokenizer)  # the format rate follows the training rewards
    shown = [row["prompt"] for row in prompt_rows(rows, recipe.prompt)]
    prompts = [render_prompt(engine.tokenizer, prompt) for prompt in shown]
    prompt_ids = [prompt_token_ids(engine.tokenizer, prompt) for prompt in shown]  # as GRPO generates from them
    greedy = Decoding(settings.max_new_tokens)
    sampling = None
    if settings.num_samples > 1:
        sampling = Decoding(
            settings.max_new_tokens, settings.num_samples, settings.temperature, settings.top_p, seed=recipe.seed
        )
    if progress is not None:
        progress.start(label, len(prompts) * (1 + (sampling.num_samples if sampling else 0)))
    advance = progress.advance if progress is not None else None
    greedy_out = engine.generate(prompt_ids, greedy, settings.batch_size, advance)
    sampled_out = engine.generate(prompt_ids, sampling, settings.batch_size, advance) if sampling else None

    mode, reading = accuracy_mode(recipe), answer_reading(recipe)
    budget = settings.max_new_tokens
    samples = [
        _greedy_record(prompts[i], row["answer"], greedy_out, i, mode, prefilled, reading, budget)
        for i, row in enumerate(rows)
    ]
    summary = {
        "label": label,
        "model": str(model_path),
        "lora": is_adapter(model_path),
        "eval_set": title,
        "divergence": RunFolder(recipe).divergence_of(model_path),  # GRPO's penalty to the reference; None: not GRPO
        "dataset": dataset.path or dataset.adapter,
        "split": dataset.split,
        "dataset_settings": dataset.model_dump(mode="json"),
        "limit": limit,
        "seed": recipe.seed,
        "n": len(samples),
        "problems": settings_hash({"problems": [[row["question"], row["answer"]] for row in rows]}),
        "answer_checker": ANSWER_CHECKER,
        "accuracy_mode": mode,  # which of accuracy_strict / accuracy_flexible `accuracy` is
        "answer_after": reading["answer_after"],  # the answer read after it, as the accuracy reward reads it
        "latex_timeout": reading["timeout"],
        "think_prefilled": prefilled,
        **_rates(samples),
        "backend": engine.name,
        "device": engine.device,
        "dtype": engine.dtype,
        "decoding": {
            "greedy": {"max_new_tokens": settings.max_new_tokens, "batch_size": settings.batch_size},
            "sampling": None,
            "stop_token_ids": greedy_out.stop_token_ids,
        },
        "sampled": None,
        "prompt": recipe.prompt.model_dump(mode="json"),
    }
    outputs = [greedy_out]
    if sampled_out is not None:
        summary["decoding"]["sampling"] = {
            "num_samples": sampling.num_samples,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": None,  # off: only temperature and top_p shape the distribution
            "seed": sampling.seed,
            "max_new_tokens": sampling.max_new_tokens,
            "batch_size": settings.batch_size,
        }
        summary["sampled"] = _add_samples(samples, sampled_out, settings.pass_k, mode, prefilled, reading, budget)
        outputs.append(sampled_out)
    completions = sum(len(c) for out in outputs for c in out.completions)
    tokens = sum(sum(t) for out in outputs for t in out.tokens)
    seconds = sum(out.seconds for out in outputs)
    summary.update(
        versions=package_versions(),
        seconds=round(seconds, 2),
        samples_per_second=round(completions / seconds, 2) if seconds else None,  # completions, every pass
        tokens_per_second=round(tokens / seconds, 1) if seconds else None,
    )
    write_results(RunFolder(recipe).eval_dir, label, summary, samples)
    return summary


def _format_ok(completion: str, prefilled: bool) -> bool:
    return format_reward([completion], think_prefilled=prefilled)[0] == 1.0


def accuracy_params(recipe: Recipe) -> dict:
    """The parameters of the recipe's ``accuracy`` reward as the recipe writes them: of the entry that trains with
    ``mode: strict`` when there is one, else of the first; none without an ``accuracy`` reward."""
    entries = recipe.grpo.rewards if recipe.grpo is not None else []
    rewards = [reward for reward in entries if reward.name == "accuracy"]
    strict = [reward for reward in rewards if reward.params.get("mode") == "strict"]
    chosen = strict or rewards
    return dict(chosen[0].params) if chosen else {}


def accuracy_mode(recipe: Recipe) -> str:
    """``strict`` when the recipe's ``accuracy`` reward trains with ``mode: strict``, else ``flexible``."""
    return accuracy_params(recipe).get("mode", "flexible")


def answer_reading(recipe: Recipe) -> dict:
    """Where and how long the recipe's ``accuracy`` reward reads an answer, as ``score_completion``'s keywords:
    ``answer_after`` (None: the whole completion) and ``timeout`` (its ``latex_timeout``)."""
    params = accuracy_params(recipe)
    return {"answer_after": params.get("answer_after"), "timeout": params.get("latex_timeout", LATEX_TIMEOUT_SECONDS)}


def eval_rows(recipe: Recipe, eval_set: tuple[str, str, DatasetSettings], limit: int | None) -> list[dict]:
    """The rows an eval set is scored on: its first ``limit``, each with a gold answer (without one every answer
    would score 0)."""
    _, title, dataset = eval_set
    rows = load_examples(dataset, recipe.seed)
    if limit is not None:
        rows = rows[:limit]
    no_gold = missing_gold(f"eval set {title!r}", rows)
    if no_gold is not None:
        raise no_gold
    return rows


def cut_off(truncated: bool, tokens: int, budget: int | None) -> bool:
    """Whether strict scoring counts a completion as cut off: it never stopped, or, as the accuracy reward reads
    ``completion_ids``, it used every token of its ``budget`` (also when the last one was its end-of-turn token).

    >>> cut_off(False, 40, 40), cut_off(False, 39, 40), cut_off(True, 40, None), cut_off(False, 40, None)
    (True, False, True, False)
    """
    return truncated or (budget is not None and tokens >= budget)


def _scores(completion: str, gold: str, cut: bool, mode: str, reading: dict | None = None) -> dict:
    """The answer read in the headline ``mode``, and the verdicts of both modes (strict: a ``cut`` off completion
    is wrong), each read as the accuracy reward reads it (``reading``: see ``answer_reading``)."""
    reading = reading or {}
    strict_extracted, strict = score_completion(completion, gold, mode="strict", truncated=cut, **reading)
    flexible_extracted, flexible = score_completion(completion, gold, **reading)
    correct = strict if mode == "strict" else flexible
    return {
        "extracted": strict_extracted if mode == "strict" else flexible_extracted,
        "correct": bool(correct),
        "correct_strict": bool(strict),
        "correct_flexible": bool(flexible),
        "scorable": correct is not None,
    }


def _greedy_record(
    prompt: str,
    gold: str,
    out: Generation,
    index: int,
    mode: str = "flexible",
    prefilled: bool = False,
    reading: dict | None = None,
    budget: int | None = None,
) -> dict:
    """One problem's greedy record; ``budget``: the max_new_tokens it was generated with (see ``cut_off``)."""
    completion = out.completions[index][0]
    truncated = out.truncated[index][0]
    scores = _scores(completion, gold, cut_off(truncated, out.tokens[index][0], budget), mode, reading)
    return {
        "prompt": prompt,
        "completion": completion,
        "extracted": scores.pop("extracted"),
        "gold": gold,
        **scores,
        "format_ok": _format_ok(completion, prefilled),
        "truncated": truncated,
        "tokens": out.tokens[index][0],
    }


def _rates(records: list[dict]) -> dict:
    """Accuracy, format compliance, truncation and mean length (tokens) over completion records."""
    n = len(records)
    return {
        "accuracy": sum(r["correct"] for r in records) / n,
        "accuracy_strict": sum(r["correct_strict"] for r in records) / n,
        "accuracy_flexible": sum(r["correct_flexible"] for r in records) / n,
        "format_rate": sum(r["format_ok"] for r in records) / n,
        "truncation_rate": sum(r["truncated"] for r in records) / n,
        "mean_completion_tokens": round(sum(r["tokens"] for r in records) / n, 2),
        "unscorable": sum(not r["scorable"] for r in records),
    }


def _add_samples(
    samples: list[dict],
    out: Generation,
    ks: list[int],
    mode: str = "flexible",
    prefilled: bool = False,
    reading: dict | None = None,
    budget: int | None = None,
) -> dict:
    """Score the sampled completions into each problem's record; return pass@k, maj@k and the sample rates
    (``budget``: the max_new_tokens they were generated with, see ``cut_off``)."""
    every = []
    for index, record in enumerate(samples):
        drawn = []
        for completion, cut, length in zip(
            out.completions[index], out.truncated[index], out.tokens[index], strict=True
        ):
            drawn.append(
                {
                    "completion": completion,
                    **_scores(completion, record["gold"], cut_off(cut, length, budget), mode, reading),
                    "format_ok": _format_ok(completion, prefilled),
                    "truncated": cut,
                    "tokens": length,
                }
            )
        answers = [_ballot(d, mode, budget) for d in drawn]
        record["samples"] = drawn
        record["num_correct"] = sum(d["correct"] for d in drawn)
        numeric = parse_number(record["gold"]) is not None
        record["majority"] = {
            "answer": majority_answer(answers, numeric),
            "correct": majority_correct(answers, record["gold"]),
        }
        every += drawn
    n = len(samples)
    num_samples = len(samples[0]["samples"])
    rates = _rates(every)
    return {
        "mean_accuracy": rates.pop("accuracy"),  # over every sample: the pass@1 estimate
        "mean_accuracy_strict": rates.pop("accuracy_strict"),
        "mean_accuracy_flexible": rates.pop("accuracy_flexible"),
        "pass@k": {str(k): sum(pass_at_k(num_samples, r["num_correct"], k) for r in samples) / n for k in ks},
        # maj@k votes over each problem's first k samples (ties: the answer voted for first)
        "maj@k": {
            str(k): sum(
                majority_correct([_ballot(d, mode, budget) for d in r["samples"][:k]], r["gold"]) for r in samples
            )
            / n
            for k in ks
        },
        **rates,
    }


def _ballot(sample: dict, mode: str, budget: int | None = None) -> str | None:
    """A sample's vote for maj@k: its answer; in strict mode a cut-off sample (see ``cut_off``) does not vote."""
    return None if mode == "strict" and cut_off(sample["truncated"], sample["tokens"], budget) else sample["extracted"]


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of packages, by default those that decide what an eval measures (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_results(folder: Path, label: str, summary: dict, samples: list[dict]) -> None:
    """``<label>.json`` (summary) and ``<label>.jsonl`` (per sample), each written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        (f"{label}.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)),
        (f"{label}.json", json.dumps(summary, indent=2) + "\n"),
    ):
        write_atomic(folder / name, text)


def read_summaries(recipe: Recipe) -> dict[str, dict]:
    """The eval summaries a run folder holds, by label."""
    folder = RunFolder(recipe).eval_dir
    if not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
