"""The model card of a pushed revision: what was trained from what, on which data, its evals and curves.

Everything comes from the run folder (the recipe saved with the run, ``run.json``, the eval
summaries, ``trainer_state.json``), so a card describes what produced the checkpoint, not today's
recipe; only an eval of exactly the pushed folder on every problem is published as its accuracy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from recipe_cli.answers import MODE_LEGEND
from recipe_cli.config import DIVERGENCES, HUB_ID, EvalSettings, GRPOSettings, PromptSettings, Recipe, is_local_path
from recipe_cli.errors import RecipeError
from recipe_cli.evaluate import package_versions, read_summaries
from recipe_cli.models import adapter_config
from recipe_cli.peak_memory import describe_peaks
from recipe_cli.report import PLOT_ALT, embed_plots
from recipe_cli.runs import RunFolder

log = logging.getLogger(__name__)

# The packages whose versions a card lists.
CARD_PACKAGES = ("recipe-cli", "torch", "transformers", "trl", "peft", "datasets", "huggingface_hub")
CURVE_ROWS = 12  # rows of a training-curve table in the card
PLOTS_DIR = "plots"  # where the card's PNGs go in the repo; the card links them relatively, so the Hub shows them


def render_model_card(
    recipe: Recipe,
    stage: str,
    base_model: str,
    *,
    lora: bool = False,
    merged: bool = False,
    revision: str = "main",
    checkpoint: Path | None = None,
    dtype: str | None = None,
    plots: dict[str, str] | None = None,
) -> str:
    """The README.md of a pushed revision: Hub metadata, what was trained from what, evals, curves, the recipe.

    ``checkpoint`` is the trained folder pushed (default: the stage's final one); the curves of the
    pushed stage come from it (an intermediate one has its own log), and only an eval of exactly
    that folder, on every problem, is published as its accuracy. ``plots`` maps the names of
    ``recipe_cli.plots`` to the PNGs' paths in the repo, which the card embeds. ``merged``: the revision
    holds the base model with the LoRA adapter in ``checkpoint`` merged in (``push.merge_lora``).
    """
    from huggingface_hub import ModelCardData

    settings = recipe.push
    repo_id = settings.repo_id if settings else recipe.name
    run = RunFolder(recipe)
    recipe = trained_recipe(run)  # what produced the checkpoint, not today's overrides
    summaries = own_full_evals(recipe, read_summaries(recipe))
    base_id = base_model if HUB_ID.match(base_model) and not is_local_path(base_model) else None
    sources = [s for d in _datasets(recipe).values() for s in getattr(d, "sources", [d])]
    datasets = sorted({s.path for s in sources if s.path and not is_local_path(s.path)})
    tags = ["recipe", "reasoning", "deepseek-r1", "trl", *recipe.training_stages]
    if lora:
        tags += ["lora", "peft"]
    if checkpoint is None and run.finished(stage):
        checkpoint = Path(run.finished(stage)["path"])
    pushed_label = _pushed_eval(run, stage, checkpoint, summaries)
    metric = _model_index_result(summaries[pushed_label]) if pushed_label else None
    data = ModelCardData(
        base_model=base_id,
        datasets=datasets or None,
        library_name="peft" if lora else "transformers",
        license=settings.license if settings else None,
        model_name=repo_id.split("/")[-1],
        pipeline_tag="text-generation",
        tags=tags,
        eval_results=[metric] if metric else None,
    )
    origin = _describe_base(recipe, run, base_model, base_id)
    step = checkpoint.name.removeprefix("checkpoint-") if checkpoint else ""
    which = f"{stage}** (step {step})" if step.isdigit() else f"{stage}**"
    lines = ["---", data.to_yaml(), "---", "", f"# {repo_id.split('/')[-1]}", ""]
    stages = " -> ".join({"sft": "cold-start SFT", "grpo": "GRPO"}[s] for s in recipe.training_stages)
    lines += [
        f"This is the **{which} checkpoint of the run `{recipe.name}` ({stages}), made with `recipe`, "
        "which runs the DeepSeek-R1 recipe (cold-start SFT on worked solutions, then GRPO with verifiable "
        f"rewards) from one YAML file on top of TRL. It starts from {origin}.",
        "",
        _describe_weights(repo_id, revision, lora, base_id, base_model, _merged_adapter(checkpoint) if merged else ""),
        "",
        *([_describe_dtype(dtype, lora, _precision(run, stage), merged), ""] if dtype else []),
        *_describe_use(recipe, summaries.get(pushed_label) if pushed_label else None, checkpoint, lora),
        "## Data",
        "",
    ]
    lines += [f"- {section}: {_describe_dataset(dataset)}" for section, dataset in _datasets(recipe).items()]
    if recipe.grpo is not None:
        rewards = ", ".join(f"`{r.name}` (weight {r.weight:g})" for r in recipe.grpo.rewards)
        lines.append(f"- GRPO rewards: {rewards}")
        lines.append(f"- GRPO divergence to the reference model: {describe_divergence(recipe.grpo)}")
    plots = plots or {}
    lines += ["", "## Evaluation", "", *_eval_table(recipe, summaries, pushed_label), ""]
    lines += embed_plots(plots, ["eval"])
    lines += ["## Training curves", ""]
    lines += embed_plots(plots, [name for name in PLOT_ALT if name != "eval"])
    lines += _curves(recipe, run, stage, checkpoint)
    recipe_yaml = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
    lines += ["", "## Recipe", "", "The full recipe, as saved with the run (overrides applied):", ""]
    lines += ["```yaml", recipe_yaml.rstrip(), "```"]
    versions = [f"- {name} {version}" for name, version in package_versions(CARD_PACKAGES).items() if version]
    lines += ["", "## Framework versions", "", *versions]
    lines += ["", "## License", ""]
    if settings and settings.license:
        lines.append(f"`{settings.license}` (set by the recipe's `push.license`).")
    else:
        lines.append("Not set by the recipe (`push.license`); the license of the base model and data applies.")
    return "\n".join(lines) + "\n"


def card_plots(run: RunFolder, stage: str, checkpoint: Path, staging: Path) -> dict[str, Path]:
    """The PNG plots the card embeds, drawn into ``staging/plots`` from the run (``recipe_cli.report``)."""
    from recipe_cli.report import write_card_plots

    return write_card_plots(run.root, stage, checkpoint, staging / PLOTS_DIR)


def trained_recipe(run: RunFolder) -> Recipe:
    """The recipe the run's training was started with (saved with its overrides), else the given one."""
    try:
        return run.recorded_recipe() or run.recipe
    except RecipeError as error:
        log.warning("the card describes the current recipe: the saved one no longer validates (%s)", error)
        return run.recipe


def _datasets(recipe: Recipe) -> dict:
    return {name: getattr(recipe, name).dataset for name in ("sft", "grpo", "eval") if getattr(recipe, name)}


def _describe_base(recipe: Recipe, run: RunFolder, base_model: str, base_id: str | None) -> str:
    if base_id:
        return f"[{base_id}](https://huggingface.co/{base_id})"
    tiny = recipe.model.tiny
    if tiny is not None and Path(base_model) == run.stage_dir("base"):
        return (
            f"no pretrained model: a tiny Llama-type model built from seed {recipe.seed} (hidden size "
            f"{tiny.hidden_size}, {tiny.num_layers} layers, {tiny.num_heads} heads, vocabulary {tiny.vocab_size})"
        )
    return f"the local model folder `{base_model}` (not on the Hub)"


def _merged_adapter(adapter: Path | None) -> str:
    """The merged adapter in a few words, read from its own config, e.g. ``r 16, alpha 32``."""
    config = adapter_config(adapter) if adapter is not None else {}
    return f"r {config.get('r')}, alpha {config.get('lora_alpha')}" if config else ""


def _describe_weights(
    repo_id: str, revision: str, lora: bool, base_id: str | None, base_model: str = "", merged: str = ""
) -> str:
    """How to load the revision, then (``_describe_use``) how to prompt it and decode as the eval did; ``merged``
    describes the LoRA adapter merged into the full weights, if one was."""
    where = "" if revision == "main" else f', revision="{revision}"'
    if lora:
        code = (
            "from peft import AutoPeftModelForCausalLM\n"
            "from transformers import AutoTokenizer\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}"{where})\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{where})'
        )
        if base_id:
            intro = f"This revision holds a LoRA adapter on top of {base_id}; peft loads it with its base model:"
        else:  # peft loads the base from the adapter's base_model_name_or_path: a path on the machine that trained
            intro = (
                f"This revision holds a LoRA adapter of a base model that is not on the Hub (`{base_model}`, the "
                "adapter's `base_model_name_or_path`): peft loads it only where that folder exists. Pushed with "
                "`push.merge_lora: true`, the revision holds full weights that load anywhere. With the base model:"
            )
    else:
        code = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}"{where})\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{where})'
        )
        intro = "This revision holds the full weights:"
        if merged:
            intro = (
                f"This revision holds full weights: the base model with the LoRA adapter the run trained ({merged}) "
                "merged in, so it loads without peft:"
            )
    return f"{intro}\n\n```python\n{code}\n```"


