"""What ``recipe validate`` states of a recipe (the stages, their data, the TRL settings that differ from TRL's
defaults, one prompt rendered as the model will see it; loads no weights, needs no network), and what
``--dry-run`` adds with the data and the tokenizer loaded: dataset sizes after filtering, a tokenised
example with its loss mask, batches, steps, a memory estimate from the model config, and misfits.

This module computes them (``recipe_plan``, ``training_plan``); ``recipe_cli.console`` prints them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recipe_cli.config import (
    DIVERGENCES,
    TRAINER_CLASSES,
    GRPOSettings,
    Recipe,
    SourceSettings,
    generation_batch,
    grpo_max_completion_length,
    is_local_path,
    too_few_grpo_prompts,
)
from recipe_cli.disk import DiskPlan, checkpoints_at_once, disk_shortfall, plan_disk, written_bytes
from recipe_cli.errors import RecipeError
from recipe_cli.precision import DTYPE_BYTES, PrecisionPlan, describe_recipe_precision
from recipe_cli.runs import RunFolder
from recipe_cli.trainer_settings import TRAINING_STAGES, effective_setting, non_default_settings
from recipe_cli.training import recipe_settings

if TYPE_CHECKING:
    from recipe_cli.data.chain import PreparedData

EXAMPLE_QUESTION = (  # the first GSM8K test problem
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. "
    "How much in dollars does she make every day at the farmers' market?"
)


@dataclass
class LengthBudget:
    """SFT completions' token lengths against GRPO's and the eval's budgets: what was found, and the warnings."""

    summary: str  # the lengths measured, or the limit when they could not be
    warnings: list[str] = field(default_factory=list)
    verdict: str | None = None  # when measured without warnings: they fit, or there is nothing to fit


@dataclass
class RecipePlan:
    """What ``recipe validate`` states of a recipe, without weights or network: each part a line or a table."""

    name: str
    summary: str  # model, dtype, adapter, seed
    precision: str
    precision_note: str | None
    launch: str
    run_folder: Path
    downloads: str | None  # what a command will download, when it may
    warnings: list[str]  # what this machine lacks for the recipe
    stages: list[str]  # in the order they run, evals included
    data: list[str]  # one line per stage's data
    decoding: str | None  # the eval's
    grpo: list[str]  # rewards, divergence, generation batch
    settings: list[tuple[str, str, dict]]  # (stage, TRL class, settings that differ from its defaults)
    prompt: str  # one prompt as the model sees it
    length_budget: LengthBudget | None


def recipe_plan(recipe: Recipe) -> RecipePlan:
    """The plan ``recipe validate`` prints (``recipe_cli.console.print_recipe_plan``)."""
    run = RunFolder(recipe)
    model = recipe.model.path or f"tiny model built in {run.stage_dir('base')} ({recipe.model.tiny.model_dump()})"
    adapter = f", LoRA r={recipe.model.lora.r}" if recipe.model.lora else ""
    from recipe_cli.launch import missing_packages, saves_16bit_weights

    push_dtype = recipe.push.dtype if recipe.push is not None else "auto"
    precision, note = describe_recipe_precision(
        recipe.model.dtype,
        lora=recipe.model.trains_lora(),
        push_dtype=push_dtype,
        saves_16bit=saves_16bit_weights(recipe.launch),
    )
    downloads, warnings = _downloads(recipe)
    warnings += missing_vllm(recipe)
    for problem, commands, fix in missing_packages(recipe, recipe.training_stages):  # a laptop checks for a GPU
        warnings.append(f"{problem}, so {commands} stop here; {fix}")
    stages = [s for s in ("eval base", "sft", "grpo", "push") if _configured(recipe, s)]
    data = []
    for stage in ("sft", "grpo", "eval"):
        settings = getattr(recipe, stage)
        if settings is None:
            continue
        dataset = settings.dataset
        limit = f", at most {dataset.max_samples}" if dataset.max_samples else ""
        if dataset.teacher_error_rate:
            limit += f", teacher error rate {dataset.teacher_error_rate:g}"
        steps = f"; steps: {', '.join(describe_data_steps(dataset))}" if stage != "eval" else ""
        data.append(f"{stage} data: {dataset.describe_source()}{limit}{steps}")
    decoding = None
    if recipe.eval is not None:
        settings = recipe.eval
        sampling = ""
        if settings.num_samples > 1:
            sampling = (
                f" + {settings.num_samples} samples per problem (temperature {settings.temperature:g}, "
                f"top_p {settings.top_p:g}, seed {recipe.seed}) for pass@k and maj@k, k in {settings.pass_k}"
            )
        decoding = (
            f"eval decoding: greedy{sampling}; max_new_tokens {settings.max_new_tokens}, "
            f"batch {settings.batch_size}, backend {settings.backend}"
        )
    grpo = []
    if recipe.grpo is not None:
        rewards = ", ".join(
            f"{r.name} x{r.weight:g}" + (f" {r.params}" if r.params else "") for r in recipe.grpo.rewards
        )
        batch, generations, how = generation_batch(recipe.grpo.trainer, recipe.launch.num_processes)
        grpo = [
            f"grpo rewards: {rewards}",
            f"grpo divergence: {explain_divergence(recipe.grpo)}",
            f"grpo batch: {batch} completions per generation ({how}) = {batch // generations} prompts x {generations}",
        ]
    settings = [
        (stage, class_name, non_default_settings(class_name, recipe_settings(recipe, stage)))
        for stage, class_name in TRAINER_CLASSES.items()
        if getattr(recipe, stage) is not None
    ]
    return RecipePlan(
        name=recipe.name,
        summary=f"{model}, dtype {recipe.model.dtype}{adapter}, seed {recipe.seed}",
        precision=precision,
        precision_note=note,  # on a GPU, only DeepSpeed's 16-bit saves have one
        launch=describe_launch(recipe.launch),
        run_folder=run.root,
        downloads=downloads,
        warnings=warnings,
        stages=_with_evals(recipe, stages),
        data=data,
        decoding=decoding,
        grpo=grpo,
        settings=settings,
        prompt=render_example_prompt(recipe),
        length_budget=_validate_length_budget(recipe) if recipe.sft is not None else None,
    )


def _downloads(recipe: Recipe) -> tuple[str | None, list[str]]:
    """What the recipe reads from the Hub that is not on this machine: a note when it can be downloaded, else one
    warning each (HF_HUB_OFFLINE)."""
    downloads = not_cached(recipe)
    if downloads and hub_offline():
        warnings = []
        for kind, repo_id, keys in downloads:
            local = "a local model folder" if kind == "model" else "local files"
            option = "" if kind == "model" else " --repo-type dataset"
            warnings.append(
                f"not on this machine: {kind} {repo_id}: not local and not in the Hugging Face cache, and "
                "HF_HUB_OFFLINE is set, so it cannot be downloaded; unset HF_HUB_OFFLINE, download it first "
                f"(`hf download {repo_id}{option}`), or point {' and '.join(keys)} at {local}"
            )
        return None, warnings
    if downloads:
        return (
            f"{', '.join(f'{kind} {repo_id}' for kind, repo_id, _ in downloads)}: not local and not in the Hugging "
            "Face cache, so downloaded when a command needs it (`validate` checked only the names)"
        ), []
    return None, []


