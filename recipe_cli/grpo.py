"""Stage 2: GRPO with verifiable rewards (TRL's GRPOTrainer), from the SFT checkpoint when there is one."""

from __future__ import annotations

import logging
from pathlib import Path

from recipe_cli.config import Recipe, grpo_max_completion_length
from recipe_cli.data import drop_long_prompts, load_examples, prompt_rows
from recipe_cli.models import (
    adapter_base,
    is_adapter,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    template_prefills_think,
)
from recipe_cli.rewards import get_reward, with_run_values
from recipe_cli.runs import RunFolder
from recipe_cli.training import clear_stage_dir, prepare_base_model, save_final, trainer_config

log = logging.getLogger(__name__)


def reward_functions(recipe: Recipe, tokenizer) -> list:
    """The recipe's rewards with their parameters bound, completed with what the run knows.

    ``max_completion_len`` comes from the trainer settings, ``think_prefilled`` from the chat
    template, unless the recipe sets them.
    """
    run_values = {
        "max_completion_len": grpo_max_completion_length(recipe.grpo.trainer),
        "think_prefilled": template_prefills_think(tokenizer),
    }
    if run_values["think_prefilled"]:
        log.info("grpo: the chat template prefills <think>; format rewards expect completions without it")
    return [
        get_reward(reward.name, **with_run_values(reward.name, reward.params, run_values))
        for reward in recipe.grpo.rewards
    ]


def run_grpo(recipe: Recipe, callbacks: list | None = None) -> Path:
    """Train with GRPO on the recipe's prompts and rewards; return the saved checkpoint's folder.

    The model comes from disk (the SFT output recorded in the run folder, or the base model), so
    a reference model (``beta > 0``) reloads the same weights. An SFT LoRA adapter is trained
    further as it is; otherwise ``model.lora`` adds a fresh adapter.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    run = RunFolder(recipe)
    rows = load_examples(recipe.grpo.dataset, recipe.seed)
    start = run.start_of("grpo")
    base = prepare_base_model(recipe, run)
    tokenizer = load_tokenizer(start, recipe.model)
    prompts = drop_long_prompts(
        prompt_rows(rows, recipe.prompt), tokenizer, recipe.grpo.dataset.max_prompt_tokens, "grpo.dataset"
    )
    rewards = reward_functions(recipe, tokenizer)
    weights = [reward.weight for reward in recipe.grpo.rewards]
    config = trainer_config(GRPOConfig, recipe, "grpo", extra={"reward_weights": weights})
    output = Path(config.output_dir)  # runs/<name>/<stage>, as recipe_settings set it
    clear_stage_dir(output)
    continues_adapter = is_adapter(start)
    model = load_causal_lm(start, recipe.model, trainable_adapter=continues_adapter)
    peft_config = lora_config(recipe.model.lora) if recipe.model.lora and not continues_adapter else None
    log.info(
        "grpo: %d prompts, rewards %s, starting from %s", len(prompts), [r.name for r in recipe.grpo.rewards], start
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=Dataset.from_list(prompts),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,  # e.g. pushing intermediate checkpoints (recipe_cli.hub.checkpoint_pusher)
    )
    trainer.train()
    save_final(trainer, output)
    lora = continues_adapter or peft_config is not None
    run.record_stage(
        "grpo", output, lora=lora, base=adapter_base(start) if continues_adapter else base, started_from=start
    )
    return output
