"""What the SFT and GRPO stages share: the starting model on disk, TRL config construction, the training
loop's safety net (complete-or-absent checkpoints, resume, preemption, NaN stop), saving."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recipe_cli.config import Recipe
from recipe_cli.errors import RecipeError, TrainingStopped
from recipe_cli.runs import RunFolder, StageStart

log = logging.getLogger(__name__)


def prepare_base_model(recipe: Recipe, run: RunFolder) -> str:
    """The starting model's path or Hub id; a ``tiny`` model is built in the run folder once, from the seed."""
    if recipe.model.tiny is None:
        return recipe.model.path
    target = run.stage_dir("base")
    if not (target / "config.json").is_file():
        partial = target.with_name("base.partial")
        shutil.rmtree(partial, ignore_errors=True)
        build_recipe_tiny_model(recipe, partial)
        shutil.rmtree(target, ignore_errors=True)  # an unfinished copy; rename cannot replace a folder with files
        partial.rename(target)
    return str(target)


def check_training_data(recipe: Recipe, base: str) -> None:
    """Load and filter every training stage's data as the stage will, so a data mistake stops before any work.

    Reads the datasets and the tokenizer only (to drop prompts over ``max_prompt_tokens``), no
    weights. GRPO's tokenizer is SFT's, which SFT saves unchanged from ``base``.
    """
    from recipe_cli.data import grpo_prompts, sft_examples
    from recipe_cli.models import load_tokenizer

    tokenizer = load_tokenizer(base, recipe.model)
    if recipe.sft is not None:
        sft_examples(recipe, tokenizer)
    if recipe.grpo is not None:
        grpo_prompts(recipe, tokenizer)


def build_recipe_tiny_model(recipe: Recipe, output_dir: Path) -> Path:
    """The recipe's ``model.tiny``, written to ``output_dir`` (same seed, same weights and tokenizer)."""
    from recipe_cli.tiny_model import build_tiny_model

    tiny = recipe.model.tiny
    return build_tiny_model(
        output_dir,
        hidden_size=tiny.hidden_size,
        num_layers=tiny.num_layers,
        num_heads=tiny.num_heads,
        vocab_size=tiny.vocab_size,
        max_length=tiny.max_length,
        seed=recipe.seed,
        extra_text=tiny_tokenizer_text(recipe),
    )


def tiny_tokenizer_text(recipe: Recipe) -> list[str]:
    """Text the tiny model's tokenizer is trained on besides the problems: the prompt, so it tokenises compactly."""
    return [recipe.prompt.system or "", recipe.prompt.user]


def device_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """TRL defaults that do not fit this machine, replaced unless the recipe set them.

    TRL configs default to ``bf16=True`` (which raises without a GPU) and to activation
    checkpointing (1.5-2.5x slower for small models on CPU). Without a GPU both are switched off.
    """
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu and settings.get("bf16"):
        raise RecipeError("trainer.bf16 is true but there is no GPU; remove it (or set bf16: false) to train on CPU")
    defaults = {} if on_gpu else {"bf16": False, "dataloader_pin_memory": False}
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; pass the new name
    # so the recipe's (or TRL's) choice holds without a deprecation warning at every run.
    if "activation_checkpointing" not in settings:
        defaults["activation_checkpointing"] = settings.get("gradient_checkpointing", on_gpu)
    return defaults


def recipe_settings(recipe: Recipe, stage: str) -> dict[str, Any]:
    """What a stage hands to TRL before machine defaults: its ``trainer:`` mapping and what recipe owns.

    ``recipe validate`` shows these (no torch import); ``trainer_config`` builds the config from them.
    """
    return {
        "report_to": "none",
        "disable_tqdm": False,  # the CLI quiets transformers' logging, which would hide the progress bar too
        **getattr(recipe, stage).trainer,
        "output_dir": str(RunFolder(recipe).stage_dir(stage)),
        "seed": recipe.seed,
    }