def missing_vllm(recipe: Recipe) -> list[str]:
    """What the recipe asks vLLM for when this machine has none installed, one line each.

    ``validate`` warns rather than fails: it often runs on a laptop before the GPU machine trains. The
    command that generates with vLLM stops there (``recipe_cli.launch.check_machine``).
    """
    from recipe_cli import generation

    if generation.vllm_installed():
        return []
    missing = []
    if recipe.grpo is not None and recipe.grpo.trainer.get("use_vllm"):
        missing.append(
            "grpo.trainer.use_vllm: vLLM is not installed on this machine, so `recipe grpo` and `run` stop here; "
            "`pip install vllm` where GRPO trains (an NVIDIA GPU), or remove use_vllm to generate with transformers"
        )
    if recipe.eval is not None and recipe.eval.backend == "vllm":
        missing.append(
            "eval.backend: vllm is not installed on this machine, so `recipe eval` and `run` stop here; "
            "`pip install vllm` where the eval runs (an NVIDIA GPU), or set eval.backend: auto"
        )
    return missing


def _validate_length_budget(recipe: Recipe) -> LengthBudget:
    """The length budget ``validate`` can state: measured where data and tokenizer are on disk, else the limits."""
    dataset = recipe.sft.dataset
    if _data_offline(recipe, dataset) and _tokenizer_offline(recipe):
        from recipe_cli.data import prepare_sft
        from recipe_cli.training import sft_examples_cut

        prepared = prepare_sft(recipe, plan_tokenizer(recipe), check=False)
        budget = length_budget(prepared.kept_lengths("completion_tokens"), recipe)
        cut = sft_examples_cut(recipe, [len(row["input_ids"]) for row in prepared.rows])
        if cut:
            budget.warnings.insert(0, f"sft.dataset: {cut} (`recipe sft` and `run` stop on them)")
        return budget
    limit = dataset.max_completion_tokens
    kept = f"at most {limit} tokens (sft.dataset.max_completion_tokens)" if limit else "not limited"
    budget = LengthBudget(f"SFT completions: {kept}; `--dry-run` measures them (it needs the data and the tokenizer)")
    for who, key, tokens in completion_budgets(recipe):
        if limit is None or limit > tokens:
            budget.warnings.append(
                f"SFT may teach completions longer than {key}={tokens}, which {who} cuts off; "
                f"set sft.dataset.max_completion_tokens: {tokens}"
            )
    return budget


def _data_offline(recipe: Recipe, dataset) -> bool:
    """Whether a stage's data chain reads only local files (or generated problems): validate needs no network."""
    sources = dataset.sources
    if dataset.decontaminate.enabled and dataset.decontaminate.against_eval and recipe.eval is not None:
        sources = [*sources, *(eval_set for _, _, eval_set in recipe.eval.sets)]
    return all(s.adapter == "arithmetic" or is_local_path(s.path) for s in sources) and dataset.difficulty is None


def describe_data_steps(dataset) -> list[str]:
    """The steps a training stage's data goes through, in the chain's order (``recipe_cli.data.chain``).

    >>> from recipe_cli.config import DatasetSettings
    >>> describe_data_steps(DatasetSettings(path="openai/gsm8k", max_prompt_tokens=512, shuffle=True))
    ['shuffle', 'decontaminate (word 8-grams vs the eval set)', 'max_prompt_tokens 512']
    """
    steps = ["shuffle"] if dataset.shuffle else []
    steps += ["drop_duplicates"] if dataset.drop_duplicates else []
    steps += [f"near_duplicates {dataset.near_duplicates:g}"] if dataset.near_duplicates is not None else []
    options = dataset.decontaminate
    if options.enabled:
        rule = "same question" if options.match == "exact" else f"word {options.ngram}-grams"
        against = (["the eval set"] if options.against_eval else []) + options.benchmarks
        steps.append(f"decontaminate ({rule} vs {', '.join(against) or 'nothing'})")
    else:
        steps.append("no decontamination")
    for key in ("max_prompt_tokens", "max_completion_tokens"):
        if getattr(dataset, key) is not None:
            steps.append(f"{key} {getattr(dataset, key)}")
    if dataset.difficulty is not None:
        d = dataset.difficulty
        steps.append(f"pass rate {d.min_pass_rate:g}-{d.max_pass_rate:g} over {d.samples} samples")
    if dataset.fraction is not None:
        steps.append(f"fraction {dataset.fraction:g}")
    return steps


def _tokenizer_offline(recipe: Recipe) -> bool:
    """Whether the tokenizer loads without the network: the tiny one, a local folder, or the Hugging Face cache."""
    if recipe.model.tiny is not None or Path(recipe.model.path).expanduser().is_dir():
        return True
    from recipe_cli.preflight import available_offline

    return available_offline(recipe.model.path, recipe.model.revision)


