"""Stage 1: cold-start supervised fine-tuning on worked solutions (TRL's SFTTrainer)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from recipe_cli.config import Recipe
from recipe_cli.data import sft_examples
from recipe_cli.models import load_causal_lm, load_tokenizer, lora_config
from recipe_cli.runs import RunFolder, StageStart
from recipe_cli.training import clear_stage_dir, prepare_base_model, run_trainer, save_final, trainer_config

log = logging.getLogger(__name__)


def run_sft(recipe: Recipe, start: StageStart | None = None, callbacks: list | None = None) -> Path:
    """Fine-tune the starting model on the SFT dataset; return the saved checkpoint's folder.

    The loss covers the completion only (prompt/completion rows), and the completion is the
    recipe's template filled with the row's reasoning and final answer. ``start`` (from
    ``RunFolder.plan_start``) says whether to resume; by default an earlier run is never overwritten.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    run = RunFolder(recipe)
    start = start or run.plan_start("sft", resume=False, overwrite=False, force=False)
    base = prepare_base_model(recipe, run)
    tokenizer = load_tokenizer(base, recipe.model)
    examples = sft_examples(recipe, tokenizer)
    config = trainer_config(SFTConfig, recipe, "sft")
    output = Path(config.output_dir)  # runs/<name>/<stage>, as recipe_settings set it
    if start.clear:
        clear_stage_dir(output)
    peft_config = lora_config(recipe.model.lora) if recipe.model.lora else None
    log.info("sft: %d examples from %s, starting from %s", len(examples), recipe.sft.dataset.path or "arithmetic", base)
    trainer = SFTTrainer(
        model=load_causal_lm(base, recipe.model),
        args=config,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if start.checkpoint is not None:
        restore_token_count(trainer, start.checkpoint)

    def finish():
        save_final(trainer, output)
        run.record_stage("sft", output, lora=peft_config is not None, base=base, started_from=base)

    run_trainer(trainer, run, start, finish, callbacks=callbacks)  # after the completion marker: e.g. pushing
    return output


def restore_token_count(trainer, checkpoint: Path) -> None:
    """Continue SFTTrainer's logged ``num_tokens`` from the checkpoint instead of from 0.

    TRL 1.16 keeps the running count in ``_total_train_tokens`` and does not restore it on
    resume, so a resumed run's logs would differ from an uninterrupted run's in this column.
    """
    history = json.loads((checkpoint / "trainer_state.json").read_text()).get("log_history", [])
    counts = [entry["num_tokens"] for entry in history if "num_tokens" in entry]
    if counts and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = int(counts[-1])
