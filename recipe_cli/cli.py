"""The ``recipe`` command line: parse, load the recipe, call one library function, print.

torch, transformers and TRL are imported inside the commands that train or generate, so
``recipe --help`` and ``recipe validate`` stay fast.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from recipe_cli.config import Recipe, load_recipe
from recipe_cli.errors import RecipeError, TrainingStopped

app = typer.Typer(
    help="Run the DeepSeek-R1 recipe (cold-start SFT -> GRPO -> eval -> push) from one YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
state = {"debug": False}

RecipeArg = Annotated[Path, typer.Argument(help="The recipe YAML file, e.g. recipes/demo.yaml.", show_default=False)]
SetOption = Annotated[
    list[str],
    typer.Option("--set", "-s", help="Override a recipe value: --set grpo.trainer.max_steps=10 (repeatable)."),
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue from the last complete checkpoint (a finished stage is skipped) if settings match."
    ),
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Delete an earlier run of a stage and start again.")]
ForceOption = Annotated[bool, typer.Option("--force", help="With --resume: resume even though the settings changed.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Train nothing; print the plan: data, batches, steps, memory, misfits.")
]


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors too.")] = False):
    """Run the DeepSeek-R1 recipe (cold-start SFT -> GRPO -> eval -> push) from one YAML file."""
    state["debug"] = debug
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
    )


def _guard(action: Callable[[], Any]) -> Any:
    """Run a command body; a user mistake becomes one message on stderr and exit code 2."""
    try:
        return action()
    except RecipeError as error:
        if state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {error}", markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except TrainingStopped as stopped:
        err_console.print(f"[bold yellow]stopped:[/] {stopped}", markup=True, soft_wrap=True)
        raise typer.Exit(stopped.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


@contextmanager
def _nothing_left_on_error(folder: Path) -> Iterator[None]:
    """Folders this command created for a run are removed again if the command stops on a user mistake."""
    created = None
    while not folder.exists():  # the outermost folder that does not exist yet, e.g. runs/ on a first run
        created, folder = folder, folder.parent
    try:
        yield
    except RecipeError:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _load(path: Path, overrides: list[str] | None) -> Recipe:
    return load_recipe(path, overrides or [])


def _quiet_libraries() -> None:
    """Keep the console for what matters: no per-file loading bars or library chatter below warnings."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@app.command()
def validate(recipe: RecipeArg, overrides: SetOption = None):
    """Check the recipe (loads no weights, needs no network) and print the plan."""

    def body():
        from recipe_cli.plan import describe_plan

        loaded = _load(recipe, overrides)
        describe_plan(loaded, console)
        console.print(f"[green]ok[/]: {recipe} is valid")

    _guard(body)


@app.command()
def sft(
    recipe: RecipeArg,
    overrides: SetOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
):
    """Cold-start supervised fine-tuning on worked solutions."""
    _guard(lambda: _train_command(recipe, overrides, ["sft"], resume, overwrite, force, dry_run))


@app.command()
def grpo(
    recipe: RecipeArg,
    overrides: SetOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
):
    """GRPO with verifiable rewards, from the SFT checkpoint when the recipe has SFT."""
    _guard(lambda: _train_command(recipe, overrides, ["grpo"], resume, overwrite, force, dry_run))


def _train_command(
    path: Path, overrides, stages: list[str], resume: bool, overwrite: bool, force: bool, dry_run: bool
) -> None:
    loaded = _load(path, overrides)
    for stage in stages:
        if getattr(loaded, stage) is None:
            raise RecipeError(f"the recipe has no `{stage}:` section; add one to run this stage")
    if dry_run:
        _dry_run(loaded, stages)
        return
    starts = _plan_starts(loaded, stages, resume, overwrite, force)
    with _resume_hint(f"recipe {stages[0]} {path}"):
        _train(loaded, starts[stages[0]])


@contextmanager
def _resume_hint(command: str) -> Iterator[None]:
    """A run stopped by a signal says which command continues it."""
    try:
        yield
    except TrainingStopped as stopped:
        if not stopped.resumable:
            raise
        raise TrainingStopped(f"{stopped}; continue with `{command} --resume`", stopped.exit_code) from None


def _plan_starts(recipe: Recipe, stages: list[str], resume: bool, overwrite: bool, force: bool) -> dict:
    """How each stage starts, decided for all of them before anything is written or trained."""
    from recipe_cli.runs import RunFolder

    run = RunFolder(recipe)
    return {stage: run.plan_start(stage, resume=resume, overwrite=overwrite, force=force) for stage in stages}


def _dry_run(recipe: Recipe, stages: list[str]) -> None:
    _quiet_libraries()
    from recipe_cli.plan import describe_training_plan

    describe_training_plan(recipe, stages, console)
    console.print("[green]dry run[/]: nothing was trained or written")


def _train(recipe: Recipe, start) -> Path:
    from recipe_cli.runs import RunFolder

    stage = start.stage
    run = RunFolder(recipe)
    if start.skip:
        output = Path(run.finished(stage)["path"])
        console.print(f"[green]{stage} already finished[/] with these settings: checkpoint in {output}")
        return output
    _quiet_libraries()
    if stage == "sft":
        from recipe_cli.sft import run_sft as run_stage
    else:
        from recipe_cli.grpo import run_grpo as run_stage
    started = time.perf_counter()
    resuming = f" (resuming {start.checkpoint.name})" if start.checkpoint else ""
    console.rule(f"[bold]{stage}[/] {recipe.name}{resuming}")
    with _nothing_left_on_error(run.root):
        run.save_recipe()
        output = run_stage(recipe, start)
    console.print(f"[green]{stage} done[/] in {time.perf_counter() - started:.0f} s: checkpoint in {output}")
    return output