def hub_offline() -> bool:
    """Whether huggingface_hub may not download (HF_HUB_OFFLINE, or TRANSFORMERS_OFFLINE, is set)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def not_cached(recipe: Recipe) -> list[tuple[str, str, list[str]]]:
    """``(kind, Hub id, the recipe keys that name it)`` of the models and datasets of the recipe that are neither
    local nor in the Hugging Face cache."""
    from huggingface_hub import constants

    from recipe_cli.config import HUB_ID

    wanted: dict[tuple[str, str], list[str]] = {}
    if recipe.model.path is not None and not is_local_path(recipe.model.path):
        wanted.setdefault(("model", recipe.model.path), []).append("model.path")
    for key, source in dataset_sources(recipe):
        if source.path and not is_local_path(source.path):
            wanted.setdefault(("dataset", source.path), []).append(key)
    missing = []
    for (kind, repo_id), keys in wanted.items():
        if not HUB_ID.match(repo_id) or "/" not in repo_id:
            continue
        folder = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo_id.replace('/', '--')}"
        if not folder.is_dir():
            missing.append((kind, repo_id, keys))
    return missing


def dataset_sources(recipe: Recipe) -> list[tuple[str, SourceSettings]]:
    """``(recipe key of its path, source)`` of every dataset a command may read: each stage's sources (a mixture's
    each), and every eval set (evaluated, and the sets decontamination removes questions of).

    >>> from recipe_cli.config import validate_recipe
    >>> recipe = validate_recipe({"name": "r", "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"},
    ...     "sft": {"dataset": {"mixture": [{"path": "a/one", "adapter": "gsm8k"}, {"path": "b/two"}]}},
    ...     "eval": {"datasets": [{"name": "gsm8k", "path": "openai/gsm8k", "split": "test"},
    ...                           {"name": "more", "path": "c/three", "adapter": "gsm8k"}]}})
    >>> [key for key, _ in dataset_sources(recipe)]
    ['sft.dataset.mixture.0.path', 'sft.dataset.mixture.1.path', 'eval.datasets.0.path', 'eval.datasets.1.path']
    """
    stages = [stage for stage in TRAINER_CLASSES if getattr(recipe, stage) is not None]
    sections = [(f"{stage}.dataset", getattr(recipe, stage).dataset) for stage in stages]
    if recipe.eval is not None and recipe.eval.datasets:
        sections += [(f"eval.datasets.{index}", dataset) for index, dataset in enumerate(recipe.eval.datasets)]
    elif recipe.eval is not None:
        sections.append(("eval.dataset", recipe.eval.dataset))
    found = []
    for prefix, dataset in sections:
        if dataset.mixture is None:
            found.append((f"{prefix}.path", dataset))
        else:
            found += [(f"{prefix}.mixture.{index}.path", source) for index, source in enumerate(dataset.mixture)]
    return found


def describe_launch(launch) -> str:
    """How training runs, in one line.

    >>> from recipe_cli.config import LaunchSettings
    >>> describe_launch(LaunchSettings())
    'one process (the recipe command itself)'
    >>> two_nodes = LaunchSettings(num_processes=16, num_machines=2, main_process_ip="10.0.0.1")
    >>> describe_launch(two_nodes.model_copy(update={"accelerate_config": "zero2"}))
    '16 processes on 2 machines (this is machine 0, rank 0 at 10.0.0.1) under accelerate launch, config zero2'
    """
    if launch.num_processes == 1 and launch.num_machines == 1:
        return "one process (the recipe command itself)"
    machines = ""
    if launch.num_machines > 1:
        machines = (
            f" on {launch.num_machines} machines (this is machine {launch.machine_rank}, "
            f"rank 0 at {launch.main_process_ip})"
        )
    config = f", config {launch.accelerate_config}" if launch.accelerate_config else " (DDP)"
    return f"{launch.num_processes} processes{machines} under accelerate launch{config}"


def explain_divergence(grpo: GRPOSettings) -> str:
    """What GRPO penalises and why: the named divergence, TRL's default k3 when beta > 0 names none, or none."""
    penalty = grpo.penalty
    if penalty is None:
        return "none (trainer.beta 0: no reference model; set beta > 0 and grpo.divergence to add one)"
    where = "each token's loss" if penalty.in_ == "loss" else "each completion's reward, before advantages"
    text = f"{penalty.name} ({DIVERGENCES[penalty.name]}) x beta {grpo.beta:g}, in {where}"
    if grpo.divergence is None:
        text += f"; TRL's default with beta > 0 (set grpo.divergence to choose: {', '.join(DIVERGENCES)})"
    return text


def _configured(recipe: Recipe, stage: str) -> bool:
    if stage == "eval base":
        return recipe.eval is not None
    return getattr(recipe, stage) is not None


def _with_evals(recipe: Recipe, stages: list[str]) -> list[str]:
    out = []
    for stage in stages:
        out.append(stage)
        if stage in TRAINING_STAGES and recipe.eval is not None:
            out.append("eval")
    return out


def render_example_prompt(recipe: Recipe) -> str:
    """One prompt rendered with the chat template when it is available offline, else as plain messages."""
    from recipe_cli.data import build_prompt

    question = _first_question(recipe)
    messages = build_prompt(question, recipe.prompt)
    if isinstance(messages, str):
        return messages + "\n(a plain-text prompt: prompt.template, no chat template)"
    template = _local_chat_template(recipe)
    if template is None:
        plain = "\n".join(f"[{m['role']}] {m['content']}" for m in messages)
        return plain + "\n(the chat template is not available offline; `recipe sft/grpo` render it with the model's)"
    import jinja2

    return jinja2.Environment().from_string(template).render(messages=messages, add_generation_prompt=True)


def _first_question(recipe: Recipe) -> str:
    stage = recipe.grpo or recipe.sft or recipe.eval
    if stage is not None and stage.dataset.adapter == "arithmetic":
        from recipe_cli.synthetic import generate_problems

        return generate_problems(stage.dataset.split, 1, recipe.seed)[0]["question"]
    return EXAMPLE_QUESTION


def _local_chat_template(recipe: Recipe) -> str | None:
    """The chat template from a local model folder, the tiny model's, or the Hub cache; None offline."""
    import json

    if recipe.model.tiny is not None:
        from recipe_cli.tiny_model import CHATML_TEMPLATE

        return CHATML_TEMPLATE
    folder = Path(recipe.model.path).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(recipe.model.path, "tokenizer_config.json", revision=recipe.model.revision)
        except Exception:
            return None
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    return None


ADAM_STATE_BYTES = 8  # AdamW keeps two fp32 moments per trainable parameter


def memory_estimate(
    params: int, trainable: int, precision: PrecisionPlan, *, lora: bool, reference: bool = False, kv_cache: int = 0
) -> dict[str, int]:
    """Bytes for weights, gradients, AdamW state, a reference copy and the KV cache (activations not included).

    Full weights: float32 master weights and gradients whatever the compute dtype. LoRA: the frozen
    base in its dtype, the float32 adapter, its gradients and AdamW state. The reference model
    and the KV cache are in the compute dtype.

    >>> from recipe_cli.precision import Machine, plan_precision
    >>> bf16_on_gpu = plan_precision("bfloat16", lora=False, machine=Machine(gpu=True))
    >>> memory_estimate(1_000_000, 1_000_000, bf16_on_gpu, lora=False)
    {'weights': 4000000, 'gradients': 4000000, 'optimizer': 8000000, 'reference model': 0, 'kv cache': 0}
    """
    master, compute = DTYPE_BYTES[precision.master], DTYPE_BYTES[precision.compute]
    weights = (params - trainable) * DTYPE_BYTES[precision.base] + trainable * master if lora else params * master
    return {
        "weights": weights,
        "gradients": trainable * master,
        "optimizer": trainable * ADAM_STATE_BYTES,
        "reference model": params * compute if reference else 0,
        "kv cache": kv_cache,
    }


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: int, sequences: int, dtype_bytes: int) -> int:
    """Keys and values of every layer for ``sequences`` sequences of ``tokens`` tokens.

    >>> kv_cache_bytes(layers=24, kv_heads=2, head_dim=64, tokens=1024, sequences=64, dtype_bytes=2)
    805306368
    """
    return 2 * layers * kv_heads * head_dim * tokens * sequences * dtype_bytes