def _describe_use(recipe: Recipe, summary: dict | None, checkpoint: Path | None, lora: bool) -> list[str]:
    """Code that prompts the model and decodes as the eval of this checkpoint did, and how that eval read answers.

    The prompt is the eval's (the recipe's system message and user template through the chat
    template's generation prompt, or its plain-text template), and decoding is greedy with the
    eval's token budget and stop tokens: ``model.generate`` alone would follow generation_config.json,
    which a base model's sampling defaults and repetition penalty (Qwen2.5's instruct models) may fill.
    """
    prompt = PromptSettings(**summary["prompt"]) if summary and summary.get("prompt") else recipe.prompt
    decoding = (summary or {}).get("decoding") or {}
    budget = (decoding.get("greedy") or {}).get("max_new_tokens")
    if budget is None:  # no eval of this checkpoint: the recipe's budget, else the eval's default
        budget = recipe.eval.max_new_tokens if recipe.eval else EvalSettings.model_fields["max_new_tokens"].default
    question = 'question = "Tom has 3 boxes of 12 pencils and gives away 5 pencils. How many pencils are left?"'
    if prompt.template is not None:
        code = [
            question,
            f"prompt = {_literal(prompt.template)}.format(question=question)",
            'inputs = tokenizer(prompt, return_tensors="pt")',
        ]
    else:
        user = "question" if prompt.user == "{question}" else f"{_literal(prompt.user)}.format(question=question)"
        system = [f'    {{"role": "system", "content": {_literal(prompt.system)}}},'] if prompt.system else []
        code = [
            question,
            "messages = [",
            *system,
            f'    {{"role": "user", "content": {user}}},',
            "]",
            "inputs = tokenizer.apply_chat_template(",
            '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True',
            ")",
        ]
    stop = decoding.get("stop_token_ids") or []
    eos = f", eos_token_id={stop}" if stop and not _stops_at(checkpoint, stop, lora) else ""
    code += [
        f"# greedy, at most {budget} new tokens, no repetition penalty: as the evaluation decoded",
        f"output = model.generate(**inputs, do_sample=False, max_new_tokens={budget}, repetition_penalty=1.0{eos})",
        'completion = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)',
    ]
    where = "as the evaluation prompted it (the run's prompt" + (
        ", plain text)" if prompt.template is not None else " through the chat template)"
    )
    lines = [f"To get the completions the evaluation below scored, prompt the model {where} and decode greedily:"]
    lines += ["", "```python", *code, "```", ""]
    if summary is not None:
        lines += [_describe_reading(summary, budget), ""]
    return lines


