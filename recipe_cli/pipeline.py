"""The order of a run: plan each stage's start, build the base model, check the data, evaluate, train,
hand off to the next stage, evaluate again, push.

Every rank of a multi-process run executes this module; training runs on all of them, and the
main process alone writes ``run.json``, builds the base model, evaluates and pushes
(``recipe_cli.ranks.on_main``). Progress goes to a ``Reporter`` (``recipe_cli.console`` renders
it), so nothing here prints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from recipe_cli.config import Recipe, check_model_folder
from recipe_cli.errors import RecipeError, TrainingStopped
from recipe_cli.models import free_model_memory
from recipe_cli.ranks import is_main, on_main, shared
from recipe_cli.resume import StageStart, changed_settings, check_data, plan_start
from recipe_cli.resume import outdated as stage_outdated
from recipe_cli.runs import RunFolder
from recipe_cli.trackers import TrackerRun, active_trackers
from recipe_cli.trainer_settings import TRAINING_STAGES

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Where a pipeline says what it is doing (``recipe_cli.console.ConsoleReporter`` on the console)."""

    def stage_skipped(self, stage: str, output: str, forced: bool) -> None: ...
    def stage_started(self, stage: str, name: str, resuming: Path | None, world_size: int) -> None: ...
    def stage_done(self, stage: str, seconds: float, output: Path) -> None: ...
    def eval_progress(self): ...
    def training_progress(self): ...
    def evaluated(self, summary: dict) -> None: ...
    def eval_table(self, summaries: list[dict]) -> None: ...
    def report_written(self, report) -> None: ...
    def pushed(self, result) -> None: ...
    def finished(self, name: str, seconds: float) -> None: ...


def plan_starts(
    recipe: Recipe, stages: list[str], *, resume: bool, overwrite: bool, force: bool
) -> dict[str, StageStart]:
    """How each stage starts, decided for all of them before anything is written or trained."""
    run = RunFolder(recipe)
    starts = {}
    for stage in stages:  # sft first: whether it trains again decides whether grpo's start is still current
        starts[stage] = plan_start(
            run, stage, resume=resume, overwrite=overwrite, force=force, sft_start=starts.get("sft")
        )
    return starts


@contextmanager
def resume_hint(command: str) -> Iterator[None]:
    """A run stopped by a signal says which command continues it."""
    try:
        yield
    except TrainingStopped as stopped:
        if not stopped.resumable:
            raise
        raise shared(TrainingStopped(f"{stopped}; continue with `{command} --resume`", stopped.exit_code)) from None


