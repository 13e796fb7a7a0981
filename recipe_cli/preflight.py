"""The rewards preflight (``recipe rewards RECIPE``): catch a reward that cannot teach before a GPU spins.

GRPO learns only from reward differences within a group of completions to the same prompt. The
preflight builds such groups from the training set without training anything: the gold answer
written as a perfect completion in the recipe's template, deliberately malformed completions
(wrong answer, no tags, cut off, empty, rambling to the token budget) and, when the starting
model loads, a few samples from it. Every reward of the recipe scores every group, and the
findings say what is wrong: a reward with no variance in any group (zero advantage, no
learning), gold answers the checker cannot read, perfect completions it scores as wrong, and
chat templates that prefill ``<think>``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from recipe_cli.answers import parse_number, score_completion
from recipe_cli.config import DEFAULT_COMPLETION, Recipe, grpo_max_completion_length
from recipe_cli.data import iter_examples, load_examples, row_prompt
from recipe_cli.errors import RecipeError
from recipe_cli.rewards import get_reward, with_run_values
from recipe_cli.runs import RunFolder
from recipe_cli.trainer_settings import effective_setting

log = logging.getLogger(__name__)

KINDS = ["perfect", "wrong answer", "no tags", "cut off", "empty", "rambling"]
RAMBLE = "Let me think about this again. "
PERFECT_REASONING = "Working through the problem step by step."  # when the data has no worked solution
PERFECT_WRONG_LIMIT = 0.01  # share of perfect completions scored wrong above which the checker is broken


@dataclass
class Finding:
    fatal: bool
    message: str


@dataclass
class RewardRow:
    label: str  # "accuracy ×1"
    means: dict[str, float | None]  # completion kind -> mean score (None: nothing scorable)
    signal: float  # share of groups where the reward is not constant
    skipped: str | None = None  # why the reward could not be scored
    samples_only: bool = False  # only the model's samples can show this reward varying
    skip_is_fatal: bool = True


@dataclass
class Preflight:
    golds_checked: int
    golds: list[str]
    golds_unreadable: list[str]
    perfect_wrong: list[tuple[str, str]]  # (gold, extracted) where a perfect completion scored wrong
    groups: int
    kinds: list[str]
    model_source: str | None
    example: str
    samples_alike: bool = False  # the model sampled one text for each prompt, however many times it was asked
    rows: list[RewardRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        return any(f.fatal for f in self.findings)


def run_preflight(recipe: Recipe, *, golds: int = 200, groups: int = 8, samples: int = 2, use_model: bool = True):
    """Score the recipe's rewards on gold, malformed and sampled completions; return the report."""
    if recipe.grpo is None:
        raise RecipeError("the recipe has no `grpo:` section; the preflight checks GRPO's rewards")
    rows = load_examples(recipe.grpo.dataset, recipe.seed)
    budget = grpo_max_completion_length(recipe.grpo.trainer) or 512
    template = recipe.sft.completion if recipe.sft is not None else DEFAULT_COMPLETION
    tokenizer, model, source, why_not = _starting_model(recipe, use_model)
    prefilled = False
    if tokenizer is not None:
        from recipe_cli.chat import think_prefilled

        prefilled = think_prefilled(recipe, tokenizer)

    checked = rows[:golds]
    unreadable, perfect_wrong = [], []
    for row in checked:
        extracted, correct = score_completion(_perfect(row, template, prefilled), row["answer"])
        if correct is None:
            unreadable.append(row["answer"])
        elif not correct:
            perfect_wrong.append((row["answer"], extracted))

    grouped = checked[:groups]
    completions = {kind: [_variant(kind, row, template, prefilled, budget) for row in grouped] for kind in KINDS}
    kinds = list(KINDS)
    sampled = []
    if model is not None and samples:
        sampled = _sample(model, tokenizer, recipe, grouped, samples, budget)
        for index, texts in enumerate(sampled):
            kinds.append(f"sample {index + 1}")
            completions[kinds[-1]] = texts
    report = Preflight(
        golds_checked=len(checked),
        golds=[row["answer"] for row in checked],
        golds_unreadable=unreadable,
        perfect_wrong=perfect_wrong,
        groups=len(grouped),
        kinds=kinds,
        model_source=source,
        example=completions["perfect"][0],
        samples_alike=len(sampled) > 1 and all(len(set(texts)) == 1 for texts in zip(*sampled, strict=True)),
    )
    run_values = {"max_completion_len": budget, "think_prefilled": prefilled}
    report.rows = _score(recipe, grouped, completions, kinds, tokenizer, run_values)
    report.findings = _findings(report, recipe, prefilled, why_not)
    return report


