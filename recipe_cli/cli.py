"""The ``recipe`` command line: parse, load the recipe, call one library function, print.

torch, transformers and TRL are imported inside the commands that train or generate, so
``recipe --help`` and ``recipe validate`` stay fast. The order of a run lives in
``recipe_cli.pipeline``, the rendering in ``recipe_cli.console``, launching several processes in
``recipe_cli.launch``.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from typer.core import TyperGroup

from recipe_cli.config import Recipe, load_recipe
from recipe_cli.console import (
    ConsoleReporter,
    console,
    err_console,
    print_recipe_plan,
    print_training_plan,
    quiet_dataset_progress,
    quiet_libraries,
    silence_library_warnings,
)
from recipe_cli.errors import NON_FINITE_EXIT_CODE, RecipeError, TrainingStopped
from recipe_cli.trainer_settings import TRAINING_STAGES

# click's UsageError as typer raises it: click's own, or the copy typer vendors since 0.2x (typer._click)
UsageError = typer.BadParameter.__base__


class OneLineUsageError(UsageError):
    """click's mistake in the command line (an unknown option, a value out of range, a missing argument), shown
    as one line like every other user mistake instead of click's usage, hint and error lines."""

    def __init__(self, error: UsageError, command: str = "recipe"):
        super().__init__(error.format_message(), error.ctx)
        self.command = error.ctx.command_path if error.ctx is not None else command  # for its --help

    def show(self, file=None) -> None:
        from recipe_cli.console import error as print_error

        message = " ".join(self.format_message().split()).rstrip(".")
        print_error(f"{message[:1].lower()}{message[1:]}; see `{self.command} --help`")


class OneLineUsageGroup(TyperGroup):
    """The ``recipe`` command group: its own and its commands' command-line mistakes as ``OneLineUsageError``."""

    def make_context(self, *args, **kwargs) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # `recipe` alone: the help, as click shows it
                raise
            raise OneLineUsageError(error) from None

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:  # a command's arguments are parsed here
            command = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
            raise OneLineUsageError(error, command) from None


app = typer.Typer(
    cls=OneLineUsageGroup,
    help="Run the DeepSeek-R1 recipe (cold-start SFT -> GRPO -> eval -> push) from one YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no '<bool>' after flags, no boxes cut at 80 columns
    context_settings={"help_option_names": ["-h", "--help"]},
)
state = {"debug": False}

