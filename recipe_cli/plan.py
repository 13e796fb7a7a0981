"""What ``recipe validate`` prints (the stages, their data, the TRL settings that differ from TRL's
defaults, one prompt rendered as the model will see it; loads no weights, needs no network), and what
``--dry-run`` adds with the data and the tokenizer loaded: dataset sizes after filtering, a tokenised
example with its loss mask, batches, steps, a memory estimate from the model config, and misfits."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from recipe_cli.config import DIVERGENCES, GRPOSettings, Recipe, generation_batch
from recipe_cli.errors import RecipeError
from recipe_cli.runs import RunFolder
from recipe_cli.trainer_settings import non_default_settings
from recipe_cli.training import recipe_settings

TRAINER_CLASSES = {"sft": "SFTConfig", "grpo": "GRPOConfig"}
EXAMPLE_QUESTION = (  # the first GSM8K test problem
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. "
    "How much in dollars does she make every day at the farmers' market?"
)


def describe_plan(recipe: Recipe, console: Console) -> None:
    run = RunFolder(recipe)
    model = recipe.model.path or f"tiny model built in {run.stage_dir('base')} ({recipe.model.tiny.model_dump()})"
    lora = f", LoRA r={recipe.model.lora.r}" if recipe.model.lora else ""
    console.print(f"[bold]{recipe.name}[/]: {model}, dtype {recipe.model.dtype}{lora}, seed {recipe.seed}")
    console.print(f"run folder: {run.root}")
    stages = [s for s in ("eval base", "sft", "grpo", "push") if _configured(recipe, s)]
    console.print("stages: " + " -> ".join(_with_evals(recipe, stages)))
    for stage in ("sft", "grpo", "eval"):
        settings = getattr(recipe, stage)
        if settings is None:
            continue
        data = settings.dataset
        source = data.path or "generated arithmetic problems"
        limit = f", at most {data.max_samples}" if data.max_samples else ""
        if data.teacher_error_rate:
            limit += f", teacher error rate {data.teacher_error_rate:g}"
        console.print(f"{stage} data: {source} (adapter {data.adapter}), split {data.split}{limit}")
    if recipe.eval is not None:
        settings = recipe.eval
        sampling = ""
        if settings.num_samples > 1:
            sampling = (
                f" + {settings.num_samples} samples per problem (temperature {settings.temperature:g}, "
                f"top_p {settings.top_p:g}, seed {recipe.seed}) for pass@k and maj@k, k in {settings.pass_k}"
            )
        console.print(
            f"eval decoding: greedy{sampling}; max_new_tokens {settings.max_new_tokens}, "
            f"batch {settings.batch_size}, backend {settings.backend}"
        )
    if recipe.grpo is not None:
        rewards = ", ".join(
            f"{r.name} x{r.weight:g}" + (f" {r.params}" if r.params else "") for r in recipe.grpo.rewards
        )
        batch, generations, how = generation_batch(recipe.grpo.trainer)
        console.print(f"grpo rewards: {rewards}")
        console.print(f"grpo divergence: {explain_divergence(recipe.grpo)}")
        console.print(
            f"grpo batch: {batch} completions per generation ({how}) = {batch // generations} prompts x {generations}"
        )
    for stage, class_name in TRAINER_CLASSES.items():
        if getattr(recipe, stage) is not None:
            console.print(_settings_table(stage, class_name, recipe_settings(recipe, stage)))
    console.print(Panel(Text(render_example_prompt(recipe)), title="one prompt, as the model sees it", expand=False))


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
        if stage in ("sft", "grpo") and recipe.eval is not None:
            out.append("eval")
    return out


def _settings_table(stage: str, class_name: str, settings: dict) -> Table:
    table = Table(title=f"{stage}: {class_name} settings that differ from TRL's defaults", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("TRL default")
    for key, (value, default) in non_default_settings(class_name, settings).items():
        table.add_row(key, repr(value), repr(default))
    return table


def render_example_prompt(recipe: Recipe) -> str:
    """One prompt rendered with the chat template when it is available offline, else as plain messages."""
    from recipe_cli.data import build_messages

    question = _first_question(recipe)
    messages = build_messages(question, recipe.prompt)
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


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ADAM_STATE_BYTES = 8  # AdamW keeps two fp32 moments per trainable parameter


def memory_estimate(
    params: int, trainable: int, dtype_bytes: int, *, reference: bool = False, kv_cache: int = 0
) -> dict[str, int]:
    """Bytes for weights, gradients, AdamW state, a reference copy and the KV cache (activations not included).

    >>> memory_estimate(1_000_000, 1_000_000, 2)
    {'weights': 2000000, 'gradients': 2000000, 'optimizer': 8000000, 'reference model': 0, 'kv cache': 0}
    """
    return {
        "weights": params * dtype_bytes,
        "gradients": trainable * dtype_bytes,
        "optimizer": trainable * ADAM_STATE_BYTES,
        "reference model": params * dtype_bytes if reference else 0,
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


def _setting(class_name: str, trainer: dict, key: str):
    """The stage's value for a TRL setting: the recipe's, else TRL's literal default."""
    from recipe_cli.trainer_fields import trainer_fields

    if key in trainer:
        return trainer[key]
    field = trainer_fields(class_name).get(key)
    return field.default if field is not None and field.has_default else None