def format_bytes(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number above 1.

    >>> format_bytes(805306368), format_bytes(1536), format_bytes(0)
    ('768.0 MiB', '1.5 KiB', '0 B')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass
class MemoryEstimate:
    """A stage's memory per process, part by part, in bytes (see ``MEMORY_ASSUMPTIONS``)."""

    title: str  # what it is the memory of: processes, precision, checkpointing, micro-batch
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


@dataclass
class TokenisedExample:
    """One SFT example token by token: the decoded pieces and how many of them are the masked prompt."""

    pieces: list[str]
    prompt_tokens: int


@dataclass
class StagePlan:
    """What ``--dry-run`` found for one training stage, with its data loaded and the tokenizer applied."""

    stage: str
    prepared: PreparedData  # the data chain, step by step
    prompt: str | None  # one prompt as the model sees it
    facts: list[str]  # batches, steps, reference model, sequence lengths: one line each
    misfits: list[str]
    steps: int  # optimizer steps in all
    epochs: float  # the epochs those steps reach into
    memory: MemoryEstimate | None = None
    disk: DiskPlan | None = None
    risks: list[str] = field(default_factory=list)
    template: list[str] = field(default_factory=list)  # SFT: what the chat template does that training adapts to
    example: TokenisedExample | None = None  # SFT: the shortest example with its loss mask


@dataclass
class TrainingPlan:
    """What ``--dry-run`` prints (``recipe_cli.console.print_training_plan``); trains and writes nothing."""

    name: str
    params: int
    trainable: int | None  # with LoRA: the adapter's parameters
    precision: str
    precision_note: str | None
    launch: str
    machine_problem: str | None  # what this machine lacks for the command: a warning in a dry run
    stages: list[StagePlan]
    length_budget: LengthBudget | None  # when SFT is planned
    run_folder: Path
    disk: int  # bytes the planned stages have on disk at most: each one's checkpoints and final model
    disk_warning: str | None  # when the disk where the run folder is cannot take them


def training_plan(recipe: Recipe, stages: list[str], *, evaluates: bool = False) -> TrainingPlan:
    """Each stage's data after filtering, batches, steps, memory and misfits; ``evaluates``: the command runs the
    evals too, so what this machine lacks for them counts."""
    from recipe_cli.launch import check_machine
    from recipe_cli.models import check_lora_targets_of
    from recipe_cli.training import check_trainer_configs, stage_precision

    check_trainer_configs(recipe, stages)  # TRL's and transformers' own checks of the settings, as training runs them
    trained = _with_trained_adapter(recipe)
    tokenizer = plan_tokenizer(trained)
    config = _model_config(trained)
    if trained is recipe:  # an adapter trained further keeps its own targets
        check_lora_targets_of(config, recipe.model, recipe.model.path or "the tiny model")
    recipe = trained
    precision = stage_precision(recipe)
    params, trainable = _parameter_counts(config, recipe)
    try:
        check_machine(recipe, stages, evaluates=evaluates)
        machine_problem = None
    except RecipeError as problem:
        machine_problem = str(problem)
    planned, sft_lengths = [], None
    for stage in stages:
        if stage == "sft":
            plan, sft_lengths, longest = _plan_sft(recipe, tokenizer, config)
        else:
            plan, longest = _plan_grpo(recipe, tokenizer, config)
        plan.memory = _memory(stage, recipe, config, params, trainable, precision, longest)
        plan.disk = _disk(stage, recipe, params, trainable, precision, plan.steps, plan.epochs)
        plan.risks = checkpoint_risks(getattr(recipe, stage).trainer, stage, recipe.launch.num_processes, plan.steps)
        planned.append(plan)
    root, disk = RunFolder(recipe).root, sum(plan.disk.total for plan in planned)
    return TrainingPlan(
        name=recipe.name,
        params=params,
        trainable=trainable if recipe.model.lora else None,
        precision=precision.describe(recipe.model.lora is not None),
        precision_note=precision.note,
        launch=describe_launch(recipe.launch),
        machine_problem=machine_problem,
        stages=planned,
        length_budget=length_budget(sft_lengths, recipe) if sft_lengths is not None else None,
        run_folder=root,
        disk=disk,
        disk_warning=disk_shortfall("the planned stages", max(disk - written_bytes(root), 0), root),
    )


def plan_tokenizer(recipe: Recipe):
    """The tokenizer training will use, without writing anything: the tiny one is built in memory."""
    if recipe.model.tiny is not None:
        from recipe_cli.tiny_model import build_tokenizer
        from recipe_cli.training import tiny_tokenizer_text

        return build_tokenizer(recipe.model.tiny.vocab_size, tiny_tokenizer_text(recipe))
    from recipe_cli.models import load_tokenizer

    return load_tokenizer(recipe.model.path, recipe.model)


def _with_trained_adapter(recipe: Recipe) -> Recipe:
    """The recipe as training sees it: a ``model.path`` holding a LoRA adapter trains that adapter further, with
    its own rank and targets (``recipe_cli.sft``, ``recipe_cli.grpo``), whatever ``model.lora`` says."""
    from recipe_cli.config import LoraSettings
    from recipe_cli.models import adapter_config, is_adapter

    if recipe.model.path is None or not is_adapter(recipe.model.path):
        return recipe
    saved = adapter_config(recipe.model.path)
    lora = LoraSettings.model_construct(
        r=saved.get("r", 8),
        alpha=saved.get("lora_alpha", 8),
        dropout=saved.get("lora_dropout", 0.0),
        target_modules=saved.get("target_modules") or "all-linear",
    )
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"lora": lora})})


def _model_config(recipe: Recipe):
    """The model's config (no weights): the tiny model's, else AutoConfig from the folder or the Hub cache (an
    adapter's: its base model's)."""
    if recipe.model.tiny is not None:
        from recipe_cli.tiny_model import tiny_model_config

        tiny = recipe.model.tiny
        return tiny_model_config(tiny.hidden_size, tiny.num_layers, tiny.num_heads, tiny.vocab_size, tiny.max_length)
    from transformers import AutoConfig

    from recipe_cli.models import adapter_base, is_adapter, model_revision

    path = adapter_base(recipe.model.path) if is_adapter(recipe.model.path) else recipe.model.path
    try:
        return AutoConfig.from_pretrained(
            path,
            revision=model_revision(path, recipe.model),
            trust_remote_code=recipe.model.trust_remote_code,
        )
    except OSError as error:
        raise RecipeError(f"cannot read the config of '{recipe.model.path}': {str(error).splitlines()[0]}") from None


def _parameter_counts(config, recipe: Recipe) -> tuple[int, int]:
    """All parameters and the trainable ones (LoRA: r x (in + out) per adapted linear layer), counted on meta."""
    import torch
    from transformers import AutoModelForCausalLM

    from recipe_cli.models import lora_targets

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    if recipe.model.lora is None:
        return params, params
    targets = recipe.model.lora.target_modules
    trainable = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        if targets == "all-linear" or lora_targets(targets, name):
            trainable += recipe.model.lora.r * (module.in_features + module.out_features)
    return params, trainable


def _kept(lengths: list[int], limit: int | None) -> int:
    return sum(1 for n in lengths if limit is None or n <= limit)