def check_rewards_run(recipe: Recipe, base: str, problems: int = 4) -> None:
    """Call every GRPO reward once, as TRL will, on the preflight's completions to a few of the stage's problems;
    raise naming the first reward that cannot run (it raises, returns another number of scores than completions,
    or returns what is not a number), so that a broken reward stops a command before any training, not when
    GRPO starts. ``base``: the starting model, whose tokenizer gives the completions' token ids."""
    from recipe_cli.chat import think_prefilled
    from recipe_cli.models import load_tokenizer

    rows = list(itertools.islice(iter_examples(recipe.grpo.dataset, recipe.seed), problems))
    tokenizer = load_tokenizer(base, recipe.model)
    prefilled = think_prefilled(recipe, tokenizer)
    budget = grpo_max_completion_length(recipe.grpo.trainer) or 512
    template = recipe.sft.completion if recipe.sft is not None else DEFAULT_COMPLETION
    completions = {kind: [_variant(kind, row, template, prefilled, budget) for row in rows] for kind in KINDS}
    run_values = {"max_completion_len": budget, "think_prefilled": prefilled}
    for row in _score(recipe, rows, completions, KINDS, tokenizer, run_values):
        if row.skipped is not None and row.skip_is_fatal:
            raise RecipeError(
                f"grpo.rewards: reward {row.label} {row.skipped} when called on test completions; fix it "
                "(`recipe rewards RECIPE --no-model` shows every reward on them)"
            )


def _perfect(row: dict, template: str, prefilled: bool) -> str:
    """The gold answer as a completion in the SFT template, as SFT teaches it (no ``<think>`` a prompt prefilled)."""
    from recipe_cli.chat import strip_prefilled_think

    text = template.format(reasoning=row.get("reasoning") or PERFECT_REASONING, answer=row["answer"])
    return strip_prefilled_think(text, "<think>") if prefilled else text


def _wrong(gold: str) -> str:
    """An answer that differs from the gold: the number plus one, or the expression plus one."""
    number = parse_number(gold)
    if number is not None:
        return str(number + 1)
    return f"({gold})+1"


def _variant(kind: str, row: dict, template: str, prefilled: bool, budget: int) -> str:
    perfect = _perfect(row, template, prefilled)
    if kind == "perfect":
        return perfect
    if kind == "wrong answer":
        return _perfect({**row, "answer": _wrong(row["answer"])}, template, prefilled)
    if kind == "no tags":
        return f"{row.get('reasoning') or PERFECT_REASONING}\nThe answer is {row['answer']}."
    if kind == "cut off":
        return perfect[: len(perfect) // 2]
    if kind == "empty":
        return ""
    return RAMBLE * budget  # past the token budget with any tokenizer: at least one token per sentence


def _starting_model(recipe: Recipe, use_model: bool):
    """``(tokenizer, model, where it came from, why not)`` for GRPO's starting point, or Nones and the reason.

    The tokenizer is loaded even without ``use_model``: token lengths and the chat template need it.
    """
    from recipe_cli.models import load_causal_lm, load_tokenizer

    run = RunFolder(recipe)
    finished_sft = run.finished("sft") if recipe.sft is not None else None
    path = finished_sft["path"] if finished_sft else run.base_model_path()
    if recipe.model.tiny is None and not finished_sft and not available_offline(path, recipe.model.revision):
        return None, None, None, f"'{path}' is not in the local Hugging Face cache (the preflight downloads nothing)"
    source = "the SFT checkpoint" if finished_sft else "the base model (SFT has not run yet)"
    with tempfile.TemporaryDirectory(prefix="recipe-preflight-") as scratch:
        try:
            if recipe.model.tiny is not None and not finished_sft and not Path(path).is_dir():
                from recipe_cli.training import build_recipe_tiny_model

                # built aside, so the preflight writes nothing to the run folder
                build_recipe_tiny_model(recipe, Path(scratch))
                path, source = scratch, "the tiny base model built from the seed"
            tokenizer = load_tokenizer(path, recipe.model)
            model = load_causal_lm(path, recipe.model) if use_model else None
        except RecipeError as error:
            return None, None, None, str(error)
    if not use_model:
        return tokenizer, None, None, None
    return tokenizer, model, source if path == scratch else f"{source} {path}", None


def available_offline(path: str, revision: str | None) -> bool:
    """Whether a model folder exists locally or the Hub id's config is in the local cache."""
    if Path(path).expanduser().is_dir():
        return True
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(path, "config.json", revision=revision), str)
    except Exception:  # an id the cache cannot even look up
        return False


