"""Stage 2: GRPO with verifiable rewards (TRL's GRPOTrainer), from the SFT checkpoint when there is one."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recipe_cli.chat import prompt_token_ids, think_prefilled
from recipe_cli.config import Recipe, grpo_max_completion_length
from recipe_cli.data import grpo_prompts
from recipe_cli.generation import stop_at_end_of_turn, stop_token_ids
from recipe_cli.health import health_callback
from recipe_cli.models import (
    adapter_base,
    is_adapter,
    load_causal_lm,
    lora_config,
    model_revision,
    needs_embeddings_trained,
    train_full_layers_in_float32,
    warn_lora_unused,
)
from recipe_cli.peak_memory import with_peak_memory
from recipe_cli.precision import PrecisionPlan
from recipe_cli.resume import StageStart
from recipe_cli.rewards import get_reward, with_run_values
from recipe_cli.runs import RunFolder
from recipe_cli.samples import SAMPLES_FILE, samples_callback
from recipe_cli.step_time import with_step_times
from recipe_cli.training import StageTrainer, log_precision, stage_precision, tokenizer_and_rows, trainer_config

log = logging.getLogger(__name__)


def reward_functions(recipe: Recipe, tokenizer) -> list:
    """The recipe's rewards with their parameters bound, completed with what the run knows.

    ``max_completion_len`` comes from the trainer settings, ``think_prefilled`` from the chat
    template, unless the recipe sets them.
    """
    run_values = {
        "max_completion_len": grpo_max_completion_length(recipe.grpo.trainer),
        "think_prefilled": think_prefilled(recipe, tokenizer),
    }
    if run_values["think_prefilled"]:
        log.info("grpo: the chat template prefills <think>; format rewards expect completions without it")
    functions = [
        get_reward(reward.name, **with_run_values(reward.name, reward.params, run_values))
        for reward in recipe.grpo.rewards
    ]
    return distinct_names(functions)


def distinct_names(functions: list) -> list:
    """The rewards with distinct names: TRL logs each under its function's name, so a reward used twice (accuracy,
    and accuracy with ``answer_after``) logs the second as ``accuracy_2`` instead of hiding one mean under the other.

    >>> from recipe_cli.rewards import get_reward
    >>> [f.__name__ for f in distinct_names([get_reward("accuracy"), get_reward("accuracy", mode="strict")])]
    ['accuracy', 'accuracy_2']
    """
    seen: dict[str, int] = {}
    named = []
    for function in functions:
        name = function.__name__
        seen[name] = seen.get(name, 0) + 1
        named.append(RenamedReward(function, f"{name}_{seen[name]}") if seen[name] > 1 else function)
    return named


class RenamedReward:
    """A reward under another name. TRL names a ``functools.partial`` after the function it wraps, and a callable
    object after its ``__name__``; an object (not a closure) stays picklable for TRL's rollout workers."""

    def __init__(self, function, name: str):
        self.function, self.__name__ = function, name

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


