"""The ``recipe`` command line: parse, load the recipe, call one library function, print.

torch, transformers and TRL are imported inside the commands that train or generate, so
``recipe --help`` and ``recipe validate`` stay fast.
"""

from __future__ import annotations

import logging
import shlex
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
    for name in ("httpx", "httpx2", "httpcore"):  # one INFO line per HTTP request otherwise (recipe push)
        logging.getLogger(name).setLevel(logging.WARNING)


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
def _nothing_left_on_error(run) -> Iterator[None]:
    """Folders this command created for a run are removed again if it stops on a user mistake before training.

    Once a stage started training (``run.json`` exists) its checkpoints are kept whatever happens next.
    """
    folder, created = run.root, None
    while not folder.exists():  # the outermost folder that does not exist yet, e.g. runs/ on a first run
        created, folder = folder, folder.parent
    try:
        yield
    except RecipeError:
        if created is not None and not run.record_path.exists():
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
    with _resume_hint(_command_line(stages[0], path, overrides)):
        _train(loaded, starts[stages[0]])


def _command_line(command: str, path: Path, overrides: list[str] | None) -> str:
    """The command as a shell would take it again, --set overrides included (they are part of the run).

    >>> _command_line("run", Path("r.yaml"), ["sft.trainer.max_steps=10", "prompt.user=Solve: {question}"])
    "recipe run r.yaml --set sft.trainer.max_steps=10 --set 'prompt.user=Solve: {question}'"
    """
    words = ["recipe", command, shlex.quote(str(path))]
    words += [f"--set {shlex.quote(override)}" for override in overrides or []]
    return " ".join(words)


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
    starts = {}
    for stage in stages:  # sft first: whether it trains again decides whether grpo's start is still current
        starts[stage] = run.plan_start(
            stage, resume=resume, overwrite=overwrite, force=force, sft_start=starts.get("sft")
        )
    return starts


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
        if start.forced:
            console.print(f"[yellow]{stage} already finished[/] with other settings, kept by --force: {output}")
        else:
            console.print(f"[green]{stage} already finished[/] with these settings: checkpoint in {output}")
        return output
    _quiet_libraries()
    if stage == "sft":
        from recipe_cli.sft import run_sft as run_stage
    else:
        from recipe_cli.grpo import run_grpo as run_stage
    callbacks = []
    if recipe.push is not None and recipe.push.push_checkpoints:
        from recipe_cli.hub import checkpoint_pusher, require_token

        require_token()  # before training, not at the first checkpoint
        callbacks.append(checkpoint_pusher(recipe))
    started = time.perf_counter()
    resuming = f" (resuming {start.checkpoint.name})" if start.checkpoint else ""
    console.rule(f"[bold]{stage}[/] {recipe.name}{resuming}")
    with _nothing_left_on_error(run):
        run.save_recipe()
        output = run_stage(recipe, start, callbacks)
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
        for path in models:
            folder = Path(path)
            if not folder.is_dir():
                raise RecipeError(f"--model '{path}' is not a folder; give a saved checkpoint folder")
            if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
                raise RecipeError(
                    f"--model '{path}' has no config.json or adapter_config.json; give a folder a stage saved"
                )
        return list(zip(_labels(models), models, strict=True))
    run = RunFolder(recipe)
    targets = [("base", run.base_model_path())] if recipe.model.path or Path(run.base_model_path()).is_dir() else []
    targets += [(stage, run.finished(stage)["path"]) for stage in ("sft", "grpo") if run.finished(stage)]
    if not targets:
        raise RecipeError(f"nothing to evaluate in {run.root}; train first or pass --model PATH")
    return targets


def _labels(paths: list[str]) -> list[str]:
    """One label per --model folder: its name, with its parent's name too where two names collide.

    >>> _labels(["runs/a/sft", "runs/a/checkpoint-100", "runs/b/checkpoint-100"])
    ['sft', 'a-checkpoint-100', 'b-checkpoint-100']
    """
    names = [Path(p).resolve().name for p in paths]
    labels = [
        f"{Path(p).resolve().parent.name}-{name}" if names.count(name) > 1 else name
        for p, name in zip(paths, names, strict=True)
    ]
    if len(set(labels)) < len(labels):
        raise RecipeError("--model: two checkpoints would share a label; pass each folder once")
    return [label.replace(" ", "_") for label in labels]


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
    sampled = summary["sampled"]
    extra = ""
    if sampled:
        k = max(int(key) for key in sampled["pass@k"])
        extra = f", pass@{k} {sampled['pass@k'][str(k)]:.1%}, maj@{k} {sampled['maj@k'][str(k)]:.1%}"
    console.print(
        f"eval {label}: accuracy {summary['accuracy']:.1%} (greedy, {summary.get('accuracy_mode', 'flexible')})"
        f"{extra} on {summary['n']} problems "
        f"({summary['backend']}, {summary['samples_per_second']} samples/s, {summary['tokens_per_second']} tokens/s)"
    )
    return summary