def _sample(model, tokenizer, recipe: Recipe, rows: list[dict], samples: int, budget: int) -> list[list[str]]:
    """``samples`` sampled completions per row at GRPO's temperature: one list per sample index."""
    from recipe_cli.generation import Decoding, generate_completions

    temperature = float(effective_setting("GRPOConfig", recipe.grpo.trainer, "temperature"))
    log.info("sampling %d completions per prompt for %d prompts, up to %d tokens each", samples, len(rows), budget)
    from recipe_cli.chat import prompt_token_ids

    prompts = [prompt_token_ids(tokenizer, row_prompt(row, recipe.prompt)) for row in rows]
    decoding = Decoding(budget, num_samples=samples, temperature=temperature, top_p=1.0, seed=recipe.seed)
    generated = generate_completions(model, tokenizer, prompts, decoding, batch_size=len(prompts) * samples)
    return [[generated.completions[row][index] for row in range(len(rows))] for index in range(samples)]


def _score(recipe: Recipe, rows: list[dict], completions: dict, kinds: list[str], tokenizer, run_values: dict):
    """Each reward on all groups at once, as TRL calls it: one batch, completions of a prompt together."""
    from transformers import TrainerState

    batch, prompts, answers = [], [], []
    for index, row in enumerate(rows):
        prompt = row_prompt(row, recipe.prompt)
        for kind in kinds:
            batch.append(completions[kind][index])
            prompts.append(prompt)
            answers.append(row["answer"])
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in batch] if tokenizer else None
    # as TRL passes them: chat messages after a conversation, plain text after a plain-text prompt
    plain = recipe.prompt.template is not None
    chat = batch if plain else [[{"role": "assistant", "content": text}] for text in batch]
    # what else TRL 1.16 passes every reward (GRPOTrainer._calculate_rewards): the training state, and loggers
    trainer_kwargs = {"trainer_state": TrainerState(), "log_extra": _ignore, "log_metric": _ignore}
    per_reward = []
    for reward in recipe.grpo.rewards:
        label = f"{reward.name} ×{reward.weight:g}"
        function = get_reward(reward.name, **with_run_values(reward.name, reward.params, run_values))
        try:
            scores = function(completions=chat, prompts=prompts, answer=answers, completion_ids=ids, **trainer_kwargs)
            if inspect.isawaitable(scores):  # TRL awaits an async reward
                scores = asyncio.run(_awaited(scores))
        except ValueError as error:
            # token lengths without a tokenizer are the preflight's limit, not the reward's fault
            problem = f"{error} (the tokenizer did not load)" if ids is None else f"raised ValueError: {error}"
            per_reward.append(RewardRow(label, {}, 0.0, skipped=problem, skip_is_fatal=ids is not None))
            continue
        except Exception as error:  # the user's reward failing is a finding, not a crash of the preflight
            per_reward.append(RewardRow(label, {}, 0.0, skipped=f"raised {type(error).__name__}: {error}"))
            continue
        if not isinstance(scores, list) or len(scores) != len(batch):
            got = f"{len(scores)} scores" if isinstance(scores, list) else f"a {type(scores).__name__}"
            per_reward.append(RewardRow(label, {}, 0.0, skipped=f"returned {got} for {len(batch)} completions"))
            continue
        problem = _not_scores(scores)
        if problem is not None:
            per_reward.append(RewardRow(label, {}, 0.0, skipped=problem))
            continue
        row = _summarise(label, scores, kinds, len(rows))
        row.samples_only = getattr(function, "signal_from_samples_only", False)
        per_reward.append(row)
    return per_reward


def _ignore(*args, **kwargs) -> None:
    """``log_extra`` and ``log_metric`` as a reward sees them here: what it logs goes nowhere."""


async def _awaited(scores):
    return await scores


def _not_scores(scores: list) -> str | None:
    """What is wrong with a reward's return values, or None: TRL needs a finite number or None per completion.

    >>> _not_scores([1.0, None, 0]), _not_scores([1.0, "1.0"]), _not_scores([float("nan"), 0.5])
    (None, "returned '1.0' (a str) where a number or None belongs", 'returned NaN for 1 of 2 completions')
    """
    for score in scores:
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            return f"returned {score!r} (a {type(score).__name__}) where a number or None belongs"
    nonfinite = [s for s in scores if s is not None and not math.isfinite(s)]
    if nonfinite:
        kind = "NaN" if any(math.isnan(s) for s in nonfinite) else "infinity"
        return f"returned {kind} for {len(nonfinite)} of {len(scores)} completions"
    return None