@contextmanager
def eval_stop_hint(run: RunFolder, label: str, summaries: list[dict], command: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM during ``recipe run``'s evaluation of ``label`` says what the run kept and the command that
    continues it, as a stop during training does; an evaluation cut short writes nothing (its results are written at
    its end). SIGTERM, which schedulers send, ended the process without a word (Python's default handling).
    """
    import signal
    import threading

    terminated = []

    def stop(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()  # handlers can only be set there
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        yield
    except KeyboardInterrupt:
        stages = run.recipe.training_stages
        trained = stages[: stages.index(label) + 1] if label in stages else []
        kept = [f"{stage} trained, in {run.finished(stage)['path']}" for stage in trained if run.finished(stage)]
        done = sorted({summary["label"] for summary in summaries})
        if done:
            kept.append(f"the evaluation of {', '.join(done)} in {run.eval_dir}")
        how = "stopped by SIGTERM" if terminated else "interrupted"
        raise TrainingStopped(
            f"{how} while evaluating {label}, whose results were not written; kept: "
            f"{'; '.join(kept) or 'nothing'}"
            f"; continue with `{command} --resume` (it skips the finished stages and evaluates again)",
            128 + (signal.SIGTERM if terminated else signal.SIGINT),
        ) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _stage_callbacks(recipe: Recipe) -> list:
    """Callbacks that run after a checkpoint is marked complete: pushing it, when the recipe asks."""
    if recipe.push is None or not recipe.push.push_checkpoints:
        return []
    from recipe_cli.hub import require_hub
    from recipe_cli.push import checkpoint_pusher

    on_main(require_hub)  # offline mode or no token: before training, not at the first checkpoint
    return [checkpoint_pusher(recipe)]


def _prepare_stage(recipe: Recipe, run: RunFolder, start: StageStart, prepared=None, replaced: Collection[str] = ()):
    """What the main process writes before a stage trains: the base model, the data report (and a pass-rate
    cache), a clean stage folder; a resumed stage must train on the rows it trained on (``check_data``).
    Returns the stage's prepared data (``prepared`` when given), for the main process's trainer, and its fingerprint.

    ``replaced``: the later stages this command starts again too (``recipe run --overwrite``). Once this stage's
    folder is cleared, their earlier runs trained from a model that is gone: they are cleared with it, so a stop
    before they train again leaves no finished stage that ``--resume`` would refuse and ``--force`` would push.

    The recipe is recorded with the stage once its trainer is built (``RunFolder.record_training``): a data
    mistake, or a trainer that cannot be built, leaves the run's record as it was.
    """
    from recipe_cli.training import clear_stage_dir, prepare_base_model, prepare_stage_data, write_stage_report

    prepare_base_model(recipe, run)
    if prepared is None:
        prepared = prepare_stage_data(recipe, start.stage, training=True)
    fingerprint = prepared.fingerprint()
    check_data(run, start, fingerprint)  # before data/<stage>.jsonl, the rows trained on, is replaced
    write_stage_report(recipe, prepared)
    output = run.stage_dir(start.stage)
    if start.clear:
        clear_stage_dir(output)
        for later in replaced:
            run.forget_stage(later)
            clear_stage_dir(run.stage_dir(later))
    output.mkdir(parents=True, exist_ok=True)  # health.log is written before the first checkpoint
    return prepared, fingerprint


def train_one(
    recipe: Recipe, start: StageStart, reporter: Reporter, prepared=None, replaced: Collection[str] = ()
) -> Path:
    """Train one stage as planned (or skip it) on every rank; return its checkpoint folder.

    ``prepared`` is the stage's data as the main process already prepared it (``recipe run``), else None;
    ``replaced``: see ``_prepare_stage``.

    The main process records the stage as training once its trainer is built, and as finished
    once the final model is saved. A stop (signal, non-finite values) raises ``TrainingStopped``
    on every rank.
    """
    from recipe_cli.preemption import PreemptionFlag, stop_on_signals
    from recipe_cli.training import stopped_error, train_stage

    run = RunFolder(recipe)
    stage = start.stage
    if start.skip:
        output = run.finished(stage)["path"]
        reporter.stage_skipped(stage, output, start.forced)
        return Path(output)
    callbacks = _stage_callbacks(recipe)
    started = time.perf_counter()
    reporter.stage_started(stage, recipe.name, start.checkpoint, recipe.launch.num_processes)
    flag = PreemptionFlag()
    earlier: dict = {}

    data: dict = {}  # the main process's prepared data, kept here rather than sent to every rank, and its fingerprint

    def record_training():
        earlier["record"] = on_main(
            lambda: run.record_training(stage, start.checkpoint, data.get("fingerprint"), data.get("tracker"))
        )

    def prepare():
        data["tracker"] = _tracker_run(recipe, run, start)  # before an earlier attempt's folder is cleared
        data["prepared"], data["fingerprint"] = _prepare_stage(recipe, run, start, prepared, replaced)

    with stop_on_signals(flag):
        on_main(prepare)
        try:
            outcome = train_stage(
                recipe,
                start,
                flag,
                callbacks,
                on_ready=record_training,
                progress=reporter.training_progress(),
                prepared=data.pop("prepared", None),
                tracker=data.get("tracker"),
            )
        except BaseException:
            if is_main() and _no_new_checkpoint(run, start):
                # no step trained: the stage and the recipe are as they were, the stage gone if this attempt
                # cleared its folder (also when its trainer could not be built: the record would point at nothing)
                if "record" in earlier:
                    run.restore_stage(
                        stage, replace(earlier["record"], entry=None) if start.clear else earlier["record"]
                    )
                elif start.clear:
                    run.forget_stage(stage)
            raise
        if outcome.finished:
            on_main(lambda: run.record_stage(stage, outcome.output, **outcome.record))
        _note_late_signal(flag, outcome)
    free_model_memory()  # before an evaluation or the next stage loads a model
    error = stopped_error(outcome)
    if error is not None:
        raise shared(error)  # every rank agreed on the outcome
    reporter.stage_done(stage, time.perf_counter() - started, outcome.output)
    return outcome.output


def _note_late_signal(flag, outcome) -> None:
    """A signal that arrived after the last step's end (while the final model was saved, a minute for a large one,
    or recorded) stops the command after this stage, as one during the last step does; the handler took it, so it
    would otherwise be forgotten and the next stage train until the scheduler's SIGKILL. The ranks agree, as at a
    step's end: the signal may have reached one before it left training and another after."""
    from recipe_cli.ranks import agree_max

    agreed = agree_max(flag.signum or 0)
    if agreed and outcome.signal is None:
        flag.signum = flag.signum or agreed
        outcome.signal, outcome.exit_code = flag.name, flag.exit_code


def _tracker_run(recipe: Recipe, run: RunFolder, start: StageStart) -> TrackerRun | None:
    """The stage attempt's run in the trackers its trainer reports to (none: None): the recorded one when it
    resumes, else a new one."""
    if not active_trackers(getattr(recipe, start.stage).trainer.get("report_to", "none")):
        return None
    earlier = run.read()["stages"].get(start.stage)
    return TrackerRun.after(earlier, start.stage, resuming=start.checkpoint is not None)


def _no_new_checkpoint(run: RunFolder, start: StageStart) -> bool:
    from recipe_cli.checkpoints import last_complete_checkpoint

    return last_complete_checkpoint(run.stage_dir(start.stage)) == start.checkpoint


def _check_models_and_rewards(recipe: Recipe, starts: dict[str, StageStart], base: str) -> None:
    """What only the starting model and the rewards can tell, before any stage's data or weights load (main
    process): LoRA targets that match no module, a GRPO reward that cannot run."""
    from recipe_cli.models import check_lora_targets
    from recipe_cli.preflight import check_rewards_run

    check_lora_targets(base, recipe.model)
    if "grpo" in starts and not starts["grpo"].skip:
        check_rewards_run(recipe, base)


def train_stages(recipe: Recipe, starts: dict[str, StageStart], command: str, reporter: Reporter) -> None:
    """``recipe sft`` / ``recipe grpo``: the planned stages, in order, with the command that resumes them."""
    from recipe_cli.training import check_trainer_configs, prepare_base_model

    on_main(lambda: check_trainer_configs(recipe, list(starts)))
    on_main(lambda: _check_models_and_rewards(recipe, starts, prepare_base_model(recipe, RunFolder(recipe))))
    for start in starts.values():
        with resume_hint(command):
            train_one(recipe, start, reporter)


def run_recipe(recipe: Recipe, starts: dict[str, StageStart], command: str, reporter: Reporter) -> list[dict]:
    """``recipe run``: every stage's data checked first, then eval base, train, eval, push; returns the evals."""
    from recipe_cli.training import check_trainer_configs, check_training_data, prepare_base_model

    started = time.perf_counter()
    run = RunFolder(recipe)
    summaries = []
    on_main(lambda: check_trainer_configs(recipe, recipe.training_stages))  # a later stage's settings too
    base = on_main(lambda: prepare_base_model(recipe, run))
    on_main(lambda: _check_models_and_rewards(recipe, starts, base))  # before the evals and SFT
    checked: dict = {}  # the main process's prepared data, kept here rather than sent to every rank
    # a data mistake in a later stage stops before any work; the data checked is the data trained on
    on_main(lambda: checked.update(check_training_data(recipe, base)))
    if recipe.eval is not None:
        with eval_stop_hint(run, "base", summaries, command):
            summaries += on_main(lambda: evaluate_checkpoint(recipe, base, "base", None, reporter))
    for index, stage in enumerate(recipe.training_stages):
        replaced = [later for later in recipe.training_stages[index + 1 :] if starts[later].clear]
        with resume_hint(command):
            output = train_one(recipe, starts[stage], reporter, checked.pop(stage, None), replaced)
        if recipe.eval is not None:
            with eval_stop_hint(run, stage, summaries, command):
                summaries += on_main(partial(evaluate_checkpoint, recipe, str(output), stage, None, reporter))
    if summaries and is_main():
        reporter.eval_table(summaries)
    on_main(lambda: report_run(recipe, reporter))
    if recipe.push is not None:
        from recipe_cli.push import push_checkpoint

        result = on_main(lambda: push_checkpoint(recipe, _kept_by_force(run, starts)))
        if is_main():
            reporter.pushed(result)
    reporter.finished(recipe.name, time.perf_counter() - started)
    return summaries


def _kept_by_force(run: RunFolder, starts: dict[str, StageStart]) -> str | None:
    """The checkpoint ``recipe run`` pushes as it is, when ``--force`` kept the stage it pushes although the sft
    model that stage started from changed (a plain push refuses it, ``recipe push --checkpoint`` takes it); else
    None, the push's own choice."""
    stage = run.recipe.push.stage or run.final_stage()
    outdated = stage_outdated(run, stage) if stage else None
    if outdated is None or not starts.get(stage, StageStart(stage)).forced:
        return None
    log.warning("pushing %s as --force kept it: %s", stage, outdated)
    return run.finished(stage)["path"]


def report_run(recipe: Recipe, reporter: Reporter) -> None:
    """Write the run's report (plots and report.md in ``runs/<name>/report``); one that cannot be drawn is told.

    Training and evaluation are done by then, so a report that cannot be written (no matplotlib)
    stops nothing: the push still follows, and ``recipe report`` draws it later.
    """
    from recipe_cli.report import write_report

    try:
        report = write_report([recipe.run_dir], holds_lock=True)  # the run's lock is this command's
    except RecipeError as error:
        log.warning("no run report: %s", error)
        return
    reporter.report_written(report)


def prepare_data(recipe: Recipe, stages: list[str], *, dry_run: bool) -> list[tuple]:
    """``recipe data``: each stage's data through the chain training uses; ``(prepared, written files)`` per stage.

    Writes ``runs/<name>/data/<stage>.jsonl`` and ``.json`` (and the pass-rate cache, and the tiny
    base model a tokenizer or a pass-rate filter needs); a dry run writes nothing and samples nothing.
    """
    from recipe_cli.data import write_stage_data
    from recipe_cli.training import prepare_base_model, prepare_stage_data

    run = RunFolder(recipe)
    results = []
    if dry_run:
        from recipe_cli.plan import plan_tokenizer

        tokenizer = plan_tokenizer(recipe)
        for stage in stages:
            results.append((prepare_stage_data(recipe, stage, sample=False, tokenizer=tokenizer), None))
        return results
    on_main(lambda: prepare_base_model(recipe, run))  # the caller holds the run folder's lock
    prepared = [prepare_stage_data(recipe, stage) for stage in stages]
    for rows in prepared:  # all checked before any file is written
        _keep_trained_rows(run, rows)
    return [(rows, write_stage_data(rows, run.root / "data")) for rows in prepared]


def _keep_trained_rows(run: RunFolder, prepared) -> None:
    """Refuse to replace ``data/<stage>.jsonl`` of a stage that trained on other rows: the file is the record of
    what it trained on (``run.json`` keeps its fingerprint, which ``--resume`` compares)."""
    trained = run.read()["stages"].get(prepared.stage, {}).get("data")
    if trained is not None and trained != prepared.fingerprint():
        raise RecipeError(
            f"{run.root / 'data' / prepared.stage}.jsonl holds the rows {prepared.stage} trained on, and these "
            "settings give other rows; `recipe data --dry-run` shows them without writing, or set another run name "
            "(--set name=...) to write them there"
        )


def evaluate_checkpoint(recipe: Recipe, path: str, label: str, limit: int | None, reporter: Reporter) -> list[dict]:
    """Evaluate one checkpoint on every eval set of the recipe, with progress; write and return the summaries."""
    from recipe_cli.evaluate import eval_rows, evaluate_model
    from recipe_cli.generation import open_engine

    summaries = []
    rows = [eval_rows(recipe, eval_set, limit) for eval_set in recipe.eval.sets]  # before the model loads
    with open_engine(recipe, path) as engine:  # loaded once for every eval set, let go before training goes on
        for eval_set, set_rows in zip(recipe.eval.sets, rows, strict=True):
            with reporter.eval_progress() as progress:
                summary = evaluate_model(recipe, path, label, limit, progress, eval_set, engine, set_rows)
            reporter.evaluated(summary)
            summaries.append(summary)
    return summaries


SHARED_SECTIONS = ("model", "prompt", "seed")  # what every stage of a run trains with


@dataclass(frozen=True)
class RunRecipe:
    """The recipe a command works with, and what of it came from the run's record (``recipe_for_run``)."""

    recipe: Recipe
    record: Path | None = None  # runs/<name>/recipe.yaml, when sections were taken from it
    sections: tuple[str, ...] = ()  # the sections taken from the record
    differences: tuple[str, ...] = ()  # how the command line differs from the record in them: "path: run -> given"


def binding_stages(recorded: Collection[str], trains: Collection[str], overwrite: bool) -> tuple[str, ...]:
    """The recorded stages whose settings a command must keep: those it does not start again (``trains`` with
    ``overwrite``), up to the first stage it starts again; a later stage continues that one's model, so its
    record no longer follows from the run.

    >>> binding_stages({"sft", "grpo"}, ("grpo",), overwrite=True)
    ('sft',)
    >>> binding_stages({"sft", "grpo"}, ("sft",), overwrite=True)
    ()
    >>> binding_stages({"sft", "grpo"}, ("sft",), overwrite=False)
    ('sft', 'grpo')
    """
    binding = []
    for stage in TRAINING_STAGES:
        if overwrite and stage in trains:
            break
        if stage in recorded:
            binding.append(stage)
    return tuple(binding)


def recipe_for_run(
    data: dict, source: str, trains: Collection[str] = (), overwrite: bool = False, force: bool = False
) -> RunRecipe:
    """The recipe for a command on a run that already trained: the run's recorded settings where they apply.

    A run trained with ``--set model.lora=...`` must go on (grpo after sft), be evaluated and be
    pushed as what it is, without repeating every override. Once ``runs/<name>/recipe.yaml`` exists
    and ``run.json`` records a stage that still binds the command (``binding_stages``: not started
    again by it, nor downstream of a stage it starts again), the model, prompt and seed and the
    section of every binding stage the command does not train (``trains``) come from the record;
    the rest (the stages it trains, eval, push, launch) from ``data``, the raw recipe with this
    command's overrides. The sections of the stages it trains are checked against the run by
    resuming (their settings hash). How the command line differs from the record in the sections
    taken is returned, for the command to say (the record wins). A command that asks to train as
    its command line says (``overwrite``, ``force``) is refused a different model, prompt or seed,
    which the stages it trains would start from; a recorded stage it does not train is a model that
    exists, so a difference there is only said.
    """
    from recipe_cli.config import validate_recipe
    from recipe_cli.runs import read_record, read_saved_recipe

    name, runs_dir = data.get("name"), data.get("runs_dir", "runs")
    if "model" not in data or not isinstance(name, str) or not isinstance(runs_dir, str):
        return RunRecipe(validate_recipe(data, source))  # the schema says what is wrong
    run_dir = Path(runs_dir) / name
    binding = binding_stages(read_record(run_dir / "run.json")["stages"], trains, overwrite)
    saved = read_saved_recipe(run_dir) if binding else None  # a record nothing keeps is not read
    if saved is None:
        return RunRecipe(validate_recipe(data, source))
    sections = (*SHARED_SECTIONS, *(stage for stage in binding if stage not in trains))
    sections = tuple(key for key in sections if key in saved)
    record = run_dir / "recipe.yaml"
    taken = {key: saved[key] for key in sections}
    attention = (data.get("model") or {}).get("attn_implementation") if isinstance(data.get("model"), dict) else None
    if not trains and attention is not None and isinstance(taken.get("model"), dict):
        # how attention is computed, not what was learned: a command that only loads the model (eval, push) may
        # use another kernel than the one it trained with, e.g. sdpa where flash-attn is not installed
        taken["model"] = {**taken["model"], "attn_implementation": attention}
    recipe = validate_recipe({**data, **taken}, f"{source} with the run's {record}")
    kept = recipe.model_dump(mode="json")
    differences = {key: _section_differences(key, kept[key], data) for key in sections}
    trained_with = [found for key in SHARED_SECTIONS for found in differences.get(key, [])]
    if trained_with and trains and (overwrite or force):  # what the stages it trains start from
        raise RecipeError(
            f"{'--overwrite' if overwrite else '--force'}: the command line's model, prompt and seed differ from "
            f"those the run's {' and '.join(binding)} trained with in {'; '.join(trained_with)} (the run's -> the "
            "command line's); to train with the command line's, start the run again with `recipe run --overwrite`, "
            "or use another run name"
        )
    return RunRecipe(recipe, record, sections, tuple(found for key in sections for found in differences[key]))


def _section_differences(key: str, kept: Any, data: dict) -> list[str]:
    """How the raw recipe's section ``key`` differs from the one kept from the run's record (``kept``, as JSON)."""
    given = _section_as_given(key, data)
    if given is _INVALID:
        return [f"{key} (the command line's `{key}:` does not validate on its own)"]
    if key in TRAINING_STAGES and (given is None) != (kept is None):
        return [f"{key} (the command line has {'no' if given is None else 'a'} `{key}:` section)"]
    return changed_settings({key: kept}, {key: given})


_INVALID = object()


def _section_as_given(key: str, data: dict) -> Any:
    """One section of the raw recipe validated alone (its default when absent), as JSON; ``_INVALID`` if it fails."""
    from pydantic import TypeAdapter, ValidationError

    from recipe_cli.config import coerce_trainer_section

    field = Recipe.model_fields[key]
    adapter = TypeAdapter(field.annotation)
    if key not in data:
        return adapter.dump_python(field.get_default(call_default_factory=True), mode="json")
    raw = data[key]
    if key in TRAINING_STAGES:  # its trainer values read as validate_recipe reads them (YAML's '5e-3' etc.)
        raw, problems = coerce_trainer_section(key, raw)
        if problems:
            return _INVALID
    try:
        return adapter.dump_python(adapter.validate_python(raw), mode="json")
    except ValidationError:
        return _INVALID


def eval_targets(
    recipe: Recipe, models: list[str] | None, limit: int | None = None, overwrite: bool = False
) -> list[tuple[str, str]]:
    """``(label, path)`` of what ``recipe eval`` evaluates: the ``--model`` folders, else the run's stages.

    Results never overwrite each other silently. The run's own stages are ``base``, ``sft`` and
    ``grpo`` (the only evals a model card shows); another folder gets its parent's and its own
    name (``other-sft``); a ``--limit N`` evaluation gets ``-limitN`` after the label. A label
    whose results measured another folder is refused unless ``overwrite``.
    """
    run = RunFolder(recipe)
    own = run_stage_folders(recipe)
    if models:
        for path in models:  # what validate checks of model.path: weights, tokenizer, chat template
            problems = check_model_folder(Path(path).expanduser(), recipe, f"--model '{path}'")
            if problems:
                raise RecipeError("; ".join(problems))
        by_folder = {folder: label for label, folder in own.items()}
        others = [p for p in models if _resolved(p) not in by_folder]
        other_labels = dict(zip(others, model_labels(others, reserved=set(own)), strict=True))
        targets = [(by_folder.get(_resolved(p)) or other_labels[p], p) for p in models]
    else:
        targets = [(label, folder) for label, folder in own.items() if label != "base" or _has_base(recipe, run)]
        for label, _ in targets:
            outdated = stage_outdated(run, label)
            if outdated is not None:  # measured, but not the model that follows from today's sft
                log.warning("%s: %s; train it again with `recipe %s RECIPE --overwrite`", label, outdated, label)
        if not targets:
            raise RecipeError(f"nothing to evaluate in {run.root}; train first or pass --model PATH")
    if limit is not None:
        targets = [(f"{label}-limit{limit}", path) for label, path in targets]
    if not overwrite:
        _refuse_replacing(run, targets)
    return targets


def _has_base(recipe: Recipe, run: RunFolder) -> bool:
    return bool(recipe.model.path) or Path(run.base_model_path()).is_dir()


def _resolved(path: str) -> str:
    return str(Path(path).expanduser().resolve()) if Path(path).expanduser().exists() else path


def run_stage_folders(recipe: Recipe) -> dict[str, str]:
    """The run's own models by label: ``base`` (the starting model) and every finished stage's checkpoint."""
    run = RunFolder(recipe)
    folders = {"base": _resolved(run.base_model_path())}
    for stage in TRAINING_STAGES:
        entry = run.finished(stage)
        if entry is not None:
            folders[stage] = _resolved(entry["path"])
    return folders


def _refuse_replacing(run: RunFolder, targets: list[tuple[str, str]]) -> None:
    """A label's earlier results may only be replaced by an evaluation of the same folder."""
    import json

    suffixes = [suffix for suffix, _, _ in run.recipe.eval.sets] if run.recipe.eval is not None else [""]
    for label, path in [(label + suffix, path) for label, path in targets for suffix in suffixes]:
        summary = run.eval_dir / f"{label}.json"
        if not summary.is_file():
            continue
        try:
            measured = json.loads(summary.read_text()).get("model")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            measured = None
        if measured is not None and _resolved(measured) != _resolved(path):
            raise RecipeError(
                f"{summary} holds the evaluation of {measured}, not {path}; pass --overwrite to replace it "
                "(or evaluate the folder under another run name)"
            )


def model_labels(paths: list[str], reserved: set[str] = frozenset()) -> list[str]:
    """One label per --model folder that is not one of the run's own: its parent's name and its own.

    >>> model_labels(["runs/a/sft", "runs/a/checkpoint-100", "runs/b/checkpoint-100"])
    ['a-sft', 'a-checkpoint-100', 'b-checkpoint-100']
    """
    labels = [f"{Path(p).resolve().parent.name}-{Path(p).resolve().name}" for p in paths]
    labels = [f"model-{label}" if label in reserved else label for label in labels]
    if len(set(labels)) < len(labels):
        raise RecipeError("--model: two checkpoints would share a label; pass each folder once")
    return [label.replace(" ", "_") for label in labels]