def _literal(text: str) -> str:
    """A Python string literal of ``text`` in double quotes (JSON's escapes are Python's).

    >>> print(_literal('Say "hi"\\n'))
    "Say \\"hi\\"\\n"
    """
    return json.dumps(text, ensure_ascii=False)


def _stops_at(checkpoint: Path | None, stop: list[int], lora: bool) -> bool:
    """Whether the uploaded generation_config.json ends generation at every one of the eval's stop tokens.

    An adapter has none (peft reads its base model's), so its card passes them to ``generate``.
    """
    config = checkpoint / "generation_config.json" if checkpoint is not None and not lora else None
    if config is None or not config.is_file():
        return False
    eos = json.loads(config.read_text()).get("eos_token_id")
    return set(stop) <= set(eos if isinstance(eos, list) else [eos])


def _describe_reading(summary: dict, budget: int) -> str:
    """How the eval read and judged an answer (the accuracy reward's checker, in the summary's mode)."""
    after = summary.get("answer_after")
    where = f"after the last `{after}`, " if after else ""
    if summary.get("accuracy_mode") == "strict":
        how = (
            f"strict: {where}the last closed `<answer>...</answer>`, else the last `\\boxed{{}}`, else `####`; "
            f"a completion still going at {budget} tokens counts as wrong"
        )
    else:
        how = (
            f"flexible: {where}the last `<answer>`, `\\boxed{{}}` or `####`, else a final-answer phrase, a "
            "formula or the last number"
        )
    call = f'completion, gold, mode="{summary.get("accuracy_mode", "flexible")}"' + (
        f', answer_after="{after}"' if after else ""
    )
    return (
        f"Accuracy reads the answer as the run's accuracy reward does ({how}) and compares it with the gold "
        f"answer as a number, else with math-verify: `recipe_cli.answers.score_completion({call}, truncated=...)`."
    )