def _plan_sft(recipe: Recipe, tokenizer, config) -> tuple[StagePlan, list[int], int]:
    """The SFT plan from the examples as training builds them, the kept completions' lengths and the longest
    sequence training will see (tokens, after truncation)."""
    from recipe_cli.chat import describe_template, think_prefilled
    from recipe_cli.training import prepare_stage_data, sft_examples_cut

    trainer = recipe.sft.trainer
    prepared = prepare_stage_data(recipe, "sft", sample=False, tokenizer=tokenizer)
    rows = prepared.rows or [_rebuild_first(recipe, tokenizer)]
    example = min(rows, key=lambda row: len(row["input_ids"]))
    prompt_length = example["completion_mask"].index(1)
    pieces = [tokenizer.decode([token], skip_special_tokens=False) for token in example["input_ids"]]
    per_step = _batch(trainer, "SFTConfig", recipe.launch.num_processes)
    misfits = []
    max_length = effective_setting("SFTConfig", trainer, "max_length")
    totals = [len(row["input_ids"]) for row in prepared.rows]
    too_long = sum(1 for n in totals if max_length and n > max_length)
    positions = getattr(config, "max_position_embeddings", None)
    if too_long:
        whole = max(totals)
        fix = f"set max_length: {whole} to keep them whole"
        if positions and whole > positions:  # the model cannot take them whole: only filtering helps
            fix = (
                f"the longest ({whole} tokens) exceed the model's {positions} positions, so set max_length: "
                f"{positions} and drop longer rows with sft.dataset.max_prompt_tokens / max_completion_tokens"
            )
        outcome = ", so training stops: TRL would cut off their ends"
        if effective_setting("SFTConfig", trainer, "packing") and not sft_examples_cut(recipe, totals):
            outcome = " and will be split across packed rows (a part's tokens do not see the part before them)"
        elif not sft_examples_cut(recipe, totals):
            outcome = " and will lose their starts (truncation_mode: keep_end)"
        misfits.append(
            f"{too_long} of {len(totals)} examples are longer than sft.trainer.max_length={max_length}{outcome}; {fix}"
        )
    if prepared.dropped:
        misfits += _dropped(prepared, "sft", positions)
    packed = sft_packed_lengths(totals, trainer, recipe.seed)
    batches = len(packed) if packed is not None else len(totals)
    per_epoch = sft_steps_per_epoch(
        batches,
        effective_setting("SFTConfig", trainer, "per_device_train_batch_size"),
        effective_setting("SFTConfig", trainer, "gradient_accumulation_steps"),
        recipe.launch.num_processes,
        drop_last=effective_setting("SFTConfig", trainer, "dataloader_drop_last"),
    )
    rows = "packed rows" if packed is not None else "examples"
    steps, total_steps, epochs = _steps(per_epoch, f"{per_step} {rows} per step", trainer, "SFTConfig")
    facts = [
        steps,
        "loss: completion tokens only (prompt tokens are masked), sequences of up to "
        f"{max(totals) if totals else 0} tokens",
    ]
    if packed is not None:
        strategy = effective_setting("SFTConfig", trainer, "packing_strategy")
        facts.append(
            f"packing ({strategy}): {len(totals)} examples in {len(packed)} rows of up to {max_length} tokens "
            f"(longest {max(packed, default=0)}, {sum(packed) / max(len(packed), 1):.0f} on average)"
        )
    plan = StagePlan(
        stage="sft",
        prepared=prepared,
        prompt=_render(tokenizer, example["input_ids"][:prompt_length]),
        facts=facts,
        misfits=misfits,
        steps=total_steps,
        epochs=epochs,
        template=describe_template(tokenizer, think_prefilled(recipe, tokenizer)),
        example=TokenisedExample(pieces, prompt_length),
    )
    longest = max(packed, default=0) if packed is not None else min(max(totals, default=0), max_length or 10**9)
    return plan, prepared.kept_lengths("completion_tokens"), longest


def sft_packed_lengths(lengths: list[int], trainer: dict, seed: int) -> list[int] | None:
    """The token lengths of the rows SFTTrainer trains on when ``packing`` is on (None when off): TRL 1.16's own
    ``pack_dataset`` applied as ``SFTTrainer._prepare_dataset`` applies it, to rows of these lengths.

    The rows are what the steps count: best-fit-decreasing packing (``bfd``, ``bfd_split``) puts
    several examples in one row of ``max_length`` tokens, ``wrapped`` cuts the concatenated
    examples into such rows. Packing runs in batches of 1000 examples (``Dataset.map``), after
    the trainer's shuffle when ``shuffle_dataset`` is set, so rows never mix examples of two batches.

    >>> sft_packed_lengths([5, 2, 3, 1], {"packing": True, "max_length": 4}, seed=0)
    [4, 4, 2]
    >>> sft_packed_lengths([5, 2, 3, 1], {"packing": True, "max_length": 4, "packing_strategy": "wrapped"}, seed=0)
    [4, 4, 3]
    >>> sft_packed_lengths([5, 2], {}, seed=0) is None
    True
    """
    if not effective_setting("SFTConfig", trainer, "packing"):
        return None
    if not lengths:
        return []
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    dataset = Dataset.from_dict({"input_ids": [[0] * n for n in lengths]})
    if effective_setting("SFTConfig", trainer, "shuffle_dataset"):
        dataset = dataset.shuffle(seed=seed)
    strategy = effective_setting("SFTConfig", trainer, "packing_strategy")
    map_kwargs = {"num_proc": effective_setting("SFTConfig", trainer, "dataset_num_proc")}
    packed = pack_dataset(dataset, effective_setting("SFTConfig", trainer, "max_length"), strategy, map_kwargs)
    return [len(ids) for ids in packed["input_ids"]]


def _rebuild_first(recipe: Recipe, tokenizer) -> dict:
    """The first example as training would build it, to show when every example was filtered out."""
    from recipe_cli.chat import completion_end_id, sft_token_ids, think_prefilled
    from recipe_cli.data import iter_examples, render_completion, row_prompt

    row = next(iter_examples(recipe.sft.dataset, recipe.seed))
    ids, mask = sft_token_ids(
        tokenizer,
        row_prompt(row, recipe.prompt),
        render_completion(row, recipe.sft.completion),
        prefilled=think_prefilled(recipe, tokenizer),
        end_id=completion_end_id(tokenizer, plain=recipe.prompt.template is not None),
    )
    return {"input_ids": ids, "completion_mask": mask}


def _plan_grpo(recipe: Recipe, tokenizer, config) -> tuple[StagePlan, int]:
    """The GRPO plan and the longest prompt kept (tokens)."""
    from recipe_cli.chat import prompt_token_ids
    from recipe_cli.training import prepare_stage_data

    trainer = recipe.grpo.trainer
    prepared = prepare_stage_data(recipe, "grpo", sample=False, tokenizer=tokenizer)
    first = prepared.rows[0] if prepared.rows else None
    prompt = _render(tokenizer, prompt_token_ids(tokenizer, first["prompt"])) if first is not None else None
    generations = effective_setting("GRPOConfig", trainer, "num_generations")
    completions = _batch(trainer, "GRPOConfig", recipe.launch.num_processes)
    batch, _, how = generation_batch(trainer, recipe.launch.num_processes)
    beta = effective_setting("GRPOConfig", trainer, "beta") or 0.0
    iterations = effective_setting("GRPOConfig", trainer, "num_iterations")
    misfits = _dropped(prepared, "grpo") if prepared.dropped else []
    completion_tokens = effective_setting("GRPOConfig", trainer, "max_completion_length") or 0
    kept = prepared.kept_lengths("prompt_tokens")
    longest = max(kept) if kept else max(prepared.prompt_tokens)
    positions = getattr(config, "max_position_embeddings", None)
    if positions and longest + completion_tokens > positions:
        misfits.append(_positions_misfit(longest, completion_tokens, positions))
    world = recipe.launch.num_processes
    few = too_few_grpo_prompts(len(prepared.rows), trainer, world) if prepared.rows else None
    if few:
        misfits.append(f"grpo.dataset: {few}")
    prompts = batch // generations
    served, left = divmod(len(prepared.rows), prompts)
    epoch = f"{served} generation batch{'es' * (served != 1)} of {prompts} prompt{'s' * (prompts != 1)}" + (
        f", {left} prompt{'s' * (left != 1)} left over for another epoch's shuffle" if left else ""
    )
    if iterations > 1:
        epoch += f", each trained on {iterations} times"
    steps, total_steps, epochs = _steps(
        grpo_steps_per_epoch(len(prepared.rows), trainer, world), epoch, trainer, "GRPOConfig"
    )
    per_step = (
        f"{completions // generations} unique prompts x {generations} completions = {completions} completions"
        if completions % generations == 0
        else f"{completions} completions, {_share_of_group(completions, generations)} of {generations}"
    )
    facts = [
        f"per optimizer step: {per_step}; generation batch {batch} ({how})",
        f"reference model: {'loaded (beta ' + format(beta, 'g') + ')' if beta else 'not loaded (beta 0: no KL term)'}",
        f"divergence: {explain_divergence(recipe.grpo)}",
        steps,
        f"sequences: prompts up to {longest} tokens + up to {completion_tokens} completion tokens",
    ]
    plan = StagePlan(
        stage="grpo", prepared=prepared, prompt=prompt, facts=facts, misfits=misfits, steps=total_steps, epochs=epochs
    )
    return plan, longest