def _summarise(label: str, scores: list, kinds: list[str], groups: int) -> RewardRow:
    width = len(kinds)
    means = {}
    for offset, kind in enumerate(kinds):
        values = [scores[g * width + offset] for g in range(groups) if scores[g * width + offset] is not None]
        means[kind] = statistics.fmean(values) if values else None
    varied = 0
    for g in range(groups):
        values = [s for s in scores[g * width : (g + 1) * width] if s is not None]
        varied += len(set(values)) > 1
    return RewardRow(label, means, varied / groups if groups else 0.0)


def _findings(report: Preflight, recipe: Recipe, prefilled: bool, why_not: str | None):
    findings = []
    n = report.golds_checked
    distinct = len(set(report.golds))
    if n > 1 and distinct == 1:
        findings.append(
            Finding(
                True,
                f"every gold answer of the {n} checked is {report.golds[0]!r}: the answer column does not hold each "
                "problem's answer; check `columns.answer` (or the adapter)",
            )
        )
    for row in report.rows:
        wrong, perfect = row.means.get("wrong answer"), row.means.get("perfect")
        if row.label.startswith("accuracy ") and wrong is not None and perfect is not None and wrong >= 0.5:
            findings.append(
                Finding(
                    True,
                    f"reward {row.label} scores completions with a wrong answer {wrong:.2f} on average (perfect ones "
                    f"{perfect:.2f}): it cannot tell right from wrong; the gold is probably not the final answer "
                    "alone, check `columns.answer` or the dataset's adapter",
                )
            )
    if report.golds_unreadable:
        examples = ", ".join(repr(g) for g in report.golds_unreadable[:3])
        fatal = len(report.golds_unreadable) == n
        findings.append(
            Finding(
                fatal,
                f"{len(report.golds_unreadable)} of {n} gold answers cannot be read (e.g. {examples}); "
                "the accuracy reward gives them None and TRL skips them; check `columns.answer`",
            )
        )
    if report.perfect_wrong:
        gold, extracted = report.perfect_wrong[0]
        share = len(report.perfect_wrong) / n
        findings.append(
            Finding(
                share > PERFECT_WRONG_LIMIT,
                f"{len(report.perfect_wrong)} of {n} perfect completions score as wrong (gold {gold!r}, read as "
                f"{extracted!r}); the completion template must put the answer where the checker finds it: "
                "<answer>...</answer>, \\boxed{...} or '#### ...'",
            )
        )
    for row in report.rows:
        if row.skipped:
            findings.append(Finding(row.skip_is_fatal, f"reward {row.label} could not be scored: {row.skipped}"))
        elif row.signal == 0.0 and row.samples_only and report.model_source is None:
            findings.append(
                Finding(
                    False,
                    f"reward {row.label} is constant on the synthetic completions, which reuse the dataset's text; "
                    "only the model's samples can show it varying: run the preflight where the model loads",
                )
            )
        elif row.signal == 0.0:
            values = {v for v in row.means.values() if v is not None}
            constant = f"{values.pop():g}" if len(values) == 1 else "None"
            findings.append(
                Finding(
                    True,
                    f"reward {row.label} gives every completion of a prompt the same score ({constant}), perfect, "
                    "malformed and sampled alike: zero advantage, GRPO learns nothing from it; check its parameters "
                    "and the completion format",
                )
            )
    if report.samples_alike:
        temperature = effective_setting("GRPOConfig", recipe.grpo.trainer, "temperature")
        findings.append(
            Finding(
                False,
                f"the model's samples of each of the {report.groups} prompts are all the same text (temperature "
                f"{temperature:g}): GRPO's groups would score their completions alike, zero advantage, nothing "
                "learned; raise grpo.trainer.temperature (e.g. 0.7-1.0)",
            )
        )
    if prefilled:
        sft = " SFT targets leave out the <think> the prompt has;" if recipe.sft is not None else ""
        findings.append(
            Finding(
                False,
                f"completions start inside the reasoning (the chat template ends the prompt with <think>):{sft} "
                "format and tag_count are run with think_prefilled=true, and so is the eval's format rate",
            )
        )
    if why_not:
        findings.append(Finding(False, f"no model samples: {why_not}"))
    return findings