def print_eval_table(summaries: list[dict]) -> None:
    """One table across the evaluated models: greedy accuracy, then pass@k and maj@k where sampled."""
    ks = sorted({int(k) for s in summaries if s.get("sampled") for k in s["sampled"]["pass@k"]})
    table = Table(title="Evaluation")
    table.add_column("model", no_wrap=True, min_width=max(len(s["label"]) for s in summaries))
    # the accuracy mode the headline is not: flexible next to a strict headline, else strict
    mode = next((s["accuracy_mode"] for s in summaries if "accuracy_mode" in s), "flexible")
    other = "flexible" if mode == "strict" else "strict"
    numeric = ["n", "accuracy", other, *[f"pass@{k}" for k in ks], *[f"maj@{k}" for k in ks if k > 1]]
    numeric += ["format", "trunc", "tokens", "samp/s"]
    for column in numeric:
        table.add_column(column, justify="right", no_wrap=True, min_width=max(len(column), 4))
    for s in summaries:
        sampled = s.get("sampled") or {}
        passes = [_percent(sampled.get("pass@k", {}).get(str(k))) for k in ks]
        majorities = [_percent(sampled.get("maj@k", {}).get(str(k))) for k in ks if k > 1]
        table.add_row(
            s["label"],
            str(s["n"]),
            f"{s['accuracy']:.1%}",
            _percent(s.get(f"accuracy_{other}")),
            *passes,
            *majorities,
            f"{s['format_rate']:.1%}",
            f"{s['truncation_rate']:.1%}",
            f"{s['mean_completion_tokens']:.1f}",
            str(s["samples_per_second"]),
        )
    console.print(table)
    legend = (
        f"accuracy ({mode}), {other}, format, trunc (hit max_new_tokens), tokens (mean completion length): greedy; "
        "strict: the answer in <answer>, \\boxed{} or ####, not cut off; flexible: read anywhere, last number too"
    )
    if ks:
        legend += "; pass@k: unbiased estimate from the samples; maj@k: majority vote of the first k samples"
    console.print(legend)
    for s in summaries:
        console.print(f"  {s['label']}: {s['model']} ({s['backend']})")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command()
def rewards(
    recipe: Annotated[
        Path, typer.Argument(help="A recipe with a `grpo:` section; without one, list the rewards.", show_default=False)
    ] = None,
    golds: Annotated[int, typer.Option(help="Gold answers checked as perfect completions.", min=1)] = 200,
    groups: Annotated[int, typer.Option(help="Prompts whose completion groups every reward scores.", min=1)] = 8,
    samples: Annotated[int, typer.Option(help="Completions sampled from the starting model per prompt.", min=0)] = 2,
    no_model: Annotated[bool, typer.Option("--no-model", help="Do not load the starting model to sample.")] = False,
    overrides: SetOption = None,
):
    """Preflight the recipe's rewards on gold, malformed and sampled completions (exit 1 on a fatal finding)."""

    def body():
        if recipe is None:
            print_reward_catalogue()
            return
        loaded = _load(recipe, overrides)
        _quiet_libraries()
        from recipe_cli.preflight import run_preflight

        report = run_preflight(loaded, golds=golds, groups=groups, samples=samples, use_model=not no_model)
        print_preflight(report)
        if report.fatal:
            raise typer.Exit(1)

    _guard(body)


def print_reward_catalogue() -> None:
    """The registered rewards with their parameters, from the registry itself."""
    from recipe_cli.rewards import available, describe

    console.print("Rewards (in a recipe: grpo.rewards: [{name, weight, params: {...}}]):")
    for name in available():
        params, summary = describe(name)
        console.print(f"  [bold]{name}[/]" + (f"  ({params})" if params else ""), markup=True)
        console.print(f"      {summary}", markup=False)


def _score_cell(value: float | None) -> str:
    return "None" if value is None else f"{value:.2f}"