def describe_training_plan(recipe: Recipe, stages: list[str], console: Console) -> None:
    """What ``--dry-run`` prints for each stage: data after filtering, batches, steps, memory, misfits."""
    from recipe_cli.models import resolve_dtype

    tokenizer = _plan_tokenizer(recipe)
    config = _model_config(recipe)
    dtype = str(resolve_dtype(recipe.model.dtype)).removeprefix("torch.")
    params, trainable = _parameter_counts(config, recipe)
    lora = f", LoRA trains {trainable:,}" if recipe.model.lora else ""
    console.print(f"[bold]{recipe.name}[/] dry run: model {params:,} parameters{lora}, dtype {dtype}")
    for stage in stages:
        console.rule(f"[bold]{stage}[/] plan")
        if stage == "sft":
            misfits, prompt_tokens = _describe_sft(recipe, tokenizer, console), 0
        else:
            misfits, prompt_tokens = _describe_grpo(recipe, tokenizer, config, console)
        console.print(_memory_table(stage, recipe, config, params, trainable, dtype, prompt_tokens))
        for misfit in misfits:
            console.print(f"[bold yellow]misfit:[/] {misfit}")
        if not misfits:
            console.print("no misfits found")
        for risk in checkpoint_risks(getattr(recipe, stage).trainer, stage):
            console.print(f"[yellow]risk:[/] {risk}")


def _plan_tokenizer(recipe: Recipe):
    """The tokenizer training will use, without writing anything: the tiny one is built in memory."""
    if recipe.model.tiny is not None:
        from recipe_cli.tiny_model import build_tokenizer
        from recipe_cli.training import tiny_tokenizer_text

        return build_tokenizer(recipe.model.tiny.vocab_size, tiny_tokenizer_text(recipe))
    from recipe_cli.models import load_tokenizer

    return load_tokenizer(recipe.model.path, recipe.model)


def _model_config(recipe: Recipe):
    """The model's config (no weights): the tiny model's, else AutoConfig from the folder or the Hub cache."""
    if recipe.model.tiny is not None:
        from recipe_cli.tiny_model import tiny_model_config

        tiny = recipe.model.tiny
        return tiny_model_config(tiny.hidden_size, tiny.num_layers, tiny.num_heads, tiny.vocab_size, tiny.max_length)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(
            recipe.model.path, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
        )
    except OSError as error:
        raise RecipeError(f"cannot read the config of '{recipe.model.path}': {str(error).splitlines()[0]}") from None


def _parameter_counts(config, recipe: Recipe) -> tuple[int, int]:
    """All parameters and the trainable ones (LoRA: r x (in + out) per adapted linear layer), counted on meta."""
    import torch
    from transformers import AutoModelForCausalLM

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
        names = [targets] if isinstance(targets, str) else targets
        if targets == "all-linear" or any(name.endswith(t) for t in names):
            trainable += recipe.model.lora.r * (module.in_features + module.out_features)
    return params, trainable


def _prompt_lengths(rows: list[dict], tokenizer) -> list[int]:
    from recipe_cli.data import count_prompt_tokens

    return [count_prompt_tokens(tokenizer, r["prompt"]) for r in rows]


def _token_ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def _kept(lengths: list[int], limit: int | None) -> int:
    return sum(1 for n in lengths if limit is None or n <= limit)


