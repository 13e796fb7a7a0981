"""Stage 1: cold-start supervised fine-tuning on worked solutions (TRL's SFTTrainer)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from recipe_cli.chat import describe_template, think_prefilled
from recipe_cli.config import Recipe
from recipe_cli.data import sft_examples
from recipe_cli.generation import stop_at_end_of_turn
from recipe_cli.models import (
    adapter_base,
    is_adapter,
    load_causal_lm,
    lora_config,
    needs_embeddings_trained,
    train_full_layers_in_float32,
    warn_lora_unused,
)
from recipe_cli.peak_memory import with_peak_memory
from recipe_cli.resume import StageStart
from recipe_cli.runs import RunFolder
from recipe_cli.training import StageTrainer, log_precision, stage_precision, tokenizer_and_rows, trainer_config

log = logging.getLogger(__name__)


def build_sft_trainer(recipe: Recipe, start: StageStart, prepared=None) -> StageTrainer:
    """TRL's SFTTrainer for the recipe's SFT stage, ready to train; writes nothing (every rank builds one).

    The loss covers the completion only: each example is pre-tokenised as the prompt the model
    sees at generation (masked) and the recipe's template filled with the row's reasoning and final
    answer, ended by the end-of-turn token (``recipe_cli.chat``). Full weights train as float32
    master weights whatever ``model.dtype`` says (``recipe_cli.precision``).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    run = RunFolder(recipe)
    base = run.base_model_path()
    tokenizer, examples = tokenizer_and_rows(recipe, base, prepared, sft_examples)
    for line in describe_template(tokenizer, think_prefilled(recipe, tokenizer)):
        log.info("sft: %s", line)
    config = trainer_config(SFTConfig, recipe, "sft")
    # a `model.path` that holds a LoRA adapter is trained further as it is, as GRPO trains SFT's adapter
    continues_adapter = is_adapter(base)
    peft_config = lora_config(recipe.model.lora) if recipe.model.lora and not continues_adapter else None
    precision = stage_precision(recipe)
    log_precision("sft", precision, lora=continues_adapter or peft_config is not None)
    log.info("sft: %d examples from %s, starting from %s", len(examples), recipe.sft.dataset.describe_source(), base)
    if continues_adapter:
        warn_lora_unused(base, recipe.model, "sft")
    model = load_causal_lm(base, recipe.model, trainable_adapter=continues_adapter, dtype=precision.base)
    stop_at_end_of_turn("sft", model, tokenizer)  # saved with the checkpoint
    if peft_config is not None or continues_adapter:
        used = {i for row in examples for i in row["input_ids"]}
        if needs_embeddings_trained("sft", model, tokenizer, used, adapter=base if continues_adapter else None):
            peft_config = lora_config(recipe.model.lora, embeddings_of=model)
    trainer = with_peak_memory(SFTTrainer)(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    train_full_layers_in_float32(trainer.model)
    if start.checkpoint is not None:
        restore_token_count(trainer, start.checkpoint)
    record = {
        "lora": continues_adapter or peft_config is not None,
        "base": adapter_base(base) if continues_adapter else base,
        "started_from": base,
        "precision": precision.record(),
    }
    return StageTrainer(trainer, Path(config.output_dir), record)


def restore_token_count(trainer, checkpoint: Path) -> None:
    """Continue SFTTrainer's logged ``num_tokens`` from a checkpoint saved before it kept its log state.

    TRL 1.16 keeps the running count in ``_total_train_tokens`` and does not restore it on resume.
    Checkpoints now carry it (``recipe_cli.training.LOG_STATE``); older ones fall back to the last
    logged value, exact only when the checkpoint's step was logged.
    """
    history = json.loads((checkpoint / "trainer_state.json").read_text()).get("log_history", [])
    counts = [entry["num_tokens"] for entry in history if "num_tokens" in entry]
    if counts and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = int(counts[-1])