def _share_of_group(completions: int, generations: int) -> str:
    """What an optimizer step of ``completions`` holds of groups of ``generations`` (their advantages are computed
    over the whole generation batch, so a step may hold part of a group).

    >>> _share_of_group(2, 4), _share_of_group(6, 4), _share_of_group(1, 3)
    ('half a group', '1.5 groups', '1/3 of a group')
    """
    if completions * 2 == generations:
        return "half a group"
    if completions < generations:
        return f"{completions}/{generations} of a group"
    return f"{completions / generations:g} groups"


def checkpoint_risks(trainer: dict, stage: str, world: int = 1, steps: int | None = None) -> list[str]:
    """Checkpoint settings that could lose more than the steps since the last save, and a logging interval longer
    than the run: ``steps``, the optimizer steps the stage takes in all (``max_steps`` when not given).

    >>> checkpoint_risks({"save_strategy": "steps", "save_total_limit": 1}, "grpo")  # doctest: +ELLIPSIS
    ['grpo.trainer.save_total_limit: 1 deletes the last complete checkpoint ...']
    """
    risks = []
    if trainer.get("save_strategy") == "no":
        risks.append(
            f"{stage}.trainer.save_strategy: no: a signal still saves a checkpoint, but a crash (SIGKILL, out of "
            "memory, lost node) loses the whole stage; set save_strategy: steps and save_steps"
        )
    if trainer.get("save_only_model"):
        risks.append(
            f"{stage}.trainer.save_only_model: checkpoints hold no optimizer, scheduler or RNG state, so a resumed "
            "run restarts them and is not the run it continues"
        )
    cycle = generation_cycle(trainer, world) if stage == "grpo" else 1
    class_name = TRAINER_CLASSES[stage]
    save_steps = effective_setting(class_name, trainer, "save_steps")
    saves_steps = str(effective_setting(class_name, trainer, "save_strategy")) == "steps"  # else save_steps is unread
    if cycle > 1 and saves_steps and isinstance(save_steps, int) and save_steps % cycle:
        risks.append(
            f"grpo.trainer.save_steps: {save_steps} is not a multiple of the {cycle} optimizer steps one generation "
            f"serves; a run resumed in mid-generation samples those completions again (set save_steps: "
            f"{max(cycle, save_steps // cycle * cycle)} for exact resumes)"
        )
    logging_steps = effective_setting(class_name, trainer, "logging_steps")
    logs_steps = str(effective_setting(class_name, trainer, "logging_strategy")) == "steps"  # else it is unread
    if steps is None:
        max_steps = effective_setting(class_name, trainer, "max_steps")
        steps = max_steps if isinstance(max_steps, int) and max_steps > 0 else None
    if logs_steps and steps and logging_steps >= 1 and steps < logging_steps:  # below 1: a ratio of the steps
        total = "max_steps" if effective_setting(class_name, trainer, "max_steps") > 0 else "the planned steps,"
        risks.append(
            f"{stage}.trainer.logging_steps: {logging_steps:g} is more than {total} {steps}, so no step is logged "
            f"(no loss or reward line, no curve); set logging_steps: {max(1, steps // 10)}"
        )
    if trainer.get("save_total_limit") == 1:
        risks.append(
            f"{stage}.trainer.save_total_limit: 1 deletes the last complete checkpoint before the new one is "
            "marked complete; keep at least 2"
        )
    return risks