def _precision(run: RunFolder, stage: str) -> dict | None:
    """The precision run.json records for a stage (None: recorded before runs kept it)."""
    return (run.read()["stages"].get(stage) or {}).get("precision")


def _describe_dtype(dtype: str, lora: bool, precision: dict | None = None, merged: bool = False) -> str:
    """The pushed dtype, and the precision the stage trained with as run.json records it (``recipe_cli.precision``).

    >>> bf16 = {"master": "float32", "base": "bfloat16", "compute": "bfloat16"}  # a LoRA run on a GPU
    >>> _describe_dtype("bfloat16", False, bf16, merged=True)  # doctest: +NORMALIZE_WHITESPACE
    'The weights are stored in bfloat16. Training kept float32 master weights for the adapter only, on a frozen
     bfloat16 base model, and computed in bfloat16.'
    """
    what = "The adapter's weights are" if lora else "The weights are"
    precision = precision or {}
    computed = (
        f"computed in {precision['compute']}" if precision.get("compute") else "computed in the recipe's `model.dtype`"
    )
    if merged:  # full weights now, but only the adapter trained: the base stayed as loaded
        base = precision.get("base")
        frozen = f"a frozen {base} base model" if base else "the frozen base model"
        return (
            f"{what} stored in {dtype}. Training kept {precision.get('master', 'float32')} master weights for the "
            f"adapter only, on {frozen}, and {computed}."
        )
    return (
        f"{what} stored in {dtype}. Training kept {precision.get('master', 'float32')} master weights"
        + (" for the adapter" if lora else "")
        + f" and {computed}."
    )


def describe_divergence(grpo: GRPOSettings) -> str:
    """The GRPO penalty in words: which divergence, where it goes, its coefficient.

    >>> grpo = GRPOSettings(
    ...     dataset={"adapter": "arithmetic"}, rewards=[{"name": "accuracy"}], trainer={"beta": 0.04}, divergence="js"
    ... )
    >>> describe_divergence(grpo).split(", ")[-2:]
    ["added to each completion token's loss", 'beta 0.04']
    >>> describe_divergence(GRPOSettings(dataset={"adapter": "arithmetic"}, rewards=[{"name": "accuracy"}]))
    'none (`trainer.beta` 0: no reference model)'
    """
    record = grpo.describe_divergence()
    if record["name"] == "none":
        return "none (`trainer.beta` 0: no reference model)"
    where = (
        "added to each completion token's loss"
        if record["in"] == "loss"
        else "subtracted from each completion's reward (summed over its tokens) before advantages"
    )
    return f"`{record['name']}` ({DIVERGENCES[record['name']]}), {where}, beta {record['beta']:g}"


