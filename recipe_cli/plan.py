"""What ``recipe validate`` prints: the stages, their data, the TRL settings that differ from TRL's
defaults, and one prompt rendered as the model will see it. Loads no weights, needs no network."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from recipe_cli.config import Recipe, generation_batch
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
        console.print(
            f"grpo batch: {batch} completions per generation ({how}) = {batch // generations} prompts x {generations}"
        )
    for stage, class_name in TRAINER_CLASSES.items():
        if getattr(recipe, stage) is not None:
            console.print(_settings_table(stage, class_name, recipe_settings(recipe, stage)))
    console.print(Panel(Text(render_example_prompt(recipe)), title="one prompt, as the model sees it", expand=False))


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
