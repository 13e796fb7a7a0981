"""What the SFT and GRPO stages share: the starting model on disk, TRL config construction, the training
loop's safety net (complete-or-absent checkpoints, resume, preemption, NaN stop), saving.

Training runs on every rank; nothing here writes ``run.json`` (``recipe_cli.pipeline`` does, on
the main process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipe_cli.config import Recipe, too_few_grpo_prompts
from recipe_cli.errors import NON_FINITE_EXIT_CODE, RecipeError, TrainingStopped
from recipe_cli.precision import Machine, PrecisionPlan, plan_precision
from recipe_cli.preemption import PreemptionFlag
from recipe_cli.resume import StageStart
from recipe_cli.runs import RunFolder
from recipe_cli.trackers import TrackerEnding, TrackerRun, active_trackers, tracking

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


def check_training_data(recipe: Recipe, base: str) -> dict:
    """Load and filter every training stage's data as the stage will, so a data mistake stops before any work.

    Reads the datasets and the tokenizer only (to drop prompts over ``max_prompt_tokens``), no
    weights: a pass-rate filter uses what its cache holds and runs when its stage starts. GRPO's
    tokenizer is SFT's, which SFT saves unchanged from ``base``. Returns each stage's prepared data
    that is final (every stage without a pass-rate filter), for the stage to train on as it is.
    """
    from recipe_cli.data import prepare_stage
    from recipe_cli.models import load_tokenizer

    tokenizer = load_tokenizer(base, recipe.model)
    final = {}
    for stage in recipe.training_stages:
        prepared = prepare_stage(recipe, stage, tokenizer)
        if getattr(recipe, stage).dataset.difficulty is None:
            check_trainable(recipe, prepared)
            final[stage] = prepared
    return final


def check_trainable(recipe: Recipe, prepared) -> None:
    """Raise when a stage's final rows are too few for its trainer to take a step: GRPO's sampler serves whole
    generation batches only, and the trainer ended at step 0 with the stage recorded finished."""
    if prepared.stage == "sft":
        cut = sft_examples_cut(recipe, [len(row["input_ids"]) for row in prepared.rows])
        if cut:
            raise RecipeError(f"sft.dataset: {cut}")
    if prepared.stage != "grpo" or not prepared.rows:
        return
    few = too_few_grpo_prompts(len(prepared.rows), recipe.grpo.trainer, recipe.launch.num_processes)
    if few:
        raise RecipeError(f"grpo.dataset: {few}")


def sft_examples_cut(recipe: Recipe, lengths: list[int]) -> str | None:
    """What TRL's truncation to ``sft.trainer.max_length`` would cut from the SFT examples (token ``lengths``), and
    the fix; None when every example fits, or when TRL keeps their ends: ``truncation_mode: keep_end`` (the
    recipe's own choice to lose the starts) and packing that carries the rest on (``wrapped``, ``bfd_split``).

    A reasoning trace ends with its answer and the end-of-turn token: TRL's default ``keep_start`` (and ``bfd``
    packing, whatever the mode) cuts exactly those, and the model learns traces that never answer nor stop.
    """
    from recipe_cli.trainer_settings import effective_setting

    trainer = recipe.sft.trainer
    max_length = effective_setting("SFTConfig", trainer, "max_length")
    if effective_setting("SFTConfig", trainer, "packing"):
        keeps_ends = effective_setting("SFTConfig", trainer, "packing_strategy") != "bfd"
    else:
        keeps_ends = effective_setting("SFTConfig", trainer, "truncation_mode") == "keep_end"
    too_long = [n for n in lengths if max_length is not None and n > max_length]
    if keeps_ends or not too_long:
        return None
    return (
        f"{len(too_long)} of {len(lengths)} examples are longer than sft.trainer.max_length={max_length} tokens "
        f"(the longest {max(too_long)}), and TRL would cut off their ends (the final answer and the end of turn); "
        f"raise max_length to {max(too_long)} within the model's positions, or drop longer rows with "
        "sft.dataset.max_completion_tokens / max_prompt_tokens"
    )


def check_trainer_configs(recipe: Recipe, stages: list[str]) -> None:
    """Build each stage's TRL config as its trainer will, so that TRL's and transformers' own checks of the
    settings (a scheduler or optimizer name, logging and saving intervals, batch sizes) stop a run before it
    loads data or weights, not when the stage starts after the ones before it. ``validate`` does not import
    TRL (seconds on a small machine); every command that trains does."""
    from trl import GRPOConfig, SFTConfig

    for stage in stages:
        trainer_config(SFTConfig if stage == "sft" else GRPOConfig, recipe, stage)


def prepare_stage_data(recipe: Recipe, stage: str, *, sample: bool = True, tokenizer=None, training: bool = False):
    """A stage's data as its trainer will receive it, with the stage's tokenizer and starting model.

    The starting model (the base model for SFT, SFT's checkpoint for GRPO when the recipe has SFT)
    must be on disk for a pass-rate filter to sample from it; without it that step is reported as
    not measured. Writes only the pass-rate cache (main process, ``sample`` on). ``tokenizer``
    replaces the one on disk (a dry run builds the tiny model's in memory).
    """
    from recipe_cli.data import prepare_stage
    from recipe_cli.models import load_tokenizer

    run = RunFolder(recipe)
    needs_model = getattr(recipe, stage).dataset.difficulty is not None
    try:
        origin = run.start_of(stage)
    except RecipeError:
        if training:  # the stage cannot start: say why, as its trainer would
            raise
        if needs_model and sample:
            raise RecipeError(
                "grpo.dataset.difficulty samples from the SFT model, which is not trained yet; "
                "run `recipe sft` first (`recipe run` does it in order)"
            ) from None
        origin = run.base_model_path()  # SFT saves the base tokenizer unchanged
        needs_model = False
    model = origin if needs_model else None
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(origin, recipe.model)
    prepared = prepare_stage(recipe, stage, tokenizer, model=model, sample=sample, check=sample)
    if training:
        check_trainable(recipe, prepared)
    return prepared


def write_stage_report(recipe: Recipe, prepared) -> None:
    """``runs/<name>/data/<stage>.jsonl`` and ``.json`` of the data a stage is about to train on (main process):
    ``prepared``, which the main process's trainer then trains on rather than running the chain again
    (``build_stage_trainer``)."""
    from recipe_cli.data import write_stage_data

    write_stage_data(prepared, RunFolder(recipe).root / "data")


def tokenizer_and_rows(recipe: Recipe, model: str, prepared, read_rows: Callable) -> tuple:
    """The starting ``model``'s tokenizer and the stage's rows, read by every rank on its own machine: ``prepared``'s
    (the chain's rows as the data report has them, ``write_stage_report``), else ``read_rows(recipe, tokenizer,
    model=model)`` (a pass-rate filter samples from the start). Before the trainer's collectives: one rank's
    mistake stops every rank (``recipe_cli.ranks.on_every``)."""
    from recipe_cli.models import load_tokenizer
    from recipe_cli.ranks import on_every

    def read():
        tokenizer = load_tokenizer(model, recipe.model)
        return tokenizer, prepared.rows if prepared is not None else read_rows(recipe, tokenizer, model=model)

    return on_every(read)


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


def stage_precision(recipe: Recipe, machine: Machine | None = None) -> PrecisionPlan:
    """The recipe's precision plan on this machine and launch (see ``recipe_cli.precision``)."""
    from recipe_cli.launch import saves_16bit_weights

    push_dtype = recipe.push.dtype if recipe.push is not None else "auto"
    lora = recipe.model.trains_lora()  # a model.path holding an adapter trains it further: a frozen base too
    return plan_precision(
        recipe.model.dtype,
        lora=lora,
        machine=machine or Machine.here(),
        push_dtype=push_dtype,
        saves_16bit=saves_16bit_weights(recipe.launch),
    )


def log_precision(stage: str, precision: PrecisionPlan, *, lora: bool) -> None:
    log.info("%s precision: %s", stage, precision.describe(lora))
    if precision.note:
        log.warning("%s: %s", stage, precision.note)


def device_defaults(settings: dict[str, Any], precision: PrecisionPlan, machine: Machine) -> dict[str, Any]:
    """What recipe sets for the machine: the mixed-precision flags of the precision plan, and CPU-friendly defaults.

    TRL configs default to ``bf16=True`` (which raises without a GPU, and would turn on bf16 for a
    float32 recipe) and to activation checkpointing (1.5-2.5x slower for small models on CPU), so
    the flags always come from ``model.dtype``, and checkpointing is off without a GPU unless the
    recipe turns it on. Defaults never override the recipe's ``trainer:`` settings.
    """
    defaults = {"bf16": precision.mixed_precision == "bf16", "fp16": precision.mixed_precision == "fp16"}
    if not machine.gpu:
        defaults["dataloader_pin_memory"] = False
    # every parameter takes part in every forward of these models; DDP's search for unused ones (its default
    # without checkpointing) costs an extra pass over the graph each step and warns about it on every rank
    defaults["ddp_find_unused_parameters"] = False
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; pass the new name
    # so the recipe's (or TRL's) choice holds without a deprecation warning at every run.
    if "activation_checkpointing" not in settings:
        defaults["activation_checkpointing"] = settings.get("gradient_checkpointing", machine.gpu)
    return defaults


def recipe_settings(recipe: Recipe, stage: str) -> dict[str, Any]:
    """What a stage hands to TRL before machine defaults: its ``trainer:`` mapping and what recipe owns.

    ``recipe validate`` shows these (no torch import); ``trainer_config`` builds the config from them.
    """
    from recipe_cli.trackers import tracker_defaults

    owned = {"completion_only_loss": True} if stage == "sft" else {}  # SFT rows are pre-tokenised with a loss mask
    trainer = getattr(recipe, stage).trainer
    return {
        "report_to": "none",  # trackers are opt-in (trainer.report_to); recipe report plots the run afterwards
        "disable_tqdm": True,  # recipe reports progress itself (recipe_cli.console): one line per log
        **owned,
        **tracker_defaults(recipe.name, stage, trainer.get("report_to", "none")),
        **trainer,
        "output_dir": str(RunFolder(recipe).stage_dir(stage)),
        "seed": recipe.seed,
    }


def trainer_config(
    config_class, recipe: Recipe, stage: str, extra: dict[str, Any] | None = None, machine: Machine | None = None
):
    """Build a TRL config fresh from the recipe (configs do not round-trip through to_dict/replace)."""
    machine = machine or Machine.here()
    settings = recipe_settings(recipe, stage)
    defaults = device_defaults(settings, stage_precision(recipe, machine), machine)
    if "activation_checkpointing" in defaults:
        settings.pop("gradient_checkpointing", None)
    try:
        return config_class(**{**defaults, **settings, **(extra or {})})
    except ValueError as error:  # TRL's own cross-field checks, e.g. batch sizes; some span several lines
        raise RecipeError(f"{stage}.trainer: {' '.join(str(error).split())}") from error


@dataclass
class StageTrainer:
    """A stage's trainer, built and ready, with where it saves and what ``run.json`` records once it finished."""

    trainer: Any
    output: Path
    record: dict[str, Any]  # lora, base, started_from, precision (see RunFolder.record_stage)


@dataclass
class StageOutcome:
    """How a stage's training ended, the same on every rank."""

    stage: str
    output: Path
    record: dict[str, Any]
    step: int
    max_steps: int
    finished: bool  # the final model is saved: the stage can be recorded as finished
    signal: str | None = None  # the preemption signal that stopped it (or arrived during its last step)
    exit_code: int | None = None
    problem: str | None = None  # a NaN/inf gradient norm, loss or weight


LOG_STATE = "log-state-{rank}.json"  # in each checkpoint: what the trainer's next log averages over, per rank


def disk_space_callback(stage: str, *, deepspeed: bool):
    """Warn, as training starts (main process), when the disk cannot hold the checkpoints and model the stage
    writes (``recipe_cli.disk``); a full disk would fail a save and lose the steps since the last one."""
    from transformers import TrainerCallback

    from recipe_cli.disk import disk_shortfall, trainer_disk_plan, written_bytes
    from recipe_cli.plan import format_bytes

    class DiskSpace(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.is_world_process_zero and model is not None:
                plan = trainer_disk_plan(
                    stage, model, args, state.max_steps, state.num_train_epochs, deepspeed=deepspeed
                )
                folder = Path(args.output_dir)
                what = f"{stage} ({plan.checkpoints} x checkpoint-N of {format_bytes(plan.checkpoint)}, final model)"
                warning = disk_shortfall(what, max(plan.total - written_bytes(folder), 0), folder)
                if warning is not None:
                    log.warning("%s", warning)
            return control

    return DiskSpace()


def resumed_rate_callback():
    """A TrainerCallback that sets, when a resumed run begins, the learning rate its first step trains with to the
    schedule's value at that step.

    transformers builds the scheduler for the run's length, then loads the checkpoint's optimizer
    and scheduler states; the optimizer's rate is the one the saved run was at, recomputed only by
    the scheduler's next step. A run resumed with the same length gets the same value, but an
    extended one (a larger ``max_steps`` or ``num_train_epochs``) would train its first new step at
    the old schedule's rate (0 after a finished cosine or linear decay: a wasted step) and only then
    follow the schedule recomputed for the new length.
    """
    from torch.optim.lr_scheduler import LambdaLR
    from transformers import TrainerCallback

    class ResumedRate(TrainerCallback):
        def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            schedule = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate wraps it
            if state.global_step == 0 or not isinstance(schedule, LambdaLR):
                return control
            pairs = zip(schedule.base_lrs, schedule.lr_lambdas, strict=True)
            rates = [base * rate(schedule.last_epoch) for base, rate in pairs]
            for group, rate in zip(schedule.optimizer.param_groups, rates, strict=True):
                group["lr"] = rate
            schedule._last_lr = rates
            return control

    return ResumedRate()


def log_state_callback(trainer, resumed_from: Path | None, healthy):
    """A TrainerCallback that keeps, in every checkpoint, what the next logged values are averaged over.

    transformers averages the loss over the steps since the last log (``_tr_loss``,
    ``_globalstep_last_logged``) and TRL averages its metrics likewise (``_metrics``) and counts
    SFT's tokens (``_total_train_tokens``); none of it is in a checkpoint, so a run resumed from a
    step that was not logged would log other numbers than the uninterrupted run. Each rank saves
    its own part (like its RNG state) before the completion marker, and a resumed run puts it back
    when training begins, so the next log averages over the same steps in the same order.
    ``healthy()`` is False once the weights were found non-finite: the main process then deletes
    the checkpoint (``recipe_cli.health``), and no rank writes into it, before or during that.
    """
    import torch
    from transformers import TrainerCallback

    class KeepLogState(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            from recipe_cli.ranks import rank

            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not healthy():  # saved from non-finite weights: the main process deletes it (recipe_cli.health)
                return control
            saved = {
                "tr_loss": trainer._tr_loss.item(),
                "last_logged": trainer._globalstep_last_logged,
                "metrics": {
                    key: list(values) for key, values in getattr(trainer, "_metrics", {}).get("train", {}).items()
                },
                "total_train_tokens": getattr(trainer, "_total_train_tokens", None),
            }
            (folder / LOG_STATE.format(rank=rank())).write_text(json.dumps(saved) + "\n")
            return control

        def on_train_begin(self, args, state, control, **kwargs):
            from recipe_cli.ranks import rank

            path = resumed_from / LOG_STATE.format(rank=rank()) if resumed_from is not None else None
            if path is None or not path.is_file():
                return control
            saved = json.loads(path.read_text())
            trainer._tr_loss = torch.tensor(saved["tr_loss"], device=trainer._tr_loss.device)
            trainer._globalstep_last_logged = saved["last_logged"]
            if hasattr(trainer, "_metrics"):
                trainer._metrics["train"].clear()
                trainer._metrics["train"].update({key: list(values) for key, values in saved["metrics"].items()})
            if saved["total_train_tokens"] is not None and hasattr(trainer, "_total_train_tokens"):
                trainer._total_train_tokens = saved["total_train_tokens"]
            return control

    return KeepLogState()


def progress_callback(stage: str, progress):
    """A TrainerCallback that reports each optimizer step and each log to ``progress`` (the console's view).

    It replaces transformers' own progress bar and printer, which print every log as a raw dict.
    ``progress`` has ``start(stage, max_steps, first_step)``, ``advance(step)``,
    ``logged(stage, step, max_steps, logs, seconds_per_step)`` and ``end()``.
    """
    import time

    from transformers import TrainerCallback

    class ReportProgress(TrainerCallback):
        def __init__(self):
            self.last_time, self.last_step = 0.0, 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_time, self.last_step = time.perf_counter(), state.global_step
            if state.is_world_process_zero:
                progress.start(stage, state.max_steps, state.global_step)
            return control

        def on_step_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                progress.advance(state.global_step)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:  # step logs, not the summary
                return control
            now = time.perf_counter()
            steps = max(state.global_step - self.last_step, 1)
            seconds = (now - self.last_time) / steps
            self.last_time, self.last_step = now, state.global_step
            progress.logged(stage, state.global_step, state.max_steps, dict(logs), seconds)
            return control

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                progress.end()
            return control

    return ReportProgress()


def _tracking(args, recipe: Recipe, stage: str, tracker: TrackerRun | None):
    """The attempt's own run in the trackers ``args.report_to`` turns on; the run name is the recipe's
    ``run_name`` when it sets one."""
    trackers = active_trackers(args.report_to)
    if tracker is None or not trackers:
        return contextlib.nullcontext(TrackerEnding())
    if "run_name" not in getattr(recipe, stage).trainer:
        args.run_name = tracker.run_name(recipe.name, stage)
    return tracking(trackers, args.project, tracker)


def build_stage_trainer(recipe: Recipe, start: StageStart, prepared=None) -> StageTrainer:
    """The stage's trainer; ``prepared``: the stage's data as ``write_stage_report`` prepared it in this process
    (the same chain, tokenizer and starting model), else the trainer's builder prepares it."""
    if start.stage == "sft":
        from recipe_cli.sft import build_sft_trainer

        return build_sft_trainer(recipe, start, prepared)
    from recipe_cli.grpo import build_grpo_trainer

    return build_grpo_trainer(recipe, start, prepared)


def train_stage(
    recipe: Recipe,
    start: StageStart,
    flag: PreemptionFlag,
    callbacks: list | None = None,
    on_ready: Callable[[], None] | None = None,
    progress=None,
    prepared=None,
    tracker: TrackerRun | None = None,
) -> StageOutcome:
    """Train a stage from step 0 or from the start's checkpoint and save it; runs on every rank, writes no record.

    Every checkpoint gets a completion marker once fully written. On a signal (``flag``, set by
    ``recipe_cli.preemption.stop_on_signals``) the current step finishes and a checkpoint is
    saved; on a NaN/inf gradient norm, loss or weight nothing more is saved, so the last checkpoint
    is the last good one. ``on_ready`` runs once the trainer is built, just before the first step
    (the main process records the stage as training then). ``callbacks`` run after the marker. ``prepared``:
    see ``build_stage_trainer``. ``tracker``: the attempt's run in the trackers (the main process's; see
    ``recipe_cli.trackers``).
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from recipe_cli.checkpoints import completion_marker_callback
    from recipe_cli.health import nonfinite_callback
    from recipe_cli.preemption import preemption_callback

    staged = build_stage_trainer(recipe, start, prepared)
    prepared = None  # the trainer holds its own copy of the rows; these need not live through training
    trainer = staged.trainer
    if progress is not None:  # one compact line per log instead of transformers' raw dicts
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(progress_callback(start.stage, progress))
    nonfinite = nonfinite_callback()
    # in this order: a preemption asks for a save first, so the weights are checked before any save and
    # before the marker; later callbacks (e.g. pushing checkpoints) run once the marker is written
    marker = completion_marker_callback(lambda: nonfinite.healthy)
    log_state = log_state_callback(trainer, start.checkpoint, lambda: nonfinite.healthy)
    disk = disk_space_callback(start.stage, deepspeed=bool(getattr(trainer, "is_deepspeed_enabled", False)))
    rate = resumed_rate_callback()
    for callback in [rate, preemption_callback(flag), nonfinite, log_state, marker, disk, *(callbacks or [])]:
        trainer.add_callback(callback)
    from recipe_cli.step_time import time_callbacks

    own = [c for c in trainer.callback_handler.callbacks if type(c).__module__.startswith("recipe_cli.")]
    time_callbacks(trainer, own)  # their share of each GRPO step (recipe_cli.step_time)
    if start.checkpoint is not None:
        log.info("%s: resuming from %s", start.stage, start.checkpoint)
    if on_ready is not None:
        on_ready()
    with _tracking(trainer.args, recipe, start.stage, tracker) as ending:
        trainer.train(resume_from_checkpoint=str(start.checkpoint) if start.checkpoint else None)
        state = trainer.state
        if nonfinite.problem is not None:
            ending.exit_code = NON_FINITE_EXIT_CODE
        elif flag.signum is not None and state.global_step < state.max_steps:
            ending.exit_code, ending.preempted = flag.exit_code, True
    outcome = StageOutcome(start.stage, staged.output, staged.record, state.global_step, state.max_steps, False)
    if flag.signum is not None:
        outcome.signal, outcome.exit_code = flag.name, flag.exit_code
    if nonfinite.problem is not None:
        outcome.problem = nonfinite.problem
        return outcome
    if flag.signum is not None and state.global_step < state.max_steps:
        return outcome
    save_final(trainer, staged.output)
    outcome.finished = True
    return outcome


def stopped_error(outcome: StageOutcome) -> TrainingStopped | None:
    """What to tell the user about a stage that did not simply finish; None when it did."""
    from recipe_cli.checkpoints import last_complete_checkpoint

    stage = outcome.stage
    if outcome.problem is not None:
        kept = last_complete_checkpoint(outcome.output)
        where = f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved before it"
        return TrainingStopped(
            f"{stage} stopped: {outcome.problem}; {where}; lower the learning rate or raise warmup_steps, "
            "then resume with --resume --force (or start again with --overwrite)",
            exit_code=NON_FINITE_EXIT_CODE,
        )
    if outcome.signal is None:
        return None
    if not outcome.finished:
        kept = last_complete_checkpoint(outcome.output)
        return TrainingStopped(
            f"{stage} stopped by {outcome.signal} after step {outcome.step} of {outcome.max_steps}; "
            f"checkpoint saved in {kept}",
            exit_code=outcome.exit_code,
            resumable=True,
        )
    # it arrived during the last step: the stage is done, the command stops here
    return TrainingStopped(
        f"{stage} finished its last step ({outcome.step}) as {outcome.signal} arrived; saved in {outcome.output}",
        exit_code=outcome.exit_code,
        resumable=True,
    )


def save_final(trainer, output_dir: Path) -> None:
    """Save the trained model, tokenizer and log to ``output_dir``, leaving intermediate checkpoints aside.

    Every rank calls it: with sharded weights (DeepSpeed ZeRO-3, FSDP) ``save_model`` gathers them.
    ``trainer_state.json`` keeps the logged loss and rewards, which the model card shows as curves
    (``save_model`` alone writes it only into intermediate checkpoints).
    """
    trainer.save_model(str(output_dir))
    if not trainer.is_world_process_zero():
        return
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