RecipeArg = Annotated[
    Path,
    typer.Argument(help="The recipe YAML file, e.g. recipes/demo.yaml.", show_default=False, metavar="RECIPE"),
]
SetOption = Annotated[
    list[str],
    typer.Option(
        "--set",
        "-s",
        help="Override a recipe value: --set grpo.trainer.max_steps=10 (repeatable).",
        metavar="KEY=VALUE",
    ),
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
ProcessesOption = Annotated[
    int,
    typer.Option(
        "--num-processes",
        help="Train on N processes under accelerate launch (launch.num_processes).",
        min=1,
        metavar="N",
    ),
]
AccelerateConfigOption = Annotated[
    str,
    typer.Option(
        "--accelerate-config",
        help="multi_gpu, zero1, zero2, zero3, fsdp1, fsdp2 (TRL's configs) or a path (launch.accelerate_config).",
        metavar="CONFIG",
    ),
]
OldDefaultsOption = Annotated[
    bool,
    typer.Option(
        "--old-defaults",
        help="An open-r1 or TRL file: keep the defaults of the release it was written for (TRL 0.18, transformers "
        "4.52), e.g. beta 0.04, loss_type bnpo.",
    ),
]
MachinesOption = Annotated[int, typer.Option("--num-machines", help="Machines in the launch.", min=1, metavar="N")]
MachineRankOption = Annotated[
    int, typer.Option("--machine-rank", help="This machine's rank, 0 to N-1.", min=0, metavar="RANK")
]
MainIpOption = Annotated[
    str, typer.Option("--main-process-ip", help="Address of machine 0, for the others.", metavar="ADDRESS")
]
MainPortOption = Annotated[
    int, typer.Option("--main-process-port", help="Rendezvous port on machine 0.", metavar="PORT")
]
LAUNCH_FLAGS = {
    "num_processes": "--num-processes",
    "accelerate_config": "--accelerate-config",
    "num_machines": "--num-machines",
    "machine_rank": "--machine-rank",
    "main_process_ip": "--main-process-ip",
    "main_process_port": "--main-process-port",
}


def _print_version(value: bool) -> None:
    if value:
        from recipe_cli import __version__

        print(f"recipe {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors too.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
):
    """Run the DeepSeek-R1 recipe (cold-start SFT -> GRPO -> eval -> push) from one YAML file."""
    from recipe_cli.ranks import is_main

    state["debug"] = debug
    silence_library_warnings()
    logging.basicConfig(
        level=logging.INFO if is_main() else logging.ERROR,  # other ranks would repeat every line
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
    )
    # one INFO line per HTTP request otherwise (recipe push); accelerate's notes on its own data loading (a resumed
    # stage: "The used dataset had no length...") are nothing the user can act on
    for name in ("httpx", "httpx2", "httpcore", "accelerate"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not is_main():
        from recipe_cli.console import quiet

        quiet()


def _guard(action: Callable[[], Any]) -> Any:
    """Run a command body; a user mistake becomes one message on stderr and exit code 2.

    On several ranks the main process prints, and the first rank of each machine reports the exit
    code to the ``recipe`` process that launched that machine's ranks; an outcome every rank shares
    ends each rank quietly with 0 (the launcher would otherwise report every rank as failed),
    anything else keeps its code so that the launcher stops the other ranks.
    """
    from recipe_cli.launch import report_status, under_recipe_launch
    from recipe_cli.ranks import OtherRankStopped, is_local_main, is_main, is_shared, rank

    code = 0
    try:
        _stop_on_full_disk(action)
    except RecipeError as error:
        if state["debug"]:
            raise
        code = 2
        if is_main():
            from recipe_cli.console import error as print_error

            print_error(str(error))
        elif not is_shared(error):  # this rank's own: its console is quiet, the main process cannot say it
            sys.stderr.write(f"error: rank {rank()}: {error}\n")
        outcome = error
    except TrainingStopped as stopped:
        code = stopped.exit_code
        from recipe_cli.console import stopped as print_stopped

        print_stopped(str(stopped))
        outcome = stopped
    except OtherRankStopped as other:
        code, outcome = other.exit_code, other
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None
    else:
        outcome = None
    if is_local_main():  # each machine's `recipe` process waits for its own ranks' outcome
        report_status(code)
    if under_recipe_launch() and outcome is not None and is_shared(outcome):
        code = 0
    if code:
        raise typer.Exit(code)


def _stop_on_full_disk(action: Callable[[], Any]) -> Any:
    """Run ``action``; a write that found the disk full is the user's to fix, as a ``RecipeError`` (after the run
    lock let go of the folder as it is: a checkpoint cut off by it is never resumed from)."""
    from recipe_cli.errors import full_disk

    try:
        return action()
    except Exception as error:
        path = full_disk(error)
        if path is None:
            raise
        where = f" writing {path}" if path else ""
        raise RecipeError(
            f"no space left on the disk{where}; free space on it or set runs_dir to a folder on a larger disk, then "
            "run the command again (with --resume, training goes on from its last complete checkpoint)"
        ) from error


@contextmanager
def _run_lock(recipe: Recipe, command_line: str, launches: bool = False) -> Iterator:
    """The run folder's lock (``recipe_cli.lock``) for a command that writes it, held by one process.

    Under ``recipe``'s own launch the ``recipe`` process holds it for its ranks; under another
    launcher the main rank does. A command that launches ranks over several machines (``launches``)
    takes it on machine 0 only: every machine runs the same command on the same shared run folder,
    and the main rank, the one writer, runs on machine 0. A command that launches nothing (``eval``,
    ``data``, ``push``) writes from this machine, whatever ``launch.machine_rank`` says.
    """
    from recipe_cli.launch import on_main_machine, under_recipe_launch
    from recipe_cli.lock import RunLock
    from recipe_cli.ranks import is_main

    if not is_main() or under_recipe_launch() or (launches and not on_main_machine(recipe)):
        yield RunLock(recipe.run_dir, command_line)  # not entered: a parent, or machine 0, holds the lock
        return
    with RunLock(recipe.run_dir, command_line) as lock:
        yield lock


def _load_for_run(
    path: Path,
    overrides: list[str] | None,
    options: dict | None = None,
    foreign=None,
    *,
    trains: tuple[str, ...] = (),
    overwrite: bool = False,
    force: bool = False,
) -> Recipe:
    """The recipe for a command on a run: its recorded settings where it already trained, this command's others.

    ``trains``: the stages the command trains (their sections come from the command line);
    ``overwrite``: it starts them again; ``force``: it resumes them although their settings changed
    (``recipe_cli.pipeline.recipe_for_run`` says what each changes).
    """
    from recipe_cli.config import recipe_data
    from recipe_cli.launch import under_recipe_launch
    from recipe_cli.pipeline import recipe_for_run

    _show_translation(path, foreign)
    data = recipe_data(path, overrides or [], options, foreign)
    found = recipe_for_run(data, str(path), trains, overwrite, force)
    if found.record is None or under_recipe_launch():  # the recipe process that started these ranks said it
        return found.recipe
    console.print(
        f"[dim]using the run's recorded recipe {found.record} (its overrides included) for "
        f"{', '.join(found.sections)}[/]"
    )
    for difference in found.differences:
        console.print(
            f"[yellow]note:[/] the command line differs from the run in {difference}; the run's value is used "
            "(to train with the command line's, start the run again with `recipe run --overwrite` or use another "
            "run name)"
        )
    return found.recipe


def _load(path: Path, overrides: list[str] | None, launch: dict | None = None, foreign=None) -> Recipe:
    _show_translation(path, foreign)
    return load_recipe(path, overrides or [], {"launch": launch or {}}, foreign)


def _show_translation(path: Path, foreign=None) -> None:
    """An open-r1 or TRL file: print how it reads as a recipe (``recipe_cli.foreign``), once per command."""
    from recipe_cli.foreign import read_translation
    from recipe_cli.launch import under_recipe_launch

    if under_recipe_launch():  # the recipe process that started these ranks printed it
        return
    translation = read_translation(path, foreign)
    if translation is not None:
        from recipe_cli.console import print_translation

        print_translation(translation, path)


def _launch_options(**values) -> dict:
    """The launch options given on the command line, as ``launch:`` values."""
    return {key: value for key, value in values.items() if value is not None}


@app.command()
def validate(
    recipe: RecipeArg,
    overrides: SetOption = None,
    num_processes: ProcessesOption = None,
    accelerate_config: AccelerateConfigOption = None,
    old_defaults: OldDefaultsOption = False,
):
    """Check the recipe (loads no weights, needs no network) and print the plan; open-r1 and TRL files too."""

    def body():
        from recipe_cli.foreign import ForeignOptions
        from recipe_cli.plan import recipe_plan

        quiet_dataset_progress()  # what validate prints is the plan and its verdict, not a library's loading bars
        launch = _launch_options(num_processes=num_processes, accelerate_config=accelerate_config)
        loaded = _load(recipe, overrides, launch, ForeignOptions(old_defaults=old_defaults))
        print_recipe_plan(recipe_plan(loaded))
        console.print(f"[green]ok[/]: {recipe} is valid")

    _guard(body)


def _command_line(
    command: str, path: Path, overrides: list[str] | None, launch: dict | None = None, flags: tuple[str, ...] = ()
) -> str:
    """The command as a shell would take it again, --set overrides and launch options included.

    >>> _command_line("run", Path("r.yaml"), ["sft.trainer.max_steps=10", "prompt.user=Solve: {question}"])
    "recipe run r.yaml --set sft.trainer.max_steps=10 --set 'prompt.user=Solve: {question}'"
    >>> _command_line("sft", Path("r.yaml"), [], {"num_processes": 2})
    'recipe sft r.yaml --num-processes 2'
    """
    return " ".join(["recipe", *map(shlex.quote, _argv(command, path, overrides, launch, *flags))])


def _argv(command: str, path: Path, overrides: list[str] | None, launch: dict | None, *flags: str) -> list[str]:
    """The arguments of a command, for running it again (in ranks, or to resume it)."""
    words = [command, str(path)]
    for override in overrides or []:
        words += ["--set", override]
    for key, value in (launch or {}).items():
        words += [LAUNCH_FLAGS[key], str(value)]
    return words + list(flags)


def _training_command(
    command: str,
    path: Path,
    overrides: list[str] | None,
    launch: dict,
    *,
    resume: bool,
    overwrite: bool,
    force: bool,
    dry_run: bool,
    old_defaults: bool = False,
) -> None:
    """The body of ``recipe sft``, ``grpo`` and ``run``: validate, then dry-run, launch ranks, or train here."""
    from recipe_cli import pipeline
    from recipe_cli.foreign import ForeignOptions
    from recipe_cli.resume import check_start_flags

    check_start_flags(resume=resume, overwrite=overwrite, force=force)  # a dry run too
    foreign = ForeignOptions(stage=command if command in TRAINING_STAGES else None, old_defaults=old_defaults)
    reading = ("--old-defaults",) if old_defaults else ()  # the ranks and a resume read the file the same way
    trains = TRAINING_STAGES if command == "run" else (command,)
    loaded = _load_for_run(
        path, overrides, {"launch": launch}, foreign, trains=trains, overwrite=overwrite, force=force
    )
    stages = loaded.training_stages if command == "run" else [command]
    for stage in stages:
        if getattr(loaded, stage) is None:
            raise RecipeError(f"the recipe has no `{stage}:` section; add one to run this stage")
    if dry_run:
        quiet_libraries()
        from recipe_cli.plan import training_plan

        print_training_plan(training_plan(loaded, stages, evaluates=command == "run"))
        console.print("[green]dry run[/]: nothing was trained or written")
        return
    from recipe_cli.launch import check_machine, needs_launch, on_main_machine, relaunch
    from recipe_cli.ranks import on_main

    command_line = _command_line(command, path, overrides, launch, reading)
    launches = needs_launch(loaded)
    with _run_lock(loaded, command_line, launches) as lock:
        evaluates = command == "run" and (not launches or on_main_machine(loaded))  # machine 0's main rank does
        on_main(lambda: check_machine(loaded, stages, evaluates=evaluates))
        if launches:
            with _silent("recipe_cli.resume", "recipe_cli.checkpoints"):  # refuse now; the main rank warns, once
                pipeline.plan_starts(loaded, stages, resume=resume, overwrite=overwrite, force=force)
            if command == "run" and loaded.push is not None and on_main_machine(loaded):  # machine 0 pushes
                from recipe_cli.hub import require_hub

                require_hub()
            flags = [flag for flag, on in (("--resume", resume), ("--overwrite", overwrite), ("--force", force)) if on]
            flags += reading
            argv = (["--debug"] if state["debug"] else []) + _argv(command, path, overrides, launch, *flags)
            code = relaunch(loaded, argv, lock)
            if code:
                lock.failed = code == 2  # a user mistake the ranks reported: nothing of this command is kept
                # a mistake, a stop on non-finite values or a signal has said its own line (and its own fix)
                if code not in (2, NON_FINITE_EXIT_CODE) and code < 128:
                    from recipe_cli.console import error as print_error

                    print_error(
                        f"a rank failed (exit code {code}; its error is above, or it was killed, e.g. out of "
                        f"memory); the run keeps its last complete checkpoint: continue with `{command_line} --resume`"
                    )
                raise typer.Exit(code)
            return
        starts = pipeline.plan_starts(loaded, stages, resume=resume, overwrite=overwrite, force=force)
        if command == "run" and loaded.push is not None:
            from recipe_cli.hub import require_hub

            on_main(require_hub)  # offline mode or no token: before hours of training, not after
        quiet_libraries()
        if command == "run":
            pipeline.run_recipe(loaded, starts, command_line, ConsoleReporter())
        else:
            pipeline.train_stages(loaded, starts, command_line, ConsoleReporter())


@contextmanager
def _silent(*logger_names: str) -> Iterator[None]:
    """No log records from the loggers ``logger_names`` within the block."""
    loggers = [logging.getLogger(name) for name in logger_names]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def _add_training_command(name: str, summary: str) -> None:
    """``recipe sft``, ``grpo`` and ``run``: the same options, one body (``_training_command``)."""

    def command(
        recipe: RecipeArg,
        overrides: SetOption = None,
        resume: ResumeOption = False,
        overwrite: OverwriteOption = False,
        force: ForceOption = False,
        dry_run: DryRunOption = False,
        num_processes: ProcessesOption = None,
        accelerate_config: AccelerateConfigOption = None,
        num_machines: MachinesOption = None,
        machine_rank: MachineRankOption = None,
        main_process_ip: MainIpOption = None,
        main_process_port: MainPortOption = None,
        old_defaults: OldDefaultsOption = False,
    ):
        launch = _launch_options(
            num_processes=num_processes,
            accelerate_config=accelerate_config,
            num_machines=num_machines,
            machine_rank=machine_rank,
            main_process_ip=main_process_ip,
            main_process_port=main_process_port,
        )
        _guard(
            lambda: _training_command(
                name,
                recipe,
                overrides,
                launch,
                resume=resume,
                overwrite=overwrite,
                force=force,
                dry_run=dry_run,
                old_defaults=old_defaults,
            )
        )

    command.__doc__ = summary
    app.command(name=name)(command)


_add_training_command("sft", "Cold-start supervised fine-tuning on worked solutions.")
_add_training_command("grpo", "GRPO with verifiable rewards, from the SFT checkpoint when the recipe has SFT.")
_add_training_command("run", "Every configured stage in order: eval base, sft, eval, grpo, eval, push.")


@app.command()
def data(
    recipe: RecipeArg,
    stage: Annotated[
        str, typer.Option(help="Only this stage: sft or grpo (default: every training stage).", metavar="STAGE")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the per-step counts; write nothing, sample nothing.")
    ] = False,
    overrides: SetOption = None,
):
    """Prepare each training stage's data as training will: runs/<name>/data/<stage>.jsonl and <stage>.json."""

    def body():
        from recipe_cli.console import print_data_report
        from recipe_cli.pipeline import prepare_data

        if stage is not None and stage not in TRAINING_STAGES:
            raise RecipeError(f"--stage {stage!r}: give sft or grpo")
        # the data the stages would train on: their sections from the command line, as `recipe <stage>` takes them
        loaded = _load_for_run(recipe, overrides, trains=(stage,) if stage else TRAINING_STAGES)
        stages = [stage] if stage else loaded.training_stages
        for name in stages:
            if getattr(loaded, name) is None:
                raise RecipeError(f"the recipe has no `{name}:` section; add one to prepare its data")
        if not stages:
            raise RecipeError("the recipe has no sft or grpo stage, so there is no training data to prepare")
        if not dry_run and any(getattr(loaded, name).dataset.difficulty is not None for name in stages):
            from recipe_cli.launch import check_packages

            check_packages(loaded, [])  # the pass-rate step samples from the stage's starting model
        quiet_libraries()
        if dry_run:
            results = prepare_data(loaded, stages, dry_run=True)
        else:
            with _run_lock(loaded, _command_line("data", recipe, overrides)):
                results = prepare_data(loaded, stages, dry_run=False)
        for prepared, written in results:
            print_data_report(prepared, written)
        if dry_run:
            console.print("[green]dry run[/]: nothing was sampled or written")

    _guard(body)


@app.command(name="eval")
def eval_command(
    recipe: RecipeArg,
    models: Annotated[
        list[str],
        typer.Option(
            "--model", "-m", help="Evaluate this checkpoint instead of the run's stages (repeatable).", metavar="PATH"
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Evaluate only the first N problems, for a quick look.", min=1, metavar="N")
    ] = None,
    overrides: SetOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace results of another folder that had the same label.")
    ] = False,
):
    """Evaluate the run's checkpoints (base, sft, grpo) or --model PATH on the eval split."""

    def body():
        from recipe_cli.console import print_eval_table
        from recipe_cli.pipeline import eval_targets, evaluate_checkpoint

        loaded = _load_for_run(recipe, overrides)
        if loaded.eval is None:
            raise RecipeError("the recipe has no `eval:` section; add one with the dataset to evaluate on")
        from recipe_cli.launch import check_packages

        check_packages(loaded, [])
        quiet_libraries()
        reporter = ConsoleReporter()
        with _run_lock(loaded, _command_line("eval", recipe, overrides)):
            targets = eval_targets(loaded, models, limit, overwrite)  # what it would replace, seen under the lock
            summaries = [
                s for label, path in targets for s in evaluate_checkpoint(loaded, path, label, limit, reporter)
            ]
        print_eval_table(summaries)

    _guard(body)


@app.command()
def rewards(
    recipe: Annotated[
        Path,
        typer.Argument(
            help="A recipe with a `grpo:` section; without one, list the rewards.", show_default=False, metavar="RECIPE"
        ),
    ] = None,
    golds: Annotated[int, typer.Option(help="Gold answers checked as perfect completions.", min=1, metavar="N")] = 200,
    groups: Annotated[
        int, typer.Option(help="Prompts whose completion groups every reward scores.", min=1, metavar="N")
    ] = 8,
    samples: Annotated[
        int, typer.Option(help="Completions sampled from the starting model per prompt.", min=0, metavar="N")
    ] = 2,
    no_model: Annotated[bool, typer.Option("--no-model", help="Do not load the starting model to sample.")] = False,
    overrides: SetOption = None,
):
    """Preflight the recipe's rewards on gold, malformed and sampled completions (exit 1 on a fatal finding)."""

    def body():
        from recipe_cli.console import print_preflight, print_reward_catalogue

        if recipe is None:
            print_reward_catalogue()
            return
        loaded = _load(recipe, overrides)
        sampling = not no_model and samples > 0  # --samples 0 samples nothing, so no model needs to load
        if sampling:
            from recipe_cli.launch import check_packages

            check_packages(loaded, [])
        quiet_libraries()
        from recipe_cli.preflight import run_preflight

        report = run_preflight(loaded, golds=golds, groups=groups, samples=samples, use_model=sampling)
        print_preflight(report)
        if report.fatal:
            raise typer.Exit(1)

    _guard(body)


@app.command()
def push(
    recipe: RecipeArg,
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="Hub repo user-or-org/name (default: push.repo_id).", metavar="REPO_ID")
    ] = None,
    stage: Annotated[
        str, typer.Option(help="Push the sft or grpo checkpoint (default: the last that finished).", metavar="STAGE")
    ] = None,
    checkpoint: Annotated[
        Path,
        typer.Option(help="Push this checkpoint folder instead, e.g. runs/demo/grpo/checkpoint-50.", metavar="PATH"),
    ] = None,
    revision: Annotated[
        str, typer.Option(help="Branch to push to (default: the stage's name, or grpo-step-N).", metavar="BRANCH")
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
        from recipe_cli.console import print_push_plan, print_pushed

        options = {"repo_id": repo_id, "stage": stage, "revision": revision, "private": private}
        options = {key: value for key, value in options.items() if value is not None}
        if overwrite:
            options["overwrite"] = True
        loaded = _load_for_run(recipe, overrides, {"push": options})
        if loaded.push is None:
            raise RecipeError("the recipe has no `push:` section; add `push: {repo_id: user/model-name}` or --repo-id")
        if loaded.push.merge_lora:  # the base model loads to take the adapter in
            from recipe_cli.launch import check_packages

            check_packages(loaded, [])
        with _run_lock(loaded, _command_line("push", recipe, overrides)):
            if dry_run:
                from recipe_cli.push import plan_push

                print_push_plan(plan_push(loaded, checkpoint))
                return
            from recipe_cli.push import push_checkpoint

            print_pushed(push_checkpoint(loaded, checkpoint))

    _guard(body)


@app.command()
def report(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders, e.g. runs/demo; with several, their curves are overlaid.",
            show_default=False,
            metavar="RUN",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder for report.md and the plots (default: RUN/report, or report-A-vs-B).",
            metavar="PATH",
        ),
    ] = None,
):
    """Plot what runs logged (curves, evals, samples) into PNGs and a Markdown report; several runs are compared."""

    def body():
        from recipe_cli.console import print_report
        from recipe_cli.report import write_report

        # the runs are only read (a report works during a run); write_report locks the folder it writes
        words = ["recipe", "report", *map(str, runs)] + (["--output", str(output)] if output is not None else [])
        print_report(write_report(runs, output, " ".join(map(shlex.quote, words))))

    _guard(body)