def print_preflight(report) -> None:
    """The preflight's tables and findings."""
    console.print(
        f"gold answers: {report.golds_checked} checked, {len(report.golds_unreadable)} unreadable, "
        f"{len(report.perfect_wrong)} perfect completions scored wrong"
    )
    console.print(f"perfect completion, as written for the first problem:\n[dim]{report.example}[/]", markup=True)
    model = f"; model samples from {report.model_source}" if report.model_source else "; no model samples"
    table = Table(title=f"Mean reward per kind of completion ({report.groups} prompts{model})")
    table.add_column("completion")
    for row in report.rows:
        table.add_column(row.label, justify="right")
    for kind in report.kinds:
        cells = ["-" if row.skipped else _score_cell(row.means.get(kind)) for row in report.rows]
        table.add_row(kind, *cells)
    table.add_section()
    table.add_row("groups with signal", *["skipped" if row.skipped else f"{row.signal:.0%}" for row in report.rows])
    console.print(table)
    for finding in report.findings:
        label = "[bold red]fatal[/]" if finding.fatal else "[yellow]warning[/]"
        console.print(f"{label}: {finding.message}", markup=True)
    if not report.fatal:
        console.print("[green]ok[/]: no fatal problem found", markup=True)


@app.command()
def push(
    recipe: RecipeArg,
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="Hub repo user-or-org/name (default: push.repo_id).")
    ] = None,
    stage: Annotated[
        str, typer.Option(help="Push the sft or grpo checkpoint (default: the last that finished).")
    ] = None,
    checkpoint: Annotated[
        Path, typer.Option(help="Push this checkpoint folder instead, e.g. runs/demo/grpo/checkpoint-50.")
    ] = None,
    revision: Annotated[
        str, typer.Option(help="Branch to push to (default: the stage's name, or grpo-step-N).")
    ] = None,
    private: Annotated[
        bool, typer.Option("--private/--public", help="Visibility of a repo this push creates.", show_default=False)
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a branch that already holds files.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be uploaded and write the card; no network.")
    ] = False,
    overrides: SetOption = None,
):
    """Upload a checkpoint and a model card from the run to the Hugging Face Hub, in one commit."""

    def body():
        options = {"repo_id": repo_id, "stage": stage, "revision": revision, "private": private}
        options = {key: value for key, value in options.items() if value is not None}
        if overwrite:
            options["overwrite"] = True
        loaded = load_recipe(recipe, overrides or [], {"push": options})
        if loaded.push is None:
            raise RecipeError("the recipe has no `push:` section; add `push: {repo_id: user/model-name}` or --repo-id")
        if dry_run:
            from recipe_cli.hub import plan_push

            print_push_plan(plan_push(loaded, checkpoint))
            return
        from recipe_cli.hub import push_checkpoint

        print_pushed(push_checkpoint(loaded, checkpoint))

    _guard(body)


def print_push_plan(plan) -> None:
    """What a push would upload: each file and its size, the target, where the card was written."""
    kind = "LoRA adapter" if plan.lora else "full weights"
    table = Table(title=f"dry run: {plan.repo_id} @ {plan.revision} ({plan.stage} checkpoint, {kind})")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for file in plan.files:
        table.add_row(file.path_in_repo, f"{file.size:,}")
    table.add_row(f"[bold]{len(plan.files)} files[/]", f"[bold]{plan.total_bytes:,}[/]")
    console.print(table)
    console.print(f"from {plan.checkpoint}; the branch is created from main if missing")
    console.print(f"model card written to {plan.card_path}")
    console.print("nothing was uploaded (dry run)")


def print_pushed(result) -> None:
    console.print(
        f"[green]pushed[/] {result.files} files ({result.total_bytes / 1e6:.1f} MB) to "
        f"{result.repo_id} @ {result.revision}: {result.commit_url}"
    )


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

        run_folder = RunFolder(loaded)
        with _nothing_left_on_error(run_folder):
            _run_stages(loaded, starts, _command_line("run", recipe, overrides))

    _guard(body)


def _run_stages(recipe: Recipe, starts: dict, command: str) -> None:
    """The body of ``recipe run``: every stage's data checked first, then eval base, train, eval, push."""
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import check_training_data, prepare_base_model

    started = time.perf_counter()
    base = prepare_base_model(recipe, RunFolder(recipe))
    check_training_data(recipe, base)  # a data mistake in a later stage stops the run before the base eval
    summaries = []
    if recipe.eval is not None:
        summaries.append(_evaluate(recipe, base, "base", None))
    for stage in recipe.training_stages:
        with _resume_hint(command):
            output = _train(recipe, starts[stage])
        if recipe.eval is not None:
            summaries.append(_evaluate(recipe, str(output), stage, None))
    if summaries:
        print_eval_table(summaries)
    if recipe.push is not None:
        from recipe_cli.hub import push_checkpoint

        print_pushed(push_checkpoint(recipe))
    console.print(f"[bold green]run {recipe.name} finished[/] in {time.perf_counter() - started:.0f} s")