def _describe_dataset(dataset) -> str:
    if getattr(dataset, "mixture", None):
        return "a mixture: " + "; ".join(f"{_describe_dataset(s)} x{s.weight:g}" for s in dataset.mixture)
    if dataset.adapter == "arithmetic":
        noise = f", teacher error rate {dataset.teacher_error_rate:g}" if dataset.teacher_error_rate else ""
        return f"generated arithmetic word problems (split {dataset.split}, {dataset.max_samples} problems{noise})"
    if dataset.path and not is_local_path(dataset.path):
        name = f"[{dataset.path}](https://huggingface.co/datasets/{dataset.path})"
    else:
        name = f"the local file `{dataset.path}`"
    config = f", config {dataset.config}" if dataset.config else ""
    limit = f", first {dataset.max_samples} rows" if dataset.max_samples else ""
    return f"{name} (split {dataset.split}{config}{limit})"


def _pushed_eval(run: RunFolder, stage: str, checkpoint: Path | None, summaries: dict[str, dict]) -> str | None:
    """The label of the eval that measured exactly the pushed checkpoint, else None.

    That is the stage's final folder evaluated on every problem: a summary of another folder (the
    final GRPO checkpoint when checkpoint-50 is pushed) or of a ``--limit`` run is not this model's score.
    """
    entry = run.finished(stage)
    if entry is None or checkpoint is None or checkpoint.resolve() != Path(entry["path"]).resolve():
        return None
    final = checkpoint.resolve()
    headline = [label for label in summaries if "@" not in label]  # model-index: the headline eval set only
    for label in sorted(headline, key=lambda label: label != stage):  # the stage's own label first
        summary = summaries[label]
        if summary.get("limit") is None and summary.get("model") and Path(summary["model"]).resolve() == final:
            return label
    return None


def own_full_evals(recipe: Recipe, summaries: dict[str, dict]) -> dict[str, dict]:
    """The evals a card shows: the run's own models (base, sft, grpo) as they are, measured on every problem.

    An eval of another folder (``recipe eval --model``), with ``--limit``, or of a model its stage
    replaced since (trained again or further: ``recipe_cli.report.outdated_evals``) is kept in the
    run folder but never shown as this run's result.
    """
    from recipe_cli.pipeline import run_stage_folders
    from recipe_cli.report import outdated_evals, recorded_stages

    own = run_stage_folders(recipe)
    root = RunFolder(recipe).root
    outdated = outdated_evals(root, recorded_stages(root), summaries)
    shown = {}
    for label, summary in summaries.items():
        folder, model = summary.get("model"), label.split("@", 1)[0]  # sft@math500: sft on another eval set
        if label in outdated or model not in own or summary.get("limit") is not None or not folder:
            continue
        if _same_folder(folder, own[model]):
            shown[label] = summary
    return shown