@app.command(name="eval")
def eval_command(
    recipe: RecipeArg,
    models: Annotated[
        list[str],
        typer.Option("--model", "-m", help="Evaluate this checkpoint instead of the run's stages (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Evaluate only the first N problems, for a quick look.", min=1)] = None,
    overrides: SetOption = None,
):
    """Evaluate the run's checkpoints (base, sft, grpo) or --model PATH on the eval split."""

    def body():
        loaded = _load(recipe, overrides)
        if loaded.eval is None:
            raise RecipeError("the recipe has no `eval:` section; add one with the dataset to evaluate on")
        targets = _eval_targets(loaded, models)
        _quiet_libraries()
        summaries = [_evaluate(loaded, path, label, limit) for label, path in targets]
        print_eval_table(summaries)

    _guard(body)


def _eval_targets(recipe: Recipe, models: list[str] | None) -> list[tuple[str, str]]:
    from recipe_cli.runs import RunFolder

    if models:
        targets = []
        for path in models:
            if not Path(path).is_dir():
                raise RecipeError(f"--model '{path}' is not a folder; give a saved checkpoint folder")
            targets.append((Path(path).name.replace(" ", "_"), path))
        return targets
    run = RunFolder(recipe)
    targets = [("base", run.base_model_path())] if recipe.model.path or Path(run.base_model_path()).is_dir() else []
    targets += [(stage, run.finished(stage)["path"]) for stage in ("sft", "grpo") if run.finished(stage)]
    if not targets:
        raise RecipeError(f"nothing to evaluate in {run.root}; train first or pass --model PATH")
    return targets


def _evaluate(recipe: Recipe, path: str, label: str, limit: int | None) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from recipe_cli.evaluate import evaluate_model

    class _Bar:
        def __init__(self, progress: Progress):
            self.progress, self.task, self.started = progress, None, 0.0

        def start(self, name: str, total: int):
            self.started = time.perf_counter()
            self.task = self.progress.add_task(f"eval {name}", total=total, rate="")

        def advance(self, n: int):
            self.progress.advance(self.task, n)
            done = self.progress.tasks[self.task].completed
            rate = done / max(time.perf_counter() - self.started, 1e-9)
            self.progress.update(self.task, rate=f"{rate:.1f} samples/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}")]
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as progress:
        summary = evaluate_model(recipe, path, label, limit=limit, progress=_Bar(progress))
    console.print(
        f"eval {label}: accuracy {summary['accuracy']:.1%} on {summary['n']} problems "
        f"({summary['samples_per_second']} samples/s)"
    )
    return summary


def print_eval_table(summaries: list[dict]) -> None:
    """One table across the evaluated models."""
    table = Table(title="Evaluation")
    for column in ("model", "n", "accuracy", "format", "truncated", "checkpoint"):
        table.add_column(column, justify="right" if column in ("n", "accuracy", "format", "truncated") else "left")
    for s in summaries:
        table.add_row(
            s["label"],
            str(s["n"]),
            f"{s['accuracy']:.1%}",
            f"{s['format_rate']:.1%}",
            f"{s['truncation_rate']:.1%}",
            s["model"],
        )
    console.print(table)


@app.command()
def push(recipe: RecipeArg, overrides: SetOption = None):
    """Upload the final checkpoint and a model card to the Hugging Face Hub."""

    def body():
        loaded = _load(recipe, overrides)
        if loaded.push is None:
            raise RecipeError("the recipe has no `push:` section; add `push: {repo_id: user/model-name}`")
        from recipe_cli.hub import push_checkpoint

        url = push_checkpoint(loaded)
        console.print(f"[green]pushed[/]: {url}")

    _guard(body)


@app.command()
def run(
    recipe: RecipeArg,
    overrides: SetOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
):
    """Every configured stage in order: eval base, sft, eval, grpo, eval, push."""

    def body():
        loaded = _load(recipe, overrides)
        if dry_run:
            _dry_run(loaded, loaded.training_stages)
            return
        starts = _plan_starts(loaded, loaded.training_stages, resume, overwrite, force)
        if loaded.push is not None:
            from recipe_cli.hub import require_token

            require_token()  # before hours of training, not after
        _quiet_libraries()
        from recipe_cli.runs import RunFolder
        from recipe_cli.training import prepare_base_model

        run_folder = RunFolder(loaded)
        started = time.perf_counter()
        summaries = []
        if loaded.eval is not None:
            with _nothing_left_on_error(run_folder.root):
                base = prepare_base_model(loaded, run_folder)
            summaries.append(_evaluate(loaded, base, "base", None))
        for stage in loaded.training_stages:
            with _resume_hint(f"recipe run {recipe}"):
                output = _train(loaded, starts[stage])
            if loaded.eval is not None:
                summaries.append(_evaluate(loaded, str(output), stage, None))
        if summaries:
            print_eval_table(summaries)
        if loaded.push is not None:
            from recipe_cli.hub import push_checkpoint

            console.print(f"[green]pushed[/]: {push_checkpoint(loaded)}")
        console.print(f"[bold green]run {loaded.name} finished[/] in {time.perf_counter() - started:.0f} s")

    _guard(body)