@app.command()
def serve(
    recipe: RecipeArg,
    overrides: SetOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the server command; start nothing.")] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Serve the model `recipe grpo --overwrite` would start from."),
    ] = False,
):
    """Start TRL's vLLM server for GRPO's server mode, with the model GRPO starts from (launch.vllm_server)."""

    def body():
        import os

        from recipe_cli.serve import check_server_machine, serve_command

        # the model GRPO goes on with, or starts again from
        loaded = _load_for_run(recipe, overrides, trains=("grpo",), overwrite=overwrite)
        command = serve_command(loaded)
        words = ["trl", *command[3:]]  # `python -m trl.cli.main` is the `trl` command
        console.print(" ".join(shlex.quote(word) for word in words))
        if dry_run:
            console.print("dry run: the server was not started")
            return
        from recipe_cli.precision import Machine

        check_server_machine(Machine.here())
        os.execv(command[0], command)  # the server replaces this process: signals and exit codes are its own

    _guard(body)


@app.command()
def convert(
    source: Annotated[
        Path,
        typer.Argument(help="An open-r1 recipe or a `trl sft|grpo --config` file.", show_default=False, metavar="FILE"),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write the recipe (default: FILE's name + .recipe.yaml).", metavar="PATH"
        ),
    ] = None,
    stage: Annotated[
        str,
        typer.Option(
            help="sft or grpo, for a file whose keys do not say (default: sft, as `trl sft`).", metavar="STAGE"
        ),
    ] = None,
    old_defaults: OldDefaultsOption = False,
    overrides: SetOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the --output file if it exists.")] = False,
):
    """Write an open-r1 or TRL file as a recipe, every translation listed in its header; it validates as written."""

    def body():
        from recipe_cli.console import print_translation
        from recipe_cli.foreign import ForeignOptions, convert_file

        if stage is not None and stage not in TRAINING_STAGES:
            raise RecipeError(f"--stage {stage!r}: give sft or grpo")
        foreign = ForeignOptions(stage=stage, old_defaults=old_defaults)
        translation, written = convert_file(source, output, foreign, overrides or [], overwrite=overwrite)
        print_translation(translation, source)
        console.print(f"[green]wrote[/] {written}: validate it with `recipe validate {written}`")

    _guard(body)
