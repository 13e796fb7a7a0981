"""The data chain: one code path from a stage's dataset section to the rows its trainer receives.

Training, ``--dry-run`` and ``recipe data`` all call ``prepare_stage``; each step counts the rows it
received and what it removed, and why. The steps, in this order, each optional except reading:

1. read: every source through its adapter, which skips rows and says why (a dataset's own flags
   such as OpenThoughts' ``correct`` under ``only_correct``; rows without a usable trace or gold);
   a ``mixture`` keeps a seeded share (``weight``) of each source; ``shuffle`` puts the source rows
   in a seeded order first.
2. ``drop_duplicates``: a question equal to an earlier one after normalising case, whitespace and
   punctuation.
3. ``near_duplicates``: a question whose word 3-grams are near an earlier one's (MinHash LSH).
4. ``decontaminate`` (on by default): a question sharing a word 8-gram with any eval set or a named
   benchmark (generated problems: the same question).
5. token lengths: prompts over ``max_prompt_tokens``, SFT completions over ``max_completion_tokens``.
6. ``difficulty``: prompts whose pass rate under the stage's starting model is outside
   [min_pass_rate, max_pass_rate].
7. ``fraction``: a seeded share of the rows left (this reads every row).
8. ``max_samples``: the first N rows left.

Every step streams, so without ``fraction`` reading stops once ``max_samples`` rows passed every
step: the stage gets ``max_samples`` rows that fit, and the counts are those of the rows read.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recipe_cli.atomic import write_atomic
from recipe_cli.config import DatasetSettings, Recipe
from recipe_cli.data.adapters import missing_gold
from recipe_cli.data.prompts import count_prompt_tokens, render_completion, row_prompt
from recipe_cli.data.sources import Counted, iter_examples, no_rows
from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)

LISTED = 100  # removed rows listed per step in the report (decontamination lists all of them)


@dataclass
class StepReport:
    """One step of the chain: rows in, rows removed by reason, the removed rows it lists, and what it measured."""

    step: str
    rows_in: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    listed: list[dict] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    list_all: bool = False

    @property
    def rows_out(self) -> int:
        return self.rows_in - sum(self.removed.values())

    def remove(self, reason: str, entry: dict | None = None) -> None:
        self.removed[reason] = self.removed.get(reason, 0) + 1
        if entry is not None and (self.list_all or len(self.listed) < LISTED):
            self.listed.append(entry)

    def record(self) -> dict:
        out = {"step": self.step, "rows_in": self.rows_in, "rows_out": self.rows_out, "removed": self.removed}
        return {**out, **self.details, **({"removed_rows": self.listed} if self.listed else {})}


@dataclass
class PreparedData:
    """A training stage's rows as the trainer receives them, and what the chain removed on the way."""

    stage: str
    rows: list[dict] = field(default_factory=list)
    read: int = 0  # rows out of the adapter that the chain took (until max_samples were kept)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows removed, every step
    prompt_tokens: list[int] = field(default_factory=list)  # of every row measured, kept or not
    completion_tokens: list[int] = field(default_factory=list)  # SFT: of every row measured, end-of-turn included
    kept: list[bool] = field(default_factory=list)  # whether each row measured is in ``rows``
    steps: list[StepReport] = field(default_factory=list)
    records: list[dict] = field(
        default_factory=list
    )  # each kept row with its question and gold, for data/<stage>.jsonl
    seed: int = 0
    dataset: dict = field(default_factory=dict)  # the dataset section, as validated

    def rows_text(self) -> str:
        """``data/<stage>.jsonl``: each kept row as the trainer receives it, with its question and gold, a line each."""
        return "".join(_json_line(r) for r in self.records)

    def fingerprint(self) -> str:
        """A short hash of ``rows_text``: other rows, or the same rows in another order, hash differently."""
        import hashlib

        return hashlib.sha256(self.rows_text().encode()).hexdigest()[:16]

    def kept_lengths(self, kind: str) -> list[int]:
        """``prompt_tokens`` or ``completion_tokens`` of the kept rows."""
        return [n for n, kept in zip(getattr(self, kind), self.kept, strict=True) if kept]

    def report(self) -> dict:
        """What ``data/<stage>.json`` holds: the seed, the rows kept, and every step."""
        return {
            "stage": self.stage,
            "seed": self.seed,
            "rows": len(self.rows),
            "steps": [s.record() for s in self.steps],
            "dataset": self.dataset,
        }