def _same_folder(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve() if Path(a).exists() else a == b


def _model_index_result(summary: dict):
    """An eval summary's accuracy as a model-index result, when it was measured on a Hub dataset.

    The dataset comes from the summary (what was measured), not from today's recipe.
    """
    from huggingface_hub import EvalResult

    dataset = summary.get("dataset_settings") or {}
    mode = f"{summary['accuracy_mode']}, " if summary.get("accuracy_mode") else ""  # strict or flexible
    path = dataset.get("path")
    if not path or is_local_path(path):
        return None
    return EvalResult(
        task_type="text-generation",
        task_name="Math word problems",
        dataset_type=path,
        dataset_name="GSM8K" if dataset.get("adapter") == "gsm8k" else path,
        dataset_config=dataset.get("config"),
        dataset_split=summary.get("split") or dataset.get("split"),
        metric_type="accuracy",
        metric_value=round(float(summary["accuracy"]), 4),
        metric_name=f"accuracy (greedy, {mode}{summary.get('n', '?')} problems)",
    )


def _eval_table(recipe: Recipe, summaries: dict[str, dict], pushed_label: str | None = None) -> list[str]:
    """One row per evaluated model, with pass@k and maj@k columns when a sampling pass measured them.

    The row of ``pushed_label`` is marked as this checkpoint's; rows measured with ``--limit`` say so.
    """
    if not summaries:
        return ["No evaluation was run."]
    columns = [("n", ("n",)), ("accuracy", ("accuracy",))]
    modes = {summary.get("accuracy_mode") for summary in summaries.values()}
    mode = modes.pop() if len(modes) == 1 else None  # None: summaries written before evals named their mode
    if mode is not None:  # the headline mode named, the other one next to it (lm-eval's strict/flexible)
        other = "flexible" if mode == "strict" else "strict"
        columns = [("n", ("n",)), (f"accuracy ({mode})", ("accuracy",)), (other, (f"accuracy_{other}",))]
    columns.append(("format", ("format_rate",)))
    columns.append(("truncated", ("truncation_rate",)))
    greedy_columns = len(columns)
    for metric in ("pass@k", "maj@k"):
        # evaluate.py writes them under summary["sampled"][metric], keyed by k as a string
        ks = sorted({int(k) for s in summaries.values() for k in _lookup(s, ("sampled", metric)) or {}})
        columns += [(metric.removesuffix("k") + str(k), ("sampled", metric, str(k))) for k in ks]
    lines = [
        "| model | dataset | split | " + " | ".join(title for title, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    order = ["base", *recipe.training_stages]
    for label, summary in sorted(summaries.items(), key=lambda item: (_rank(order, item[0]), item[0])):
        name = f"**{label}** (this checkpoint)" if label == pushed_label else label
        if summary.get("limit") is not None:
            name += f" (--limit {summary['limit']})"
        cells = [_cell(_lookup(summary, keys)) for _, keys in columns]
        lines.append(
            f"| {name} | {summary.get('dataset', '')} | {summary.get('split', '')} | " + " | ".join(cells) + " |"
        )
    notes = []
    if recipe.eval is not None:
        modes = f", {MODE_LEGEND}" if mode is not None else ""
        notes.append(
            f"Greedy decoding, at most {_budgets(summaries, recipe.eval.max_new_tokens)}; accuracy by the recipe's "
            f"answer checker (the accuracy reward){modes}; format: the completion has <think> and <answer>."
        )
    if len(columns) > greedy_columns:
        notes.append(
            "pass@k (unbiased estimator) and maj@k (majority vote over the first k samples) come from a "
            "seeded sampling pass (`eval.num_samples` completions per problem)."
        )
    if any(s.get("limit") is not None for s in summaries.values()):
        notes.append("Rows marked `--limit N` were measured on the first N problems only.")
    if pushed_label is None:
        notes.append("No row is an evaluation of this exact checkpoint on every problem of the split.")
    return [*lines, "", " ".join(notes)] if notes else lines


def _budgets(summaries: dict[str, dict], default: int) -> str:
    """The token budgets the rows were generated with, as the summaries record them (an eval run again with
    another ``eval.max_new_tokens`` keeps its own).

    >>> budget = {"decoding": {"greedy": {"max_new_tokens": 40}}}
    >>> _budgets({"base": budget, "sft": budget}, 40)
    '40 new tokens'
    >>> _budgets({"base": budget, "sft": budget, "grpo": {"decoding": {"greedy": {"max_new_tokens": 20}}}}, 40)
    '40 new tokens (base, sft), 20 (grpo)'
    """
    labels: dict[int, list[str]] = {}
    for label, summary in summaries.items():
        labels.setdefault(_lookup(summary, ("decoding", "greedy", "max_new_tokens")) or default, []).append(label)
    if len(labels) == 1:
        return f"{next(iter(labels))} new tokens"
    parts = [f"{budget} ({', '.join(names)})" for budget, names in labels.items()]
    return parts[0].replace(" (", " new tokens (", 1) + ", " + ", ".join(parts[1:])


def _lookup(summary: dict, keys: tuple[str, ...]) -> Any:
    """The value at a path of keys in a nested summary, None where a level is missing.

    >>> _lookup({"sampled": {"pass@k": {"4": 0.5}}}, ("sampled", "pass@k", "4"))
    0.5
    >>> _lookup({"sampled": None}, ("sampled", "maj@k")) is None
    True
    """
    for key in keys:
        summary = summary.get(key) if isinstance(summary, dict) else None
    return summary


def _rank(order: list[str], label: str) -> int:
    return order.index(label) if label in order else len(order)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _curves(recipe: Recipe, run: RunFolder, stage: str, checkpoint: Path | None) -> list[str]:
    """Tables of the logged training curves (loss for SFT, rewards for GRPO) up to the pushed stage."""
    lines = []
    stages = recipe.training_stages
    for name in stages[: stages.index(stage) + 1] if stage in stages else [stage]:
        entry = run.finished(name)
        folder = checkpoint if name == stage and checkpoint else Path(entry["path"]) if entry else None
        state = folder / "trainer_state.json" if folder else None
        if state is None or not state.is_file():
            continue
        history = json.loads(state.read_text()).get("log_history", [])
        keys = ["loss", "mean_token_accuracy"] if name == "sft" else ["reward", "reward_std"]
        keys += sorted({k for row in history for k in row if k.startswith("rewards/") and k.endswith("/mean")})
        keys += sorted({k for row in history for k in row if k.startswith("divergence/")})
        rows = curve_rows(history, keys)
        if rows:
            shown = [k for k in keys if any(k in row for row in rows)]
            lines += [f"{name.upper()} ({_every(rows)}, from trainer_state.json):", ""]
            lines += ["| step | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
            lines += [f"| {row['step']} | " + " | ".join(_cell(row.get(k)) for k in shown) + " |" for row in rows]
            lines.append("")
        if name == "grpo":
            lines += _step_time_shares(history)
        memory = describe_peaks(history)
        if memory:
            lines += [f"{name.upper()} memory of the main process: {memory}.", ""]
    if not lines:
        return ["No training log was saved with the checkpoints (trainer_state.json), so no curves are shown."]
    return lines[:-1]


def _step_time_shares(history: list[dict]) -> list[str]:
    """Where GRPO's step time went, as shares (recipe_cli.step_time), when the run logged its phases."""
    from recipe_cli.report import step_time_shares

    shares = step_time_shares(history)
    if not shares:
        return []
    parts = ", ".join(f"{phase} {share:.0%}" for phase, share in sorted(shares.items(), key=lambda item: -item[1]))
    return [
        f"GRPO step time: {parts} (generation, reference/old log-probabilities, rewards, policy "
        "forward+backward, recipe's callbacks).",
        "",
    ]


def _every(rows: list[dict]) -> str:
    gaps = {b["step"] - a["step"] for a, b in zip(rows, rows[1:], strict=False)}
    if len(gaps) != 1:
        return "a sample of the logged steps"
    gap = gaps.pop()
    return "every step" if gap == 1 else f"every {gap} steps"


def curve_rows(history: list[dict], keys: list[str], max_rows: int = CURVE_ROWS) -> list[dict]:
    """Logged rows holding any of ``keys``, thinned evenly to at most ``max_rows`` (the last one kept).

    >>> history = [{"step": s, "loss": 1.0 / s} for s in range(1, 11)] + [{"step": 10, "train_runtime": 3.0}]
    >>> [row["step"] for row in curve_rows(history, ["loss"], max_rows=4)]
    [1, 4, 7, 10]
    """
    logged = [row for row in history if any(key in row for key in keys)]
    if len(logged) <= max_rows:
        return logged
    picks = {round(i * (len(logged) - 1) / (max_rows - 1)) for i in range(max_rows)}
    return [logged[i] for i in sorted(picks)]