def trainer_config(config_class, recipe: Recipe, stage: str, extra: dict[str, Any] | None = None):
    """Build a TRL config fresh from the recipe (configs do not round-trip through to_dict/replace)."""
    settings = recipe_settings(recipe, stage)
    defaults = device_defaults(settings)
    if "activation_checkpointing" in defaults:
        settings.pop("gradient_checkpointing", None)
    try:
        return config_class(**{**defaults, **settings, **(extra or {})})
    except ValueError as error:  # TRL's own cross-field checks, e.g. batch sizes
        raise RecipeError(f"{stage}.trainer: {error}") from error


def save_final(trainer, output_dir: Path) -> None:
    """Save the trained model, tokenizer and log to ``output_dir``, leaving intermediate checkpoints aside.

    ``trainer_state.json`` keeps the logged loss and rewards, which the model card shows as curves
    (``save_model`` alone writes it only into intermediate checkpoints).
    """
    trainer.save_model(str(output_dir))
    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(str(output_dir))
    trainer.state.save_to_json(str(output_dir / "trainer_state.json"))


def clear_stage_dir(path: Path) -> None:
    """Start a stage in an empty folder, so no file of an earlier attempt is taken for this one's.

    Only called when the user chose it (``--overwrite``) or when there is nothing to resume.
    """
    if path.exists():
        log.info("deleting the earlier contents of %s", path)
        shutil.rmtree(path)


def run_trainer(
    trainer, run: RunFolder, start: StageStart, finish: Callable[[], None], callbacks: list | None = None
) -> None:
    """Train from step 0 or from the start's checkpoint; stop cleanly on SIGTERM/SIGINT or non-finite values.

    Every checkpoint gets a completion marker once fully written. On a signal the current step
    finishes, a checkpoint is saved and ``TrainingStopped`` says where; on a NaN/inf gradient norm,
    loss or weight nothing more is saved, so the last checkpoint is the last good one.
    """
    from recipe_cli.checkpoints import completion_marker_callback, last_complete_checkpoint
    from recipe_cli.health import nonfinite_callback
    from recipe_cli.preemption import PreemptionFlag, preemption_callback, stop_on_signals

    flag = PreemptionFlag()
    nonfinite = nonfinite_callback()
    # in this order: a preemption asks for a save first, so the weights are checked before any save and
    # before the marker; later callbacks (e.g. pushing checkpoints) run once the marker is written
    marker = completion_marker_callback(lambda: nonfinite.healthy)
    for callback in [preemption_callback(flag), nonfinite, marker, *(callbacks or [])]:
        trainer.add_callback(callback)
    if start.checkpoint is not None:
        log.info("%s: resuming from %s", start.stage, start.checkpoint)
    with stop_on_signals(flag):
        run.record_training(start.stage, start.checkpoint)  # inside: a signal from now on finds the handler
        trainer.train(resume_from_checkpoint=str(start.checkpoint) if start.checkpoint else None)
    output = run.stage_dir(start.stage)
    if nonfinite.problem is not None:
        kept = last_complete_checkpoint(output)
        where = f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved before it"
        raise TrainingStopped(
            f"{start.stage} stopped: {nonfinite.problem}; {where}; lower the learning rate or raise warmup_steps, "
            "then resume with --resume --force (or start again with --overwrite)",
            exit_code=3,
        )
    if flag.signum is not None and trainer.state.global_step < trainer.state.max_steps:
        kept = last_complete_checkpoint(output)
        raise TrainingStopped(
            f"{start.stage} stopped by {flag.name} after step {trainer.state.global_step} of "
            f"{trainer.state.max_steps}; checkpoint saved in {kept}",
            exit_code=flag.exit_code,
            resumable=True,
        )
    finish()
    if flag.signum is not None:  # it arrived during the last step: the stage is done, the command stops here
        raise TrainingStopped(
            f"{start.stage} finished its last step ({trainer.state.global_step}) as {flag.name} arrived; "
            f"saved in {output}",
            exit_code=flag.exit_code,
            resumable=True,
        )