def _counted(items: Iterable[dict], step: StepReport) -> Iterator[dict]:
    for item in items:
        step.rows_in += 1
        yield item


def drop_exact_duplicates(items: Iterable[dict], step: StepReport) -> Iterator[dict]:
    from recipe_cli.data.duplicates import question_key

    first: dict[str, str] = {}
    for item in _counted(items, step):
        key = question_key(item["row"]["question"])
        if key in first:
            step.remove("same question as an earlier row", {"question": item["row"]["question"]})
            continue
        first[key] = item["row"]["question"]
        yield item


def drop_near_duplicates(items: Iterable[dict], step: StepReport, threshold: float, seed: int) -> Iterator[dict]:
    from recipe_cli.data.duplicates import NearDuplicates

    index = NearDuplicates(threshold, seed)
    kept: list[str] = []
    step.details["threshold"] = threshold
    for item in _counted(items, step):
        question = item["row"]["question"]
        near = index.seen(question)
        if near is not None:
            step.remove(
                f"near an earlier question (Jaccard >= {threshold:g})", {"question": question, "near": kept[int(near)]}
            )
            continue
        kept.append(question)
        yield item


def benchmark_index(recipe: Recipe, settings: DatasetSettings):
    """The n-gram index of the questions a stage is decontaminated against, and their sources by name."""
    from recipe_cli.data.decontamination import BenchmarkIndex, benchmark_questions
    from recipe_cli.data.sources import load_examples

    options = settings.decontaminate
    index = BenchmarkIndex(options.ngram, exact=options.match == "exact")
    counts = {}
    if options.against_eval and recipe.eval is not None:
        for _, title, dataset in recipe.eval.sets:  # every set the eval reports, not only the headline one
            label = f"eval {title}" if recipe.eval.datasets else "eval"  # named sets carry their name
            name = f"{label} ({dataset.describe_source()})"
            questions = [row["question"] for row in load_examples(dataset, recipe.seed)]
            counts[name] = len(questions)
            for question in questions:
                index.add(name, question)
    for path in options.benchmarks:
        questions = benchmark_questions(path)
        counts[path] = len(questions)
        for question in questions:
            index.add(path, question)
    return index, counts


def decontaminate(items: Iterable[dict], step: StepReport, recipe: Recipe, settings: DatasetSettings):
    index, counts = benchmark_index(recipe, settings)
    options = settings.decontaminate
    step.list_all = True
    rule = "same normalised question" if options.match == "exact" else f"shared word {options.ngram}-gram"
    step.details.update(rule=rule, benchmarks=counts)
    if not counts:
        step.details["note"] = "no eval set and no benchmarks: nothing to compare against"
    for item in _counted(items, step):
        question = item["row"]["question"]
        found = index.match(question) if counts else None
        if found is not None:
            gram, name, other = found
            step.remove(
                f"{rule} with a benchmark question",
                {"question": question, "ngram": " ".join(gram), "benchmark": name, "benchmark_question": other},
            )
            continue
        yield item