def generation_cycle(trainer: dict, world: int = 1) -> int:
    """Optimizer steps that one GRPO generation serves (completions are reused between them).

    Micro-batches per generation follow GRPOConfig: ``steps_per_generation``, else
    ``generation_batch_size`` over the global batch, else ``gradient_accumulation_steps``.

    >>> generation_cycle({}), generation_cycle({"steps_per_generation": 4}), generation_cycle({"num_iterations": 2})
    (1, 4, 2)
    >>> generation_cycle({"generation_batch_size": 32, "per_device_train_batch_size": 8})
    4
    """
    accumulation = effective_setting("GRPOConfig", trainer, "gradient_accumulation_steps")
    per_generation = effective_setting("GRPOConfig", trainer, "steps_per_generation")
    generation_batch = effective_setting("GRPOConfig", trainer, "generation_batch_size")
    if per_generation is None and generation_batch is not None:
        per_generation = generation_batch // (
            effective_setting("GRPOConfig", trainer, "per_device_train_batch_size") * world
        )
    per_generation = per_generation or accumulation
    return max(per_generation * effective_setting("GRPOConfig", trainer, "num_iterations") // accumulation, 1)


MIN_COMPLETION_TOKENS = 64  # a completion budget below this is no fix: the model could not reason in it


def _positions_misfit(longest: int, completion_tokens: int, positions: int) -> str:
    """The prompt + completion budget over the model's positions, with a fix that leaves room to answer.

    >>> _positions_misfit(17000, 512, 512)  # doctest: +NORMALIZE_WHITESPACE
    "the longest prompt (17000 tokens) + max_completion_length 512 exceeds the model's 512 positions; the
     longest prompts alone fill them: drop them with grpo.dataset.max_prompt_tokens: 256"
    >>> _positions_misfit(700, 512, 1024)  # doctest: +NORMALIZE_WHITESPACE
    "the longest prompt (700 tokens) + max_completion_length 512 exceeds the model's 1024 positions; set
     grpo.dataset.max_prompt_tokens: 512 to drop longer prompts, or max_completion_length: 324"
    """
    head = (
        f"the longest prompt ({longest} tokens) + max_completion_length {completion_tokens} exceeds the model's "
        f"{positions} positions; "
    )
    room = positions - longest
    if room < MIN_COMPLETION_TOKENS:
        keep = max(positions - completion_tokens, positions // 2)
        return head + f"the longest prompts alone fill them: drop them with grpo.dataset.max_prompt_tokens: {keep}"
    keep = positions - completion_tokens
    prompt_fix = f"grpo.dataset.max_prompt_tokens: {keep} to drop longer prompts, or " if keep > 0 else ""
    return head + f"set {prompt_fix}max_completion_length: {room}"


def _dropped(prepared, stage: str, positions: int | None = None) -> list[str]:
    """One misfit per filter that dropped rows, with the limit that would keep them all."""
    from recipe_cli.data import PROMPT_FILLS_MAX_LENGTH

    misfits = []
    filled = prepared.dropped.get(PROMPT_FILLS_MAX_LENGTH, 0)
    if filled:
        longest = max(prepared.prompt_tokens)
        room = f"max_length: {longest + 64}" if not positions or longest + 64 <= positions else None
        fix = f"raise sft.trainer.{room}" if room else "drop them with sft.dataset.max_prompt_tokens"
        misfits.append(
            f"{filled} of {prepared.read} sft prompts fill sft.trainer.max_length (no completion token would be "
            f"trained) and are dropped; {fix}"
        )
    for part, key in (("prompt", "max_prompt_tokens"), ("completion", "max_completion_tokens")):
        count = sum(n for reason, n in prepared.dropped.items() if key in reason)
        if count:
            longest = max(getattr(prepared, f"{part}_tokens"))
            misfits.append(
                f"{count} of {prepared.read} {stage} {part}s are longer than {stage}.dataset.{key} and are "
                f"dropped; set {key}: {longest} to keep them all"
            )
    return misfits


def completion_budgets(recipe: Recipe) -> list[tuple[str, str, int]]:
    """The completion budgets the recipe has, as (who cuts, recipe key, tokens): GRPO's and the eval's, each only
    when that stage is in the recipe (an SFT-only recipe has none)."""
    budgets = []
    if recipe.grpo is not None:
        grpo = grpo_max_completion_length(recipe.grpo.trainer)
        if grpo is not None:
            budgets.append(("GRPO", "grpo.trainer.max_completion_length", grpo))
    if recipe.eval is not None:
        budgets.append(("the eval", "eval.max_new_tokens", recipe.eval.max_new_tokens))
    return budgets


def length_budget(completion_lengths: list[int], recipe: Recipe) -> LengthBudget:
    """The SFT completions' token lengths against GRPO's and the eval's budgets: a summary and the warnings.

    SFT teaches the length of what the model writes; GRPO cuts completions at
    ``max_completion_length`` (a truncated completion usually scores 0) and the eval at
    ``max_new_tokens``. Lengths count the end-of-turn token, as generation does.
    """
    if not completion_lengths:
        return LengthBudget("no SFT example is left to measure")
    lengths = sorted(completion_lengths)
    median = lengths[len(lengths) // 2]
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]
    line = f"SFT completions: median {median}, 90th percentile {p90}, max {lengths[-1]} tokens ({len(lengths)} kept)"
    budgets = completion_budgets(recipe)
    line += "; " + ", ".join(f"{key} {budget}" for _, key, budget in budgets) if budgets else ""
    budget = LengthBudget(line)
    for who, key, tokens in budgets:
        over = sum(1 for n in lengths if n > tokens)
        if over:
            cut = f"SFT teaches completions {who} cuts off"
            fix = f"raise {key} to {lengths[-1]}"
            if over < len(lengths):  # when every one is longer, the filter would leave SFT no example
                fix = f"set sft.dataset.max_completion_tokens: {tokens} or {fix}"
            if who == "GRPO" and over == len(lengths) and _masks_truncated(recipe):
                cut += (
                    ", and mask_truncated_completions leaves every cut-off completion out of the loss: GRPO would "
                    "train on nothing"
                )
            budget.warnings.append(
                f"{over} of {len(lengths)} SFT completions ({over / len(lengths):.0%}) are longer than {key}={tokens}: "
                f"{cut}; {fix}"
            )
    if budgets and not budget.warnings:
        fitted = " and ".join(who.removeprefix("the ") for who, _, _ in budgets)
        budget.verdict = f"the SFT completions fit the {fitted} budgets"
    if not budgets:
        budget.verdict = "no GRPO or eval stage in the recipe, so no completion budget to check"
    return budget


def _masks_truncated(recipe: Recipe) -> bool:
    """Whether GRPO leaves completions cut at max_completion_length out of the loss (``mask_truncated_completions``)."""
    return bool(effective_setting("GRPOConfig", recipe.grpo.trainer, "mask_truncated_completions"))


def _batch(trainer: dict, class_name: str, world: int) -> int:
    """Examples (SFT) or completions (GRPO) per optimizer step over ``world`` processes."""
    per_device = effective_setting(class_name, trainer, "per_device_train_batch_size")
    accumulation = effective_setting(class_name, trainer, "gradient_accumulation_steps")
    return per_device * accumulation * world


def sft_steps_per_epoch(examples: int, per_device: int, accumulation: int, world: int, drop_last: bool = False) -> int:
    """Optimizer steps in one SFT epoch as transformers trains them: the examples' micro-batches (the last one
    partial unless ``dataloader_drop_last``) are dealt out to the ``world`` processes, each getting as many as the
    one with most (accelerate's ``even_batches`` repeats the first examples), and a step takes ``accumulation`` of a
    process's micro-batches, the epoch's last step those left.

    >>> sft_steps_per_epoch(40, 3, 2, 1)  # 14 micro-batches, the last of 1 example
    7
    >>> sft_steps_per_epoch(40, 3, 2, 2)  # 7 micro-batches per process
    4
    >>> sft_steps_per_epoch(40, 3, 2, 2, drop_last=True)  # 13 whole micro-batches: 6 per process
    3
    """
    if drop_last:
        per_process = examples // per_device // world
    else:
        per_process = math.ceil(math.ceil(examples / per_device) / world)
    return math.ceil(per_process / accumulation)


def _steps(per_epoch: int, epoch: str, trainer: dict, cls: str) -> tuple[str, int, float]:
    """The steps line, the total the run will take and the epochs that total reaches into, from the steps per
    epoch and what an epoch is made of (``max_steps`` wins over ``num_train_epochs``, as transformers counts them).
    """
    max_steps = effective_setting(cls, trainer, "max_steps")
    epochs = effective_setting(cls, trainer, "num_train_epochs")
    total = max_steps if max_steps > 0 else math.ceil(per_epoch * epochs)
    how = "max_steps" if max_steps > 0 else f"{epochs:g} epochs"
    line = (
        f"steps: {per_epoch} per epoch ({epoch}); {total} in all ({how}, "
        f"{total / per_epoch if per_epoch else 0:.2f} epochs)"
    )
    return line, total, total / per_epoch if per_epoch else epochs


def grpo_steps_per_epoch(prompts: int, trainer: dict, world: int = 1) -> int:
    """Optimizer steps GRPO takes in one pass over ``prompts`` prompts, as TRL 1.16 and transformers count them.

    TRL's sampler serves whole generation batches only (the prompts left over wait for another
    epoch's shuffle), each split into ``steps_per_generation`` micro-batches and served
    ``num_iterations`` times; transformers counts a last, partial accumulation as a step.

    >>> grpo_steps_per_epoch(10, {"per_device_train_batch_size": 8, "num_generations": 4, "steps_per_generation": 3})
    3
    >>> grpo_steps_per_epoch(30, {"per_device_train_batch_size": 8, "num_generations": 4, "steps_per_generation": 3,
    ...                           "gradient_accumulation_steps": 2})
    8
    """
    batch, generations, _ = generation_batch(trainer, world)
    micro_batches = batch // (effective_setting("GRPOConfig", trainer, "per_device_train_batch_size") * world)
    served = (
        prompts // (batch // generations) * micro_batches * effective_setting("GRPOConfig", trainer, "num_iterations")
    )
    return -(-served // effective_setting("GRPOConfig", trainer, "gradient_accumulation_steps"))


def _render(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


MEMORY_ASSUMPTIONS = (
    "assumptions: AdamW (two float32 moments); activations of a micro-batch (per_device_train_batch_size) of the "
    "longest sequences, 34 x hidden values per token and layer (Korthikanti et al. 2022, attention by SDPA, no "
    "score matrix), only the layer inputs kept with activation checkpointing; the LM head applied in tiles of "
    "4096 tokens x 32768 vocabulary entries (TRL's fused head: the whole logits never exist), its gradient "
    "accumulated in float32 when it trains; 0.6 GiB for the process itself (Python with torch, "
    "transformers and TRL; on a GPU the CUDA context); no allocator slack"
)
RUNTIME_BYTES = int(0.6 * 2**30)  # measured: RSS of a process that imported torch, transformers and TRL


# TRL's fused LM head (trl/kernels/chunked_logprob.py) projects at most this many tokens onto this
# many vocabulary entries at a time, so the whole (tokens x vocabulary) logits never exist.
LOGIT_TILE = (4096, 32768)


def activation_bytes(
    config,
    sequences: int,
    tokens: int,
    logit_tokens: int,
    compute_bytes: int,
    checkpointing: bool,
    head_trained: bool = True,
) -> tuple[int, int]:
    """Bytes of a training micro-batch's activations and of its LM-head pass (see ``MEMORY_ASSUMPTIONS``).

    The head pass is one logits tile in the compute dtype, float32 running statistics per scored
    token, and, when the head trains, its gradient accumulated in float32 before it reaches the
    parameter's own gradient.

    >>> from transformers import Qwen2Config
    >>> qwen = Qwen2Config(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, vocab_size=151936)
    >>> layers, head = activation_bytes(qwen, 2, 367, 367, 4, checkpointing=True)
    >>> round(layers / 2**20), round(head / 2**20)
    (103, 614)
    >>> round(activation_bytes(qwen, 4, 3072, 3072, 2, checkpointing=True, head_trained=False)[1] / 2**20)
    298
    """
    hidden, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    per_layer = sequences * tokens * 34 * hidden * compute_bytes // 2  # the formula counts 16-bit values
    kept = layers * sequences * tokens * hidden * compute_bytes + per_layer if checkpointing else layers * per_layer
    scored = sequences * logit_tokens
    tile = min(scored, LOGIT_TILE[0]) * min(vocab, LOGIT_TILE[1]) * compute_bytes
    statistics = scored * 4 * (8 + hidden)  # per-token float32 sums, and the hidden states' float32 gradient
    head = vocab * hidden * 4 if head_trained else 0
    return kept, tile + statistics + head


def _disk(
    stage: str, recipe: Recipe, params: int, trainable: int, precision: PrecisionPlan, steps: int, epochs: float
) -> DiskPlan:
    """What the stage writes to disk at most (``recipe_cli.disk``) over ``steps`` reaching into ``epochs``."""
    from recipe_cli.launch import sharding

    class_name, trainer = TRAINER_CLASSES[stage], getattr(recipe, stage).trainer

    def setting(key: str):
        return effective_setting(class_name, trainer, key)

    kept = checkpoints_at_once(
        setting("save_strategy"),
        setting("save_steps"),
        setting("save_total_limit"),
        steps,
        epochs,
    )
    deepspeed = sharding(recipe.launch)[0].startswith("DeepSpeed")
    lora = recipe.model.lora is not None
    return plan_disk(stage, params, trainable, precision, lora=lora, deepspeed=deepspeed, checkpoints=kept)


def _memory(
    stage: str, recipe: Recipe, config, params: int, trainable: int, precision: PrecisionPlan, longest: int
) -> MemoryEstimate:
    """The memory estimate of a stage: ``longest`` is SFT's longest sequence or GRPO's longest prompt (tokens)."""
    from recipe_cli.precision import Machine
    from recipe_cli.training import device_defaults, recipe_settings

    dtype_bytes = DTYPE_BYTES[precision.compute]
    trainer = getattr(recipe, stage).trainer
    class_name = TRAINER_CLASSES[stage]
    machine = Machine.here()
    settings = recipe_settings(recipe, stage)
    checkpointing = {**device_defaults(settings, precision, machine), **settings}.get("activation_checkpointing")
    micro_batch = effective_setting(class_name, trainer, "per_device_train_batch_size")
    kv, reference = 0, False
    tokens, logit_tokens = longest, longest
    if stage == "grpo":
        layers = config.num_hidden_layers
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        world = recipe.launch.num_processes
        batch = generation_batch(trainer, world)[0] // world  # each rank generates its share
        completion = effective_setting("GRPOConfig", trainer, "max_completion_length") or 0
        tokens, logit_tokens = longest + completion, completion  # TRL keeps the completion's logits only
        kv = kv_cache_bytes(layers, kv_heads, head_dim, tokens, batch, dtype_bytes)
        reference = bool(effective_setting("GRPOConfig", trainer, "beta")) and recipe.model.lora is None
    lora = recipe.model.lora is not None
    from recipe_cli.launch import sharding

    estimate = memory_estimate(params, trainable, precision, lora=lora, reference=reference, kv_cache=kv)
    layers_bytes, head_bytes = activation_bytes(
        config, micro_batch, tokens, logit_tokens, dtype_bytes, bool(checkpointing), head_trained=not lora
    )
    estimate.update(activations=layers_bytes, **{"lm head pass": head_bytes}, runtime=RUNTIME_BYTES)
    world = recipe.launch.num_processes
    how, sharded = sharding(recipe.launch)
    estimate = {part: size // world if part in sharded else size for part, size in estimate.items()}
    what = f"adapter {precision.master}, base {precision.base}" if lora else f"master weights {precision.master}"
    where = f"per process of {world}, {how}" + (f": {', '.join(sorted(sharded))} sharded" if sharded else "")
    checkpointed = "activation checkpointing" if checkpointing else "no activation checkpointing"
    title = (
        f"{stage}: memory estimate {where if world > 1 else 'of the one process'} "
        f"({what}, compute {precision.compute}, {checkpointed}, micro-batch {micro_batch} x {tokens} tokens)"
    )
    return MemoryEstimate(title, estimate)