def _describe_sft(recipe: Recipe, tokenizer, console: Console) -> list[str]:
    from recipe_cli.data import load_examples, sft_rows

    settings, trainer = recipe.sft, recipe.sft.trainer
    rows = sft_rows(load_examples(settings.dataset, recipe.seed), recipe)
    lengths = _prompt_lengths(rows, tokenizer)
    limit = settings.dataset.max_prompt_tokens
    kept = _kept(lengths, limit)
    console.print(f"data: {len(rows)} examples{_after_filter(kept, limit)}")
    example = rows[lengths.index(min(lengths))] if kept else rows[0]
    prompt_ids = _token_ids(tokenizer, example["prompt"], generation_prompt=True)
    full_ids = _token_ids(tokenizer, example["prompt"] + example["completion"], generation_prompt=False)
    _print_prompt(console, _render(tokenizer, prompt_ids))
    legend = r"([dim]\[masked][/] prompt tokens, [bold green]trained-on[/] tokens)"
    console.print(f"[bold]one tokenised example[/] {legend}:")
    console.print(_loss_mask(tokenizer, full_ids, len(prompt_ids)), soft_wrap=False)
    per_step = _batch(trainer, "SFTConfig")
    misfits = []
    max_length = _setting("SFTConfig", trainer, "max_length")
    totals = [
        len(_token_ids(tokenizer, r["prompt"] + r["completion"], generation_prompt=False))
        for r, n in zip(rows, lengths, strict=True)
        if limit is None or n <= limit
    ]
    too_long = sum(1 for n in totals if max_length and n > max_length)
    if too_long:
        misfits.append(
            f"{too_long} of {len(totals)} examples are longer than sft.trainer.max_length={max_length} and will be "
            f"truncated; set max_length: {max(totals)} to keep them whole"
        )
    if limit is not None and kept < len(rows):
        misfits.append(_dropped(len(rows) - kept, len(rows), "sft", max(lengths)))
    _describe_steps(console, kept, per_step, trainer, "SFTConfig")
    console.print(
        "loss: [bold]completion tokens only[/] (prompt tokens are masked), sequences of up to "
        f"{max(totals) if totals else 0} tokens"
    )
    return misfits