def measure_lengths(items: Iterable[dict], step: StepReport, prepared: PreparedData, recipe: Recipe, tokenizer):
    """Build each row as the trainer receives it and drop the ones over the token limits (counted on the rows)."""
    settings = getattr(recipe, prepared.stage).dataset
    if prepared.stage == "sft":
        from recipe_cli.chat import completion_end_id, sft_token_ids, text_token_ids, think_prefilled

        prefilled = think_prefilled(recipe, tokenizer)
        end_ids: dict[bool, int] = {}  # a plain-text prompt's completion ends with eos, a conversation's with its turn
        max_length = sft_max_length(recipe)
    step.details["limits"] = {
        key: getattr(settings, key) for key in ("max_prompt_tokens", "max_completion_tokens") if getattr(settings, key)
    }
    for item in _counted(items, step):
        row = item["row"]
        prompt = row_prompt(row, recipe.prompt)
        if prepared.stage == "sft" and "text" in row:  # plain text: every token trained on, as TRL does
            ids = text_token_ids(tokenizer, row["text"])
            prompt_tokens, completion_tokens = 0, len(ids)
            item.update(example={"input_ids": ids, "completion_mask": [1] * len(ids)}, completion=row["text"])
        elif prepared.stage == "sft":
            completion = render_completion(row, recipe.sft.completion)
            plain = isinstance(prompt, str)
            if plain not in end_ids:
                end_ids[plain] = completion_end_id(tokenizer, plain=plain)
            ids, mask = sft_token_ids(tokenizer, prompt, completion, prefilled=prefilled, end_id=end_ids[plain])
            completion_tokens = sum(mask)
            prompt_tokens = len(ids) - completion_tokens
            item.update(example={"input_ids": ids, "completion_mask": mask}, completion=completion)
        else:
            no_gold = missing_gold(f"{prepared.stage}.dataset", [row])  # TRL's formats: the gold is optional
            if no_gold is not None:
                raise no_gold
            prompt_tokens, completion_tokens = count_prompt_tokens(tokenizer, prompt), 0
            item["example"] = {"prompt": prompt, "answer": row["answer"]}
        item["measured"] = len(prepared.prompt_tokens)
        prepared.prompt_tokens.append(prompt_tokens)
        prepared.completion_tokens.append(completion_tokens)
        prepared.kept.append(False)  # set once the row survives every step
        reason = _too_long(settings, prompt_tokens, completion_tokens)
        if reason is None and prepared.stage == "sft" and prompt_tokens >= max_length:
            reason = PROMPT_FILLS_MAX_LENGTH  # TRL would truncate every completion token away
        if reason is not None:
            step.remove(
                reason,
                {"question": row["question"], "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
            )
            continue
        yield item


PROMPT_FILLS_MAX_LENGTH = "prompt fills sft.trainer.max_length"


def sft_max_length(recipe: Recipe) -> int:
    """The prompt length from which TRL 1.16 trains no completion token of an SFT row: the recipe's ``max_length``,
    else SFTConfig's default, where TRL keeps a row's first ``max_length`` tokens (``truncation_mode: keep_start``
    without packing, and ``bfd`` packing whatever the mode); no limit where it keeps the completion's tokens
    (``keep_end`` without packing; ``bfd_split`` and ``wrapped`` packing put the rest in other rows)."""
    from recipe_cli.trainer_settings import effective_setting

    trainer = recipe.sft.trainer
    value = effective_setting("SFTConfig", trainer, "max_length")
    if effective_setting("SFTConfig", trainer, "packing"):
        cuts_start = effective_setting("SFTConfig", trainer, "packing_strategy") == "bfd"
    else:
        cuts_start = effective_setting("SFTConfig", trainer, "truncation_mode") == "keep_start"
    return value if isinstance(value, int) and cuts_start else 10**9  # None: no truncation


def _too_long(settings: DatasetSettings, prompt_tokens: int, completion_tokens: int = 0) -> str | None:
    """Why a row is filtered out by the section's token limits, or None when it fits."""
    if settings.max_prompt_tokens is not None and prompt_tokens > settings.max_prompt_tokens:
        return "prompt over max_prompt_tokens"
    if settings.max_completion_tokens is not None and completion_tokens > settings.max_completion_tokens:
        return "completion over max_completion_tokens"
    return None


def filter_by_pass_rate(items: Iterable[dict], step: StepReport, rates, tokenizer, *, sample: bool) -> Iterator[dict]:
    """Keep the rows whose pass rate lies in [min_pass_rate, max_pass_rate]; sampled in chunks, cached.

    Without ``sample`` (a dry run) or without a model, cached counts are used and the other rows
    pass unmeasured (the report counts them).
    """
    from recipe_cli.chat import render_prompt
    from recipe_cli.data.difficulty import CHUNK_PROMPTS, pass_rate_histogram, prompt_key

    settings = rates.settings
    measured: list[int] = []
    unmeasured = 0
    step.details.update(
        samples=settings.samples,
        min_pass_rate=settings.min_pass_rate,
        max_pass_rate=settings.max_pass_rate,
        model=rates.model,
        setup=rates.setup,
        cache=str(rates.path),
    )
    counted = _counted(items, step)
    try:
        while True:
            chunk = list(itertools.islice(counted, CHUNK_PROMPTS))
            if not chunk:
                break
            prompts = [render_prompt(tokenizer, row_prompt(i["row"], rates.recipe.prompt)) for i in chunk]
            golds = [item["row"]["answer"] for item in chunk]
            keys = [prompt_key(p, g) for p, g in zip(prompts, golds, strict=True)]
            counts = rates.lookup(keys)
            missing = [i for i, count in enumerate(counts) if count is None]
            if missing and sample and rates.model is not None:
                sampled = rates.sample(
                    [prompts[i] for i in missing], [golds[i] for i in missing], [keys[i] for i in missing]
                )
                for i, count in zip(missing, sampled, strict=True):
                    counts[i] = count
            for item, count in zip(chunk, counts, strict=True):
                if count is None:
                    unmeasured += 1
                    yield item
                    continue
                measured.append(count)
                rate = count / settings.samples
                item["pass_rate"] = rate
                if rate < settings.min_pass_rate:
                    step.remove(
                        "pass rate under min_pass_rate", {"question": item["row"]["question"], "pass_rate": rate}
                    )
                elif rate > settings.max_pass_rate:
                    step.remove(
                        "pass rate over max_pass_rate", {"question": item["row"]["question"], "pass_rate": rate}
                    )
                else:
                    yield item
    finally:
        step.details.update(
            histogram=pass_rate_histogram(measured, settings.samples),
            cached=len(measured) - rates.sampled,  # read from the cache rather than sampled now
            sampled=rates.sampled,
            sampling_seconds=round(rates.seconds, 1),
        )
        if unmeasured:
            why = "a dry run samples nothing" if rates.model is not None else "the starting model is not there yet"
            step.details["unmeasured"] = unmeasured
            step.details["note"] = f"{unmeasured} prompts not measured ({why}); `recipe data` measures them"
        rates.close()


def take_fraction(items: Iterable[dict], step: StepReport, fraction: float, seed: int) -> Iterator[dict]:
    """A seeded share of the rows, in their order (reads every row)."""
    rows = list(_counted(items, step))
    keep = round(len(rows) * fraction)
    chosen = set(random.Random(seed).sample(range(len(rows)), keep))
    step.details["fraction"] = fraction
    for index, item in enumerate(rows):
        if index in chosen:
            yield item
        else:
            step.remove("outside the seeded fraction")


def take_first(items: Iterable[dict], step: StepReport, limit: int | None) -> Iterator[dict]:
    step.details["max_samples"] = limit
    for item in _counted(items, step):
        yield item
        if limit is not None and step.rows_in >= limit:
            return


def prepare_stage(
    recipe: Recipe, stage: str, tokenizer, *, model: str | None = None, sample: bool = False, check: bool = True
) -> PreparedData:
    """A training stage's rows through every step of the chain (see the module docstring).

    ``model`` is the stage's starting model, which the pass-rate filter samples from when
    ``sample`` is on (the main process writes the cache). ``check`` raises when nothing is left
    (a dry run reports it instead).
    """
    from recipe_cli.ranks import is_main

    settings: DatasetSettings = getattr(recipe, stage).dataset
    prepared = PreparedData(stage, seed=recipe.seed, dataset=settings.model_dump(mode="json", exclude_none=True))
    raw = Counted(None)
    read = StepReport("read")
    read.details["source"] = settings.describe_source()
    if settings.shuffle:
        read.details["shuffled"] = f"seed {recipe.seed}"
    items: Iterator[dict] = ({"row": row} for row in _counted(iter_examples(settings, recipe.seed, raw), read))
    steps = [read]
    if settings.drop_duplicates:
        steps.append(StepReport("exact duplicates"))
        items = drop_exact_duplicates(items, steps[-1])
    if settings.near_duplicates is not None:
        steps.append(StepReport("near duplicates"))
        items = drop_near_duplicates(items, steps[-1], settings.near_duplicates, recipe.seed)
    if settings.decontaminate.enabled:
        steps.append(StepReport("decontamination"))
        items = decontaminate(items, steps[-1], recipe, settings)
    steps.append(StepReport("token lengths"))
    items = measure_lengths(items, steps[-1], prepared, recipe, tokenizer)
    if settings.difficulty is not None:
        from recipe_cli.data.difficulty import PassRates
        from recipe_cli.runs import RunFolder

        folder = RunFolder(recipe).root / "data" / "pass_rates"
        rates = PassRates(recipe, settings.difficulty, model, folder, writes=sample and is_main())
        steps.append(StepReport("pass rate"))
        items = filter_by_pass_rate(items, steps[-1], rates, tokenizer, sample=sample)
    if settings.fraction is not None:
        steps.append(StepReport("fraction"))
        items = take_fraction(items, steps[-1], settings.fraction, recipe.seed)
    steps.append(StepReport("max_samples"))
    kept = list(take_first(items, steps[-1], settings.max_samples))
    items.close()  # finish the steps still open (a pass-rate chunk's bookkeeping)
    # rows the adapter read but left out, by its reasons (OpenThoughts: marked incorrect, no trace, no gold)
    read.rows_in, skipped = raw.count, raw.count - read.rows_in
    read.removed.update(raw.skipped)
    unexplained = skipped - sum(raw.skipped.values())
    if unexplained:
        read.removed["skipped by the adapter (unusable rows)"] = unexplained
    prepared.read = read.rows_out
    prepared.steps = steps
    for item in kept:
        prepared.kept[item["measured"]] = True
        prepared.rows.append(item["example"])
        prepared.records.append(_record(item, stage))
    for step in steps[1:]:
        for reason, count in step.removed.items():
            prepared.dropped[reason] = prepared.dropped.get(reason, 0) + count
    _check(prepared, settings, f"{stage}.dataset", check)
    return prepared


def _record(item: dict, stage: str) -> dict:
    """A kept row as ``data/<stage>.jsonl`` writes it: the trainer's row, its question and gold, what was measured."""
    row = item["row"]
    record = {"question": row["question"], "answer": row["answer"]}
    if stage == "sft":
        record["completion"] = item["completion"]
    if "source" in row:
        record["source"] = row["source"]
    if "pass_rate" in item:
        record["pass_rate"] = item["pass_rate"]
    return {**record, **item["example"]}


def _check(prepared: PreparedData, settings: DatasetSettings, where: str, check: bool) -> None:
    if not prepared.steps[0].rows_in:
        raise no_rows(settings)
    for step in prepared.steps:
        for reason, count in step.removed.items():
            log.info("%s: %s removed %d of %d rows: %s", where, step.step, count, step.rows_in, reason)
    if not check or prepared.rows:
        return
    if set(prepared.dropped) == {PROMPT_FILLS_MAX_LENGTH}:
        lengths = [n for n, kept in zip(prepared.prompt_tokens, prepared.kept, strict=True) if not kept]
        raise RecipeError(
            f"{where}: every prompt fills sft.trainer.max_length (the shortest has {min(lengths)} tokens, the "
            f"longest {max(lengths)}), so no completion token would be trained; raise max_length within the "
            "model's positions, or shorten the prompts (prompt.system) or filter them (dataset.max_prompt_tokens)"
        )
    too_long = [
        f"every {part} is longer than {key}={getattr(settings, key)}"
        for part, key in (("prompt", "max_prompt_tokens"), ("completion", "max_completion_tokens"))
        if any(key in reason for reason in prepared.dropped)
    ]
    if too_long and sum(prepared.dropped.values()) == sum(
        n for reason, n in prepared.dropped.items() if "max_" in reason and "tokens" in reason
    ):
        raise RecipeError(f"{where}: {' or '.join(too_long)}; raise it")
    removed = "; ".join(f"{s.step} removed {s.rows_in - s.rows_out}" for s in prepared.steps if s.removed)
    raise RecipeError(
        f"{where}: no row is left after the data steps ({removed}); loosen them (`recipe data` lists why)"
    )


def _json_line(row: dict) -> str:
    r"""One JSONL line, readable text kept, with the two line separators a ``splitlines`` reader would break on
    escaped (GSM8K train has them).

    >>> _json_line({"q": "a\u2028b é"})
    '{"q": "a\\u2028b é"}\n'
    """
    return json.dumps(row, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def write_stage_data(prepared: PreparedData, folder: Path) -> tuple[Path, Path]:
    """``<stage>.jsonl`` (the rows as the trainer receives them, gold included) and ``<stage>.json`` (the report),
    each written whole or not at all, in ``runs/<name>/data``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = folder / f"{prepared.stage}.jsonl"
    report = folder / f"{prepared.stage}.json"
    for path, text in (
        (rows, prepared.rows_text()),
        (report, json.dumps(prepared.report(), indent=2, ensure_ascii=False) + "\n"),
    ):
        write_atomic(path, text)
    return rows, report
