"""Stage 4: publish a checkpoint to the Hugging Face Hub in one verified commit, with a model card from the run.

``plan_push`` decides everything first (the checkpoint, the files, the branch) and writes the card
(``recipe_cli.card``) to ``runs/<name>/push/<revision>/README.md``, so ``recipe push --dry-run``
shows exactly what a push uploads. ``push_checkpoint`` then makes one commit on the branch and reads
the branch back (``recipe_cli.hub``): a push is reported only once the Hub's head of the branch is
that commit and holds every file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from recipe_cli.card import PLOTS_DIR, card_plots, render_model_card
from recipe_cli.checkpoints import MARKER, is_complete, is_training_state
from recipe_cli.config import HUB_ID, Recipe, check_saved_weights, is_local_path
from recipe_cli.errors import RecipeError
from recipe_cli.hub import UploadFile, commit_files, require_hub
from recipe_cli.models import adapter_base, is_adapter
from recipe_cli.resume import outdated as stage_outdated
from recipe_cli.runs import RunFolder
from recipe_cli.samples import SAMPLES_FILE
from recipe_cli.weights import convert_checkpoint, stored_dtypes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushPlan:
    """Everything a push will do, decided before any network call."""

    repo_id: str
    revision: str
    stage: str
    checkpoint: Path  # the folder whose files are uploaded (the merged copy with push.merge_lora)
    lora: bool  # the upload is a LoRA adapter
    files: list[UploadFile]  # the card (README.md) included
    card_path: Path
    dtype: str = "float32"  # of the uploaded weights
    converted_from: str | None = None  # the checkpoint's dtype, when the upload is a converted copy

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)


@dataclass(frozen=True)
class PushResult:
    """A commit the Hub confirmed: its branch head is ``commit_oid`` and holds every pushed file."""

    repo_id: str
    revision: str
    commit_oid: str
    commit_url: str
    files: int
    total_bytes: int


def default_revision(stage: str, folder_name: str) -> str:
    """The branch a checkpoint goes to: the stage's name, or ``<stage>-step-N`` for ``checkpoint-N``.

    >>> default_revision("grpo", "grpo")
    'grpo'
    >>> default_revision("grpo", "checkpoint-50")
    'grpo-step-50'
    """
    step = folder_name.removeprefix("checkpoint-")
    return f"{stage}-step-{step}" if folder_name.startswith("checkpoint-") and step.isdigit() else stage


def list_upload_files(folder: Path, include_training_state: bool = False) -> list[UploadFile]:
    """The files of a checkpoint folder that a push uploads, sorted by path.

    Left out: intermediate ``checkpoint-*`` folders (push one with ``--checkpoint``), hidden files,
    a README.md (the card replaces it), the checkpoint's completion marker, the completions GRPO kept
    for the report (training prompts: the report is not the model's to publish) and, unless asked, the
    training state (``push.include_training_state``).
    """
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        name = relative.as_posix()
        if (
            not path.is_file()
            or relative.parts[0].startswith("checkpoint-")
            or name in ("README.md", MARKER, SAMPLES_FILE)
        ):
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        if is_training_state(name) and not include_training_state:
            continue
        files.append(UploadFile(name, path, path.stat().st_size))
    return files


def plan_push(
    recipe: Recipe,
    checkpoint: str | Path | None = None,
    revision: str | None = None,
    stage: str | None = None,
    before_staging=None,
) -> PushPlan:
    """Decide the checkpoint, branch and files of a push and write the model card; no network.

    ``revision`` overrides ``push.revision`` (intermediate checkpoints go to their step branches);
    ``stage`` names the stage an explicit ``checkpoint`` comes from, when its folder does not tell.
    ``before_staging`` is called once the checkpoint is found and checked, before anything is written.
    """
    settings = recipe.push
    if settings is None:
        raise RecipeError("the recipe has no `push:` section; add `push: {repo_id: user/model-name}` or pass --repo-id")
    run = RunFolder(recipe)
    stage, folder = _checkpoint_to_push(recipe, run, checkpoint, stage)
    problems = check_saved_weights(folder, f"the checkpoint '{folder}'")  # never publish a cut-off weights file
    if problems:
        raise RecipeError("; ".join(problems))
    if before_staging is not None:
        before_staging()
    revision = revision or settings.revision or default_revision(stage, folder.name)
    trained = folder
    base = _base_model_of(run, stage, folder)
    lora = is_adapter(folder)
    staging = run.root / "push" / revision
    dtype = push_dtype(recipe, run, stage)
    merged = lora and settings.merge_lora
    if merged:
        folder = merge_adapter(recipe, folder, staging / "merged", dtype)
        lora = False
    elif lora and (is_local_path(base) or not HUB_ID.match(base)):
        log.warning(
            "the LoRA adapter's base model '%s' is not on the Hub: the pushed adapter loads only where that folder "
            "exists; set push.merge_lora: true to push full weights that load anywhere",
            base,
        )
    files = list_upload_files(folder, settings.include_training_state)
    stored = stored_dtypes(folder)
    converted_from = None
    if stored and stored != {dtype}:
        converted = {path.name: path for path in convert_checkpoint(folder, dtype, staging / "weights")}
        files = [
            UploadFile(f.path_in_repo, converted[f.path_in_repo], converted[f.path_in_repo].stat().st_size)
            if f.path_in_repo in converted
            else f
            for f in files
        ]
        converted_from = "/".join(sorted(stored))
    staging.mkdir(parents=True, exist_ok=True)
    plots = {name: f"{PLOTS_DIR}/{path.name}" for name, path in card_plots(run, stage, trained, staging).items()}
    card = render_model_card(
        recipe, stage, base, lora=lora, merged=merged, revision=revision, checkpoint=trained, dtype=dtype, plots=plots
    )
    card_path = staging / "README.md"
    card_path.write_text(card)
    files += [
        UploadFile(relative, staging / relative, (staging / relative).stat().st_size) for relative in plots.values()
    ]
    files.append(UploadFile("README.md", card_path, card_path.stat().st_size))
    return PushPlan(settings.repo_id, revision, stage, folder, lora, files, card_path, dtype, converted_from)


def push_dtype(recipe: Recipe, run: RunFolder, stage: str) -> str:
    """The dtype a push publishes: ``push.dtype``, else the compute dtype (``model.dtype``) the stage trained with.

    The stage's checkpoint holds float32 master weights (``recipe_cli.precision``); ``run.json``
    records the dtype the run computed in, resolved on the machine that trained it.
    """
    if recipe.push.dtype != "auto":
        return recipe.push.dtype
    entry = run.read()["stages"].get(stage) or {}
    recorded = (entry.get("precision") or {}).get("model_dtype")
    if recorded:
        return recorded
    from recipe_cli.precision import Machine, requested_dtype

    return requested_dtype(recipe.model.dtype, Machine.here())


def _checkpoint_to_push(
    recipe: Recipe, run: RunFolder, checkpoint: str | Path | None, stage: str | None = None
) -> tuple[str, Path]:
    """The stage and folder of a push: an explicit checkpoint's stage is the stage folder it lives in."""
    if checkpoint is not None:
        folder = Path(checkpoint)
        if not folder.is_dir():
            raise RecipeError(f"--checkpoint '{checkpoint}' is not a folder; give a checkpoint folder to push")
        resolved = folder.resolve()
        inside = [s for s in recipe.training_stages if run.stage_dir(s).resolve() in (resolved, *resolved.parents)]
        # runs/<name>/grpo/checkpoint-50 is a GRPO checkpoint whatever push.stage says (that picks the
        # finished stage pushed by default), so its card and branch say grpo.
        stage = inside[0] if inside else stage or recipe.push.stage or run.final_stage()
        if stage is None:
            raise RecipeError(f"cannot tell which stage '{checkpoint}' comes from; pass --stage sft or --stage grpo")
        return stage, folder
    stage = recipe.push.stage or run.final_stage()
    entry = run.finished(stage) if stage else None
    if entry is None:
        raise RecipeError(
            f"no finished {stage or 'training'} checkpoint in {run.root}; run the training stages first "
            "(or pass --checkpoint PATH)"
        )
    outdated = stage_outdated(run, stage)
    if outdated is not None:  # its card would describe the new sft run, not the one it was trained from
        raise RecipeError(
            f"{run.stage_dir(stage)}: {outdated}; train {stage} again (`recipe {stage} RECIPE --overwrite`), push "
            f"the new sft model with --stage sft, or this one as it is with --checkpoint {entry['path']}"
        )
    return stage, Path(entry["path"])


def _base_model_of(run: RunFolder, stage: str, folder: Path) -> str:
    """The model a stage started from before any training: recorded in run.json, else the adapter's base."""
    entry = run.read()["stages"].get(stage)
    if entry and entry.get("base_model"):
        return entry["base_model"]
    return adapter_base(folder) if is_adapter(folder) else run.base_model_path()


def merge_adapter(recipe: Recipe, adapter: Path, target: Path, dtype: str | None = None) -> Path:
    """Save the base model with a LoRA adapter merged in (and its tokenizer) to ``target``, in ``dtype``."""
    import shutil

    from recipe_cli.generation import stop_at_end_of_turn
    from recipe_cli.models import load_causal_lm, load_tokenizer

    shutil.rmtree(target, ignore_errors=True)
    model = load_causal_lm(adapter, recipe.model, merge=True, dtype=dtype)
    tokenizer = load_tokenizer(adapter, recipe.model)
    stop_at_end_of_turn("push", model, tokenizer)  # the base's generation config may stop at its eos only
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    log.info("merged the LoRA adapter of %s into its base model: %s", adapter, target)
    return target


def push_checkpoint(
    recipe: Recipe, checkpoint: str | Path | None = None, revision: str | None = None, stage: str | None = None
) -> PushResult:
    """Upload a checkpoint and its model card in one commit on its branch; return the commit the Hub confirmed."""
    # the Hub is checked once the checkpoint is, before the card, plots and any converted weights are staged
    plan = plan_push(recipe, checkpoint, revision, stage, before_staging=require_hub)
    message = f"recipe {recipe.name}: {plan.stage} checkpoint ({len(plan.files)} files)"
    settings = recipe.push
    oid, url = commit_files(
        plan.repo_id, plan.revision, plan.files, message, private=settings.private, overwrite=settings.overwrite
    )
    log.info("pushed %d files to %s@%s: commit %s", len(plan.files), plan.repo_id, plan.revision, oid)
    return PushResult(plan.repo_id, plan.revision, oid, url, len(plan.files), plan.total_bytes)


def checkpoint_pusher(recipe: Recipe):
    """A TrainerCallback that pushes each ``checkpoint-N`` the trainer saves to its ``<stage>-step-N`` branch.

    A failed push is logged and training goes on: hours of training are worth more than one
    intermediate upload, and the checkpoint stays on disk for ``recipe push --checkpoint``.
    """
    from transformers import TrainerCallback

    class PushCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            stage_dir = Path(args.output_dir)
            folder = stage_dir / f"checkpoint-{state.global_step}"
            if not is_complete(folder):  # saved from diverged weights: deleted, not marked (recipe_cli.health)
                return
            try:
                revision = default_revision(stage_dir.name, folder.name)
                pushed = push_checkpoint(recipe, folder, revision=revision, stage=stage_dir.name)
            except RecipeError as error:
                log.warning("%s was not pushed: %s", folder, error)
                return
            log.info("pushed %s to %s@%s", folder.name, pushed.repo_id, pushed.revision)

    return PushCheckpoints()