def _describe_grpo(recipe: Recipe, tokenizer, config, console: Console) -> tuple[list[str], int]:
    from recipe_cli.data import load_examples, prompt_rows

    settings, trainer = recipe.grpo, recipe.grpo.trainer
    rows = prompt_rows(load_examples(settings.dataset, recipe.seed), recipe.prompt)
    lengths = _prompt_lengths(rows, tokenizer)
    limit = settings.dataset.max_prompt_tokens
    kept = _kept(lengths, limit)
    console.print(f"data: {len(rows)} prompts{_after_filter(kept, limit)}")
    first = _token_ids(tokenizer, rows[0]["prompt"], generation_prompt=True)
    _print_prompt(console, _render(tokenizer, first))
    generations = _setting("GRPOConfig", trainer, "num_generations")
    completions = _batch(trainer, "GRPOConfig")
    batch, _, how = generation_batch(trainer)
    console.print(
        f"per optimizer step: {completions // generations} unique prompts x {generations} completions "
        f"= {completions} completions; generation batch {batch} ({how})"
    )
    beta = _setting("GRPOConfig", trainer, "beta") or 0.0
    console.print(
        f"reference model: {'loaded (beta ' + format(beta, 'g') + ')' if beta else 'not loaded (beta 0: no KL term)'}"
    )
    console.print(f"divergence: {explain_divergence(recipe.grpo)}")
    iterations = _setting("GRPOConfig", trainer, "num_iterations")
    _describe_steps(console, kept * iterations, completions // generations, trainer, "GRPOConfig")
    misfits = []
    if limit is not None and kept < len(rows):
        misfits.append(_dropped(len(rows) - kept, len(rows), "grpo", max(lengths)))
    completion_tokens = _setting("GRPOConfig", trainer, "max_completion_length") or 0
    longest = max(n for n in lengths if limit is None or n <= limit) if kept else max(lengths)
    positions = getattr(config, "max_position_embeddings", None)
    if positions and longest + completion_tokens > positions:
        misfits.append(
            f"the longest prompt ({longest} tokens) + max_completion_length {completion_tokens} exceeds the model's "
            f"{positions} positions; set grpo.dataset.max_prompt_tokens: {max(positions - completion_tokens, 1)} "
            f"or max_completion_length: {max(positions - longest, 1)}"
        )
    console.print(f"sequences: prompts up to {longest} tokens + up to {completion_tokens} completion tokens")
    return misfits, longest


def checkpoint_risks(trainer: dict, stage: str) -> list[str]:
    """Checkpoint settings that could lose more than the steps since the last save.

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
    cycle = generation_cycle(trainer) if stage == "grpo" else 1
    save_steps = _setting("GRPOConfig" if stage == "grpo" else "SFTConfig", trainer, "save_steps")
    if cycle > 1 and isinstance(save_steps, int) and save_steps % cycle:
        risks.append(
            f"grpo.trainer.save_steps: {save_steps} is not a multiple of the {cycle} optimizer steps one generation "
            f"serves; a run resumed in mid-generation samples those completions again (set save_steps: "
            f"{max(cycle, save_steps // cycle * cycle)} for exact resumes)"
        )
    if trainer.get("save_total_limit") == 1:
        risks.append(
            f"{stage}.trainer.save_total_limit: 1 deletes the last complete checkpoint before the new one is "
            "marked complete; keep at least 2"
        )
    return risks


def generation_cycle(trainer: dict) -> int:
    """Optimizer steps that one GRPO generation serves (completions are reused between them).

    Micro-batches per generation follow GRPOConfig: ``steps_per_generation``, else
    ``generation_batch_size`` over the global batch, else ``gradient_accumulation_steps``.

    >>> generation_cycle({}), generation_cycle({"steps_per_generation": 4}), generation_cycle({"num_iterations": 2})
    (1, 4, 2)
    >>> generation_cycle({"generation_batch_size": 32, "per_device_train_batch_size": 8})
    4
    """
    import os

    accumulation = _setting("GRPOConfig", trainer, "gradient_accumulation_steps")
    per_generation = _setting("GRPOConfig", trainer, "steps_per_generation")
    generation_batch = _setting("GRPOConfig", trainer, "generation_batch_size")
    if per_generation is None and generation_batch is not None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        per_generation = generation_batch // (_setting("GRPOConfig", trainer, "per_device_train_batch_size") * world)
    per_generation = per_generation or accumulation
    return max(per_generation * _setting("GRPOConfig", trainer, "num_iterations") // accumulation, 1)


def _after_filter(kept: int, limit: int | None) -> str:
    """How many rows survive ``max_prompt_tokens``.

    >>> _after_filter(30, 64), _after_filter(32, None)
    (', 30 after dropping prompts longer than 64 tokens', ' (no max_prompt_tokens: none dropped)')
    """
    if limit is None:
        return " (no max_prompt_tokens: none dropped)"
    return f", {kept} after dropping prompts longer than {limit} tokens"


def _dropped(dropped: int, total: int, stage: str, longest: int) -> str:
    return (
        f"{dropped} of {total} {stage} prompts are longer than {stage}.dataset.max_prompt_tokens and are dropped; "
        f"set max_prompt_tokens: {longest} to keep them all"
    )


def _batch(trainer: dict, class_name: str) -> int:
    """Examples (SFT) or completions (GRPO) per optimizer step on one process."""
    import os

    per_device = _setting(class_name, trainer, "per_device_train_batch_size")
    accumulation = _setting(class_name, trainer, "gradient_accumulation_steps")
    return per_device * accumulation * int(os.environ.get("WORLD_SIZE", "1"))


def _describe_steps(console: Console, items: int, per_step: int, trainer: dict, cls: str) -> None:
    """Steps per epoch (whole batches only) and the total the run will take."""
    per_epoch = items // per_step if per_step else 0
    max_steps = _setting(cls, trainer, "max_steps")
    epochs = _setting(cls, trainer, "num_train_epochs")
    total = max_steps if max_steps > 0 else int(per_epoch * epochs)
    how = "max_steps" if max_steps > 0 else f"{epochs:g} epochs"
    console.print(
        f"steps: {per_epoch} per epoch ({per_step} {'prompts' if cls == 'GRPOConfig' else 'examples'} per step); "
        f"{total} in all ({how}, {total / per_epoch if per_epoch else 0:.2f} epochs)"
    )


def _print_prompt(console: Console, prompt: str) -> None:
    console.print("[bold]one prompt, as the model sees it:[/]")
    console.print(Text(prompt), soft_wrap=False)  # wrapped, never cropped


def _render(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


def _loss_mask(tokenizer, ids: list[int], prompt_tokens: int) -> Text:
    """The example token by token: masked prompt tokens dim in [brackets], trained-on tokens in bold."""
    text = Text()
    text.append(f"{len(ids)} tokens: {prompt_tokens} masked (no loss), {len(ids) - prompt_tokens} trained on\n")
    for index, token in enumerate(ids):
        piece = tokenizer.decode([token], skip_special_tokens=False).replace("\n", "\\n")
        if index < prompt_tokens:
            text.append(f"[{piece}]", style="dim")
        else:
            text.append(piece, style="bold green")
        text.append("|")
    return text


def _memory_table(
    stage: str, recipe: Recipe, config, params: int, trainable: int, dtype: str, prompt_tokens: int
) -> Table:
    dtype_bytes = DTYPE_BYTES.get(dtype, 4)
    kv, reference = 0, False
    if stage == "grpo":
        trainer = recipe.grpo.trainer
        layers = config.num_hidden_layers
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        batch, _, _ = generation_batch(trainer)
        tokens = prompt_tokens + (_setting("GRPOConfig", trainer, "max_completion_length") or 0)
        kv = kv_cache_bytes(layers, kv_heads, head_dim, tokens, batch, dtype_bytes)
        reference = bool(_setting("GRPOConfig", trainer, "beta")) and recipe.model.lora is None
    estimate = memory_estimate(params, trainable, dtype_bytes, reference=reference, kv_cache=kv)
    table = Table(title=f"{stage}: memory estimate ({dtype}; activations not included)", title_justify="left")
    table.add_column("part")
    table.add_column("size", justify="right")
    for part, size in estimate.items():
        table.add_row(part, format_bytes(size))
    table.add_row("total", format_bytes(sum(estimate.values())))
    return table
