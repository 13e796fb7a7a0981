"""Stage 4: publish a checkpoint to the Hugging Face Hub in one verified commit, with a model card from the run.

``plan_push`` decides everything first (the checkpoint, the files, the branch) and writes the card
to ``runs/<name>/push/<revision>/README.md``, so ``recipe push --dry-run`` shows exactly what a push
uploads. ``push_checkpoint`` then makes one commit on the branch and reads the branch back: a push
is reported only once the Hub's head of the branch is that commit and holds every file.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml

from recipe_cli.checkpoints import MARKER, is_complete
from recipe_cli.config import DIVERGENCES, HUB_ID, GRPOSettings, Recipe, is_local_path
from recipe_cli.errors import RecipeError
from recipe_cli.evaluate import read_summaries
from recipe_cli.models import adapter_base, is_adapter
from recipe_cli.peak_memory import describe_peaks
from recipe_cli.report import PLOT_ALT, embed_plots
from recipe_cli.runs import RunFolder
from recipe_cli.samples import SAMPLES_FILE
from recipe_cli.weights import convert_checkpoint, stored_dtypes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Files that resume training rather than describe a model: pushed only with push.include_training_state.
TRAINING_STATE = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "log-state-*.json",
)
# Seconds to wait before each new attempt at a Hub call that failed on the network or with a 5xx/429.
RETRY_DELAYS = (2.0, 8.0, 30.0)
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
VERSIONED_PACKAGES = ("recipe-cli", "torch", "transformers", "trl", "peft", "datasets", "huggingface_hub")
CURVE_ROWS = 12  # rows of a training-curve table in the card
PLOTS_DIR = "plots"  # where the card's PNGs go in the repo; the card links them relatively, so the Hub shows them


@dataclass(frozen=True)
class UploadFile:
    """One file of a push: where it goes in the repo, where it is on disk, its size in bytes."""

    path_in_repo: str
    local: Path
    size: int


@dataclass(frozen=True)
class PushPlan:
    """Everything a push will do, decided before any network call."""

    repo_id: str
    revision: str
    stage: str
    checkpoint: Path  # the folder whose files are uploaded (the merged copy with push.merge_lora)
    lora: bool  # the upload is a LoRA adapter
    files: list[UploadFile]  # the card (README.md) included
    card_path: Path
    dtype: str = "float32"  # of the uploaded weights
    converted_from: str | None = None  # the checkpoint's dtype, when the upload is a converted copy

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)


@dataclass(frozen=True)
class PushResult:
    """A commit the Hub confirmed: its branch head is ``commit_oid`` and holds every pushed file."""

    repo_id: str
    revision: str
    commit_oid: str
    commit_url: str
    files: int
    total_bytes: int


def default_revision(stage: str, folder_name: str) -> str:
    """The branch a checkpoint goes to: the stage's name, or ``<stage>-step-N`` for ``checkpoint-N``.

    >>> default_revision("grpo", "grpo")
    'grpo'
    >>> default_revision("grpo", "checkpoint-50")
    'grpo-step-50'
    """
    step = folder_name.removeprefix("checkpoint-")
    return f"{stage}-step-{step}" if folder_name.startswith("checkpoint-") and step.isdigit() else stage


def is_training_state(path_in_repo: str) -> bool:
    """Whether a file only serves to resume training (optimizer, scheduler, RNG states, pickled arguments).

    >>> is_training_state("optimizer.pt"), is_training_state("rng_state_3.pth"), is_training_state("model.safetensors")
    (True, True, False)
    """
    return any(fnmatch.fnmatch(path_in_repo, pattern) for pattern in TRAINING_STATE)


def list_upload_files(folder: Path, include_training_state: bool = False) -> list[UploadFile]:
    """The files of a checkpoint folder that a push uploads, sorted by path.

    Left out: intermediate ``checkpoint-*`` folders (push one with ``--checkpoint``), hidden files,
    a README.md (the card replaces it), the checkpoint's completion marker, the completions GRPO kept
    for the report (training prompts: the report is not the model's to publish) and, unless asked, the
    training state.
    """
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        name = relative.as_posix()
        if (
            not path.is_file()
            or relative.parts[0].startswith("checkpoint-")
            or name in ("README.md", MARKER, SAMPLES_FILE)
        ):
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        if is_training_state(name) and not include_training_state:
            continue
        files.append(UploadFile(name, path, path.stat().st_size))
    return files


def plan_push(
    recipe: Recipe, checkpoint: str | Path | None = None, revision: str | None = None, stage: str | None = None
) -> PushPlan:
    """Decide the checkpoint, branch and files of a push and write the model card; no network.

    ``revision`` overrides ``push.revision`` (intermediate checkpoints go to their step branches);
    ``stage`` names the stage an explicit ``checkpoint`` comes from, when its folder does not tell.
    """
    settings = recipe.push
    if settings is None:
        raise RecipeError("the recipe has no `push:` section; add `push: {repo_id: user/model-name}` or pass --repo-id")
    run = RunFolder(recipe)
    stage, folder = _checkpoint_to_push(recipe, run, checkpoint, stage)
    if not (folder / "config.json").is_file() and not is_adapter(folder):
        raise RecipeError(f"'{folder}' holds no saved model (no config.json or adapter_config.json); give a checkpoint")
    revision = revision or settings.revision or default_revision(stage, folder.name)
    trained = folder
    base = _base_model_of(run, stage, folder)
    lora = is_adapter(folder)
    staging = run.root / "push" / revision
    dtype = push_dtype(recipe, run, stage)
    if lora and settings.merge_lora:
        folder = merge_adapter(recipe, folder, staging / "merged", dtype)
        lora = False
    files = list_upload_files(folder, settings.include_training_state)
    stored = stored_dtypes(folder)
    converted_from = None
    if stored and stored != {dtype}:
        converted = {path.name: path for path in convert_checkpoint(folder, dtype, staging / "weights")}
        files = [
            UploadFile(f.path_in_repo, converted[f.path_in_repo], converted[f.path_in_repo].stat().st_size)
            if f.path_in_repo in converted
            else f
            for f in files
        ]
        converted_from = "/".join(sorted(stored))
    staging.mkdir(parents=True, exist_ok=True)
    plots = {name: f"{PLOTS_DIR}/{path.name}" for name, path in card_plots(run, stage, trained, staging).items()}
    card = render_model_card(
        recipe, stage, base, lora=lora, revision=revision, checkpoint=trained, dtype=dtype, plots=plots
    )
    card_path = staging / "README.md"
    card_path.write_text(card)
    files += [
        UploadFile(relative, staging / relative, (staging / relative).stat().st_size) for relative in plots.values()
    ]
    files.append(UploadFile("README.md", card_path, card_path.stat().st_size))
    return PushPlan(settings.repo_id, revision, stage, folder, lora, files, card_path, dtype, converted_from)


def card_plots(run: RunFolder, stage: str, checkpoint: Path, staging: Path) -> dict[str, Path]:
    """The PNG plots the card embeds, drawn into ``staging/plots`` from the run (``recipe_cli.report``)."""
    from recipe_cli.report import write_card_plots

    return write_card_plots(run.root, stage, checkpoint, staging / PLOTS_DIR)


def push_dtype(recipe: Recipe, run: RunFolder, stage: str) -> str:
    """The dtype a push publishes: ``push.dtype``, else the compute dtype (``model.dtype``) the stage trained with.

    The stage's checkpoint holds float32 master weights (``recipe_cli.precision``); ``run.json``
    records the dtype the run computed in, resolved on the machine that trained it.
    """
    if recipe.push.dtype != "auto":
        return recipe.push.dtype
    entry = run.read()["stages"].get(stage) or {}
    recorded = (entry.get("precision") or {}).get("model_dtype")
    if recorded:
        return recorded
    from recipe_cli.precision import Machine, requested_dtype

    return requested_dtype(recipe.model.dtype, Machine.here())


def _checkpoint_to_push(
    recipe: Recipe, run: RunFolder, checkpoint: str | Path | None, stage: str | None = None
) -> tuple[str, Path]:
    """The stage and folder of a push: an explicit checkpoint's stage is the stage folder it lives in."""
    if checkpoint is not None:
        folder = Path(checkpoint)
        if not folder.is_dir():
            raise RecipeError(f"--checkpoint '{checkpoint}' is not a folder; give a checkpoint folder to push")
        resolved = folder.resolve()
        inside = [s for s in recipe.training_stages if run.stage_dir(s).resolve() in (resolved, *resolved.parents)]
        # runs/<name>/grpo/checkpoint-50 is a GRPO checkpoint whatever push.stage says (that picks the
        # finished stage pushed by default), so its card and branch say grpo.
        stage = inside[0] if inside else stage or recipe.push.stage or run.final_stage()
        if stage is None:
            raise RecipeError(f"cannot tell which stage '{checkpoint}' comes from; pass --stage sft or --stage grpo")
        return stage, folder
    stage = recipe.push.stage or run.final_stage()
    entry = run.finished(stage) if stage else None
    if entry is None:
        raise RecipeError(
            f"no finished {stage or 'training'} checkpoint in {run.root}; run the training stages first "
            "(or pass --checkpoint PATH)"
        )
    return stage, Path(entry["path"])


def _base_model_of(run: RunFolder, stage: str, folder: Path) -> str:
    """The model a stage started from before any training: recorded in run.json, else the adapter's base."""
    entry = run.read()["stages"].get(stage)
    if entry and entry.get("base_model"):
        return entry["base_model"]
    return adapter_base(folder) if is_adapter(folder) else run.base_model_path()


def merge_adapter(recipe: Recipe, adapter: Path, target: Path, dtype: str | None = None) -> Path:
    """Save the base model with a LoRA adapter merged in (and its tokenizer) to ``target``, in ``dtype``."""
    import shutil

    from recipe_cli.models import load_causal_lm, load_tokenizer

    shutil.rmtree(target, ignore_errors=True)
    model = load_causal_lm(adapter, recipe.model, merge=True, dtype=dtype)
    model.save_pretrained(str(target))
    load_tokenizer(adapter, recipe.model).save_pretrained(str(target))
    log.info("merged the LoRA adapter of %s into its base model: %s", adapter, target)
    return target


def render_model_card(
    recipe: Recipe,
    stage: str,
    base_model: str,
    *,
    lora: bool = False,
    revision: str = "main",
    checkpoint: Path | None = None,
    dtype: str | None = None,
    plots: dict[str, str] | None = None,
) -> str:
    """The README.md of a pushed revision: Hub metadata, what was trained from what, evals, curves, the recipe.

    ``checkpoint`` is the trained folder pushed (default: the stage's final one); the curves of the
    pushed stage come from it (an intermediate one has its own log), and only an eval of exactly
    that folder, on every problem, is published as its accuracy. ``plots`` maps the names of
    ``recipe_cli.plots`` to the PNGs' paths in the repo, which the card embeds.
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
        _describe_weights(repo_id, revision, lora, base_id),
        "",
        *([_describe_dtype(dtype, lora), ""] if dtype else []),
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
    lines += ["", "## Framework versions", "", *[f"- {name} {version}" for name, version in package_versions()]]
    lines += ["", "## License", ""]
    if settings and settings.license:
        lines.append(f"`{settings.license}` (set by the recipe's `push.license`).")
    else:
        lines.append("Not set by the recipe (`push.license`); the license of the base model and data applies.")
    return "\n".join(lines) + "\n"


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


def _describe_weights(repo_id: str, revision: str, lora: bool, base_id: str | None) -> str:
    where = "" if revision == "main" else f', revision="{revision}"'
    if lora:
        base = f" on top of {base_id}" if base_id else ""
        code = (
            "from peft import AutoPeftModelForCausalLM\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}"{where})'
        )
        intro = f"This revision holds a LoRA adapter{base}; peft loads it with its base model:"
    else:
        code = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}"{where})\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}"{where})'
        )
        intro = "This revision holds the full weights:"
    return f"{intro}\n\n```python\n{code}\n```"


def _describe_dtype(dtype: str, lora: bool) -> str:
    what = "The adapter's weights are" if lora else "The weights are"
    return (
        f"{what} stored in {dtype}. Training kept float32 master weights"
        + (" for the adapter" if lora else "")
        + " and computed in the recipe's `model.dtype`."
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
    """The evals a card shows: the run's own models (base, sft, grpo) measured on every problem.

    An eval of another folder (``recipe eval --model``) or with ``--limit`` is kept in the run
    folder but never shown as this run's result.
    """
    from recipe_cli.pipeline import run_stage_folders

    own = run_stage_folders(recipe)
    shown = {}
    for label, summary in summaries.items():
        folder, model = summary.get("model"), label.split("@", 1)[0]  # sft@math500: sft on another eval set
        if model in own and summary.get("limit") is None and folder and _same_folder(folder, own[model]):
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
        metric_name=f"accuracy (greedy, {summary.get('n', '?')} problems)",
    )


def _eval_table(recipe: Recipe, summaries: dict[str, dict], pushed_label: str | None = None) -> list[str]:
    """One row per evaluated model, with pass@k and maj@k columns when a sampling pass measured them.

    The row of ``pushed_label`` is marked as this checkpoint's; rows measured with ``--limit`` say so.
    """
    if not summaries:
        return ["No evaluation was run."]
    columns = [("n", ("n",)), ("accuracy", ("accuracy",)), ("format", ("format_rate",))]
    columns.append(("truncated", ("truncation_rate",)))
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
        notes.append(
            f"Greedy decoding, at most {recipe.eval.max_new_tokens} new tokens; accuracy by the recipe's answer "
            "checker (the accuracy reward); format: the completion has <think> and <answer>."
        )
    if len(columns) > 4:
        notes.append(
            "pass@k (unbiased estimator) and maj@k (majority vote over the first k samples) come from a "
            "seeded sampling pass (`eval.num_samples` completions per problem)."
        )
    if any(s.get("limit") is not None for s in summaries.values()):
        notes.append("Rows marked `--limit N` were measured on the first N problems only.")
    if pushed_label is None:
        notes.append("No row is an evaluation of this exact checkpoint on every problem of the split.")
    return [*lines, "", " ".join(notes)] if notes else lines


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


def package_versions() -> list[tuple[str, str]]:
    """Installed versions of the packages a run depends on (those installed)."""
    versions = []
    for name in VERSIONED_PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return versions


def require_token() -> None:
    """Fail now, not after training, when there is no Hub token to push with."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise RecipeError("not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN, then push again")


def push_checkpoint(
    recipe: Recipe, checkpoint: str | Path | None = None, revision: str | None = None, stage: str | None = None
) -> PushResult:
    """Upload a checkpoint and its model card in one commit on its branch; return the commit the Hub confirmed."""
    plan = plan_push(recipe, checkpoint, revision, stage)
    settings = recipe.push
    require_token()
    from huggingface_hub import HfApi

    api = HfApi()
    repo = plan.repo_id
    call_hub(lambda: api.whoami(), "check the token", repo)
    call_hub(lambda: api.create_repo(repo, private=settings.private, exist_ok=True), "create the repo", repo)
    existing, head = _open_revision(api, plan, settings.overwrite)
    message = f"recipe {recipe.name}: {plan.stage} checkpoint ({len(plan.files)} files)"
    oid, url = call_hub(_committer(api, plan, existing, head, message), "upload the files", repo)
    _confirm_commit(api, plan, oid)
    log.info("pushed %d files to %s@%s: commit %s", len(plan.files), repo, plan.revision, oid)
    return PushResult(repo, plan.revision, oid, url, len(plan.files), plan.total_bytes)


def checkpoint_pusher(recipe: Recipe):
    """A TrainerCallback that pushes each ``checkpoint-N`` the trainer saves to its ``<stage>-step-N`` branch.

    A failed push is logged and training goes on: hours of training are worth more than one
    intermediate upload, and the checkpoint stays on disk for ``recipe push --checkpoint``.
    """
    from transformers import TrainerCallback

    class PushCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            stage_dir = Path(args.output_dir)
            folder = stage_dir / f"checkpoint-{state.global_step}"
            if not is_complete(folder):  # saved from diverged weights: deleted, not marked (recipe_cli.health)
                return
            try:
                revision = default_revision(stage_dir.name, folder.name)
                pushed = push_checkpoint(recipe, folder, revision=revision, stage=stage_dir.name)
            except RecipeError as error:
                log.warning("%s was not pushed: %s", folder, error)
                return
            log.info("pushed %s to %s@%s", folder.name, pushed.repo_id, pushed.revision)

    return PushCheckpoints()


def _open_revision(api, plan: PushPlan, overwrite: bool) -> tuple[set[str], str]:
    """The files already on the branch (created from main when missing) and its head commit.

    A branch created here starts from main's head, so it holds main's files: they are listed so that
    the commit deletes those the checkpoint lacks (an earlier LoRA push on main would otherwise leave
    adapter files next to full weights). ``--overwrite`` is only needed for a branch that existed.
    """
    repo = plan.repo_id
    info = call_hub(lambda: _branch_info(api, plan), "open the branch", repo)
    if info is None:
        call_hub(lambda: api.create_branch(repo, branch=plan.revision, exist_ok=True), "create the branch", repo)
        info = call_hub(lambda: api.model_info(repo, revision=plan.revision), "open the branch", repo)
        return _held_files(info), info.sha
    existing = _held_files(info)
    if existing and not overwrite:
        raise RecipeError(
            f"{plan.repo_id} already has a revision '{plan.revision}' holding {len(existing)} files; "
            "push to another --revision, or pass --overwrite (push.overwrite: true) to replace it"
        )
    return existing, info.sha


def _branch_info(api, plan: PushPlan):
    """The branch's model info, or None when the branch does not exist yet."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return api.model_info(plan.repo_id, revision=plan.revision)
    except RevisionNotFoundError:
        return None


def _held_files(info) -> set[str]:
    """The files at a branch head, less .gitattributes (the Hub keeps it; a push never deletes it)."""
    return {sibling.rfilename for sibling in info.siblings or []} - {".gitattributes"}


def _operations(plan: PushPlan, existing: set[str]) -> list:
    """Add every planned file; delete what the branch held that this checkpoint does not have."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    adds = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in plan.files]
    stale = sorted(existing - {f.path_in_repo for f in plan.files})
    return adds + [CommitOperationDelete(path_in_repo=path) for path in stale]


def _committer(api, plan: PushPlan, existing: set[str], head: str, message: str) -> Callable[[], tuple[str, str]]:
    """The commit call for ``call_hub``: each retry first checks whether the last attempt landed.

    A 5xx can arrive after the Hub applied the commit; a retry on the old parent would then be
    refused (412) although the push is there. So before each retry the branch is read again, and a
    head that moved and holds every planned file is taken as this push's commit (the confirmation's test).
    """
    tried = False

    def commit() -> tuple[str, str]:
        nonlocal tried
        if tried:
            info = api.model_info(plan.repo_id, revision=plan.revision)
            if info.sha != head and not _missing_files(plan, info):
                log.info("the last attempt landed as commit %s; not committing again", info.sha)
                return info.sha, f"{api.endpoint}/{plan.repo_id}/commit/{info.sha}"
        tried = True
        done = api.create_commit(
            plan.repo_id,
            _operations(plan, existing),
            commit_message=message,
            revision=plan.revision,
            parent_commit=head,
        )
        return done.oid, done.commit_url

    return commit


def _missing_files(plan: PushPlan, info) -> set[str]:
    """The planned files a branch head (its model info) does not hold."""
    return {f.path_in_repo for f in plan.files} - {sibling.rfilename for sibling in info.siblings or []}


def _confirm_commit(api, plan: PushPlan, oid: str) -> None:
    """Read the branch back: its head must be the new commit and hold every pushed file."""
    info = call_hub(lambda: api.model_info(plan.repo_id, revision=plan.revision), "confirm the commit", plan.repo_id)
    if info.sha != oid:
        raise RecipeError(
            f"the Hub answered the upload, but {plan.repo_id}@{plan.revision} is at commit {str(info.sha)[:12]}, "
            f"not {oid[:12]}; the push is not confirmed, push again"
        )
    missing = _missing_files(plan, info)
    if missing:
        raise RecipeError(
            f"commit {oid[:12]} on {plan.repo_id}@{plan.revision} lacks {sorted(missing)}; "
            "the push is not confirmed, push again"
        )


def call_hub(action: Callable[[], T], what: str, repo_id: str) -> T:
    """Run one Hub call; retry network failures and 5xx/429 answers after ``RETRY_DELAYS``, then fail clearly."""
    attempts = len(RETRY_DELAYS) + 1
    for attempt in range(attempts):
        try:
            return action()
        except RecipeError:
            raise
        except Exception as error:
            cause = _hub_error(error)
            if cause is None:
                raise
            status = _status(cause)
            if status is not None and status not in TRANSIENT_STATUS:
                raise RecipeError(_refusal(cause, status, what, repo_id)) from error
            if attempt == attempts - 1:
                raise RecipeError(
                    f"cannot {what} on the Hub for {repo_id} after {attempts} attempts ({_first_line(cause)}); "
                    "check your network and push again"
                ) from error
            delay = RETRY_DELAYS[attempt]
            log.warning("could not %s (%s); trying again in %g s", what, _first_line(cause), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _hub_error(error: BaseException) -> BaseException | None:
    """The HTTP or network error behind ``error`` (huggingface_hub wraps LFS upload failures), else None.

    Errors a retry cannot fix end the push at once: offline mode, and a local file that cannot be read.
    """
    from huggingface_hub.errors import HTTPError, OfflineModeIsEnabled

    seen = error
    while seen is not None:
        # OfflineModeIsEnabled is a ConnectionError, so it is told apart before the network errors.
        if isinstance(seen, OfflineModeIsEnabled):
            raise RecipeError(
                "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set), so nothing can be pushed; "
                "unset HF_HUB_OFFLINE and push again"
            ) from error
        # HTTPError covers answers with a status and transport failures (refused connections, timeouts);
        # the socket-level OSErrors below are what a connection gives when not wrapped by the client.
        if isinstance(seen, (HTTPError, ConnectionError, TimeoutError)):
            return seen
        if isinstance(seen, OSError):
            name = f"'{seen.filename}'" if seen.filename else "a file of the checkpoint"
            raise RecipeError(
                f"cannot read {name} to upload it ({seen.strerror or _first_line(seen)}); fix the file and push again"
            ) from error
        seen = seen.__cause__
    return None


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) if response is not None else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _refusal(error: BaseException, status: int, what: str, repo_id: str) -> str:
    """A one-line message for an answer the Hub will not change its mind about."""
    server = getattr(error, "server_message", None) or _first_line(error)
    if status == 401:
        return (
            f"the Hub rejected the token ({server}); run `hf auth login` with a valid token "
            "(or fix HF_TOKEN), then push again"
        )
    if status == 403:
        return f"the token may not write to {repo_id} ({server}); use a token with write access to its namespace"
    if status == 404:
        return f"{repo_id} was not found on the Hub while trying to {what} ({server}); check push.repo_id"
    return f"the Hub refused to {what} for {repo_id}: {status} {server}"
