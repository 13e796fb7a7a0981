"""Stage 4: publish the final checkpoint to the Hugging Face Hub with a model card from the run."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from recipe_cli.config import Recipe
from recipe_cli.errors import RecipeError
from recipe_cli.evaluate import read_summaries
from recipe_cli.runs import RunFolder

log = logging.getLogger(__name__)

# Trainer state that belongs to resuming a run, not to a published model.
IGNORED_FILES = [
    "checkpoint-*",
    "checkpoint-*/**",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    "training_args.bin",
]


def render_model_card(recipe: Recipe, stage: str, base_model: str) -> str:
    """The README.md of the pushed repo: what was trained, from what, the eval table and the recipe."""
    summaries = read_summaries(recipe)
    front = {"library_name": "transformers", "tags": ["recipe", "reasoning", stage]}
    if recipe.model.path:
        front["base_model"] = recipe.model.path
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {recipe.name}", ""]
    lines.append(f"Trained with `recipe` from **{base_model}**: " + " -> ".join(recipe.training_stages) + ".")
    if recipe.model.lora:
        lines.append("This repository holds a LoRA adapter; load it with peft on the base model.")
    lines += ["", "## Evaluation", ""]
    if summaries:
        lines += ["| model | dataset | split | n | accuracy | format |", "|---|---|---|---|---|---|"]
        for label, s in summaries.items():
            lines.append(
                f"| {label} | {s['dataset']} | {s['split']} | {s['n']} | {s['accuracy']:.3f} | {s['format_rate']:.3f} |"
            )
    else:
        lines.append("No evaluation was run.")
    recipe_yaml = yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=True), sort_keys=False)
    lines += ["", "## Recipe", "", "```yaml", recipe_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


def require_token() -> None:
    """Fail now, not after training, when there is no Hub token to push with."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise RecipeError("not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN, then push again")


def push_checkpoint(recipe: Recipe) -> str:
    """Upload the final stage's checkpoint and its model card in one commit; return the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HTTPError

    settings = recipe.push
    run = RunFolder(recipe)
    stage = settings.stage or run.final_stage()
    entry = run.finished(stage) if stage else None
    if entry is None:
        raise RecipeError(f"no finished {stage or 'training'} checkpoint in {run.root}; run the training stages first")
    folder = Path(entry["path"])
    require_token()
    (folder / "README.md").write_text(render_model_card(recipe, stage, entry["base_model"]))
    api = HfApi()
    try:
        api.create_repo(settings.repo_id, private=settings.private, exist_ok=True)
        if settings.revision:
            api.create_branch(settings.repo_id, branch=settings.revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=settings.repo_id,
            folder_path=str(folder),
            revision=settings.revision,
            commit_message=f"recipe {recipe.name}: {stage} checkpoint",
            ignore_patterns=IGNORED_FILES,
        )
    except HfHubHTTPError as error:
        raise RecipeError(f"push to {settings.repo_id} failed: {str(error).splitlines()[0]}") from error
    except (HTTPError, OSError) as error:  # connection refused, DNS, timeouts (httpx errors)
        raise RecipeError(f"cannot reach the Hub to push {settings.repo_id}: {error}; check your network") from error
    return commit.commit_url