def build_grpo_trainer(recipe: Recipe, start: StageStart, prepared=None) -> StageTrainer:
    """TRL's GRPOTrainer for the recipe's GRPO stage, ready to train; writes nothing (every rank builds one).

    The model comes from disk (the SFT output recorded in the run folder, or the base model), so
    a reference model (``beta > 0``) reloads the same weights. An SFT LoRA adapter is trained
    further as it is; otherwise ``model.lora`` adds a fresh adapter. Health alarms watch the
    training logs (see ``recipe_cli.health``), and a few completions of each logging step are kept
    for the report (see ``recipe_cli.samples``).
    """
    from datasets import Dataset
    from trl import GRPOConfig

    from recipe_cli.divergence import DivergenceGRPOTrainer
    from recipe_cli.dynamic_sampling import with_signal_metric

    run = RunFolder(recipe)
    origin = run.start_of("grpo")
    base = run.base_model_path()
    tokenizer, prompts = tokenizer_and_rows(recipe, origin, prepared, grpo_prompts)
    rewards = reward_functions(recipe, tokenizer)
    weights = [reward.weight for reward in recipe.grpo.rewards]
    continues_adapter = is_adapter(origin)
    precision = stage_precision(recipe)
    extra = {
        "reward_weights": weights,
        **reference_model_settings(recipe, origin, precision),
        **vllm_stop_settings(recipe, tokenizer),
    }
    config = trainer_config(GRPOConfig, recipe, "grpo", extra=extra)
    output = Path(config.output_dir)  # runs/<name>/<stage>, as recipe_settings set it
    log_precision("grpo", precision, lora=recipe.model.lora is not None or continues_adapter)
    if continues_adapter:
        warn_lora_unused(origin, recipe.model, "grpo")
    model = load_causal_lm(origin, recipe.model, trainable_adapter=continues_adapter, dtype=precision.base)
    stop_at_end_of_turn("grpo", model, tokenizer)  # TRL stops where the generation config says
    peft_config = None
    if recipe.model.lora or continues_adapter:
        # the prompts and the tokens that end a completion: what the model reads and must learn to write
        used = {i for row in prompts for i in prompt_token_ids(tokenizer, row["prompt"])}
        used.update(stop_token_ids(tokenizer, model.generation_config))
        adapter = origin if continues_adapter else None
        trained = needs_embeddings_trained("grpo", model, tokenizer, used, adapter=adapter)
        if not continues_adapter:
            peft_config = lora_config(recipe.model.lora, embeddings_of=model if trained else None)
    log.info(
        "grpo: %d prompts, rewards %s, starting from %s", len(prompts), [r.name for r in recipe.grpo.rewards], origin
    )
    trainer_class = DivergenceGRPOTrainer
    if recipe.grpo.dynamic_sampling.enabled:
        from recipe_cli.dynamic_sampling import with_dynamic_sampling

        trainer_class = with_dynamic_sampling(trainer_class, recipe.grpo.dynamic_sampling.max_rounds)
    with without_log_message(TRL_GRPO_LOGGER, IGNORED_INIT_KWARGS):
        trainer = with_step_times(with_peak_memory(with_signal_metric(trainer_class)))(
            divergence=recipe.grpo.penalty,
            model=model,
            reward_funcs=rewards,
            args=config,
            train_dataset=Dataset.from_list(prompts),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
    train_full_layers_in_float32(trainer.model)
    if start.checkpoint is not None:
        align_generation_cycle(trainer, start.checkpoint)
    trainer.add_callback(health_callback(recipe.grpo.health, output / "health.log"))
    trainer.add_callback(samples_callback(trainer, output / SAMPLES_FILE))  # what the report shows of the completions
    record = {
        "lora": continues_adapter or peft_config is not None,
        "base": adapter_base(origin) if continues_adapter else base,
        "started_from": origin,
        "precision": precision.record(),
    }
    return StageTrainer(trainer, output, record)


# TRL warns that `model_init_kwargs` "will be ignored" whenever the policy is passed as a model object, but it
# loads the reference model (beta > 0) with exactly those kwargs (grpo_trainer.py, ~line 993 in TRL 1.16):
# reference_model_settings sets them for that, so the warning would tell the user the pinned revision is lost.
TRL_GRPO_LOGGER = "trl.trainer.grpo_trainer"
IGNORED_INIT_KWARGS = "The `model_init_kwargs` will be ignored."


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextmanager
def without_log_message(logger_name: str, text: str) -> Iterator[None]:
    """Drop the records of ``logger_name`` that contain ``text`` inside the block; every other record passes.

    >>> import logging
    >>> with without_log_message("recipe.example", "ignored"):
    ...     logging.getLogger("recipe.example").filters[0].filter(logging.makeLogRecord({"msg": "x is ignored"}))
    False
    >>> logging.getLogger("recipe.example").filters
    []
    """
    logger = logging.getLogger(logger_name)
    drop = _DropMessage(text)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def vllm_stop_settings(recipe: Recipe, tokenizer) -> dict:
    """GRPOConfig settings that make vLLM stop where SFT's targets end: ``generation_kwargs.stop_token_ids``.

    vLLM stops at the eos of the model it loads (TRL's colocated engine and ``recipe serve`` load the
    starting model from its path, a Hub base model included), not at the generation config
    ``stop_at_end_of_turn`` sets in this process: a chat template that ends turns with another token
    (Qwen2.5's base models: ``<|im_end|>``, eos ``<|endoftext|>``) would have vLLM sample past every
    answer. The recipe's own ``generation_kwargs`` are kept, its stop ids included.
    """
    trainer = recipe.grpo.trainer
    if not trainer.get("use_vllm"):
        return {}
    given = dict(trainer.get("generation_kwargs") or {})
    stops = sorted({*(given.get("stop_token_ids") or []), *stop_token_ids(tokenizer)})  # null: vLLM's default
    return {"generation_kwargs": {**given, "stop_token_ids": stops}}


def reference_model_settings(recipe: Recipe, origin: str, precision: PrecisionPlan) -> dict:
    """GRPOConfig settings for the reference model TRL loads when ``beta > 0`` (full weights only).

    TRL reloads the reference from the policy's ``_name_or_path`` with ``model_init_kwargs``:
    without them it would take the default branch of a Hub model whatever ``model.revision``
    pins, and the policy's float32 master dtype. The reference is frozen, so it is loaded in the
    compute dtype.
    """
    beta = recipe.grpo.beta
    if not beta or recipe.model.lora is not None or is_adapter(origin):
        return {}
    kwargs = {"dtype": precision.compute}
    revision = model_revision(origin, recipe.model)
    if revision is not None:
        kwargs["revision"] = revision
    if recipe.model.attn_implementation:
        kwargs["attn_implementation"] = recipe.model.attn_implementation
    if recipe.model.trust_remote_code:
        kwargs["trust_remote_code"] = True
    return {"model_init_kwargs": kwargs}


def align_generation_cycle(trainer, checkpoint: Path) -> None:
    """Resume GRPOTrainer's micro-step counter, which decides when completions are generated, from the checkpoint.

    TRL 1.16 keeps it in ``_step`` and restarts it at 0 on resume. With the defaults (one
    generation per optimizer step, ``num_iterations: 1``) every checkpoint starts a generation
    cycle, so 0 is right; when a generation spans several optimizer steps, 0 would shift every
    later generation off the sampler's cycle. The completions buffered before the interruption
    are not in the checkpoint: a run resumed mid-cycle generates them again, from the restored RNG.
    """
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    if hasattr(trainer, "_step"):
        trainer._step = state["global_step"] * trainer.args.gradient_accumulation_steps
