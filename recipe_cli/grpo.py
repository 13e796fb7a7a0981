"""Stage 2: GRPO with verifiable rewards (TRL's GRPOTrainer), from the SFT checkpoint when there is one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from recipe_cli.config import Recipe, grpo_max_completion_length
from recipe_cli.data import grpo_prompts
from recipe_cli.health import health_callback
from recipe_cli.models import (
    adapter_base,
    is_adapter,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    template_prefills_think,
)
from recipe_cli.rewards import get_reward, with_run_values
from recipe_cli.runs import RunFolder, StageStart
from recipe_cli.training import clear_stage_dir, prepare_base_model, run_trainer, save_final, trainer_config

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


def run_grpo(recipe: Recipe, start: StageStart | None = None, callbacks: list | None = None) -> Path:
    """Train with GRPO on the recipe's prompts and rewards; return the saved checkpoint's folder.

    The model comes from disk (the SFT output recorded in the run folder, or the base model), so
    a reference model (``beta > 0``) reloads the same weights. An SFT LoRA adapter is trained
    further as it is; otherwise ``model.lora`` adds a fresh adapter. ``start`` (from
    ``RunFolder.plan_start``) says whether to resume; by default an earlier run is never overwritten.
    Health alarms watch the training logs (see ``recipe_cli.health``).
    """
    from datasets import Dataset
    from trl import GRPOConfig

    from recipe_cli.divergence import DivergenceGRPOTrainer

    run = RunFolder(recipe)
    start = start or run.plan_start("grpo", resume=False, overwrite=False, force=False)
    origin = run.start_of("grpo")
    base = prepare_base_model(recipe, run)
    tokenizer = load_tokenizer(origin, recipe.model)
    prompts = grpo_prompts(recipe, tokenizer)
    rewards = reward_functions(recipe, tokenizer)
    weights = [reward.weight for reward in recipe.grpo.rewards]
    config = trainer_config(GRPOConfig, recipe, "grpo", extra={"reward_weights": weights})
    output = Path(config.output_dir)  # runs/<name>/<stage>, as recipe_settings set it
    if start.clear:
        clear_stage_dir(output)
    continues_adapter = is_adapter(origin)
    model = load_causal_lm(origin, recipe.model, trainable_adapter=continues_adapter)
    peft_config = lora_config(recipe.model.lora) if recipe.model.lora and not continues_adapter else None
    log.info(
        "grpo: %d prompts, rewards %s, starting from %s", len(prompts), [r.name for r in recipe.grpo.rewards], origin
    )
    trainer = DivergenceGRPOTrainer(
        divergence=recipe.grpo.penalty,
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=Dataset.from_list(prompts),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if start.checkpoint is not None:
        align_generation_cycle(trainer, start.checkpoint)
    output.mkdir(parents=True, exist_ok=True)
    # after the completion marker: e.g. pushing checkpoints
    extra = [health_callback(recipe.grpo.health, output / "health.log"), *(callbacks or [])]
    lora = continues_adapter or peft_config is not None

    def finish():
        save_final(trainer, output)
        run.record_stage(
            "grpo", output, lora=lora, base=adapter_base(origin) if continues_adapter else base, started_from=origin
        )

    run_trainer(trainer, run, start, finish, callbacks=extra)
    return output


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
