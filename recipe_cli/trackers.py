"""Live experiment trackers (``trainer.report_to``): checked before any model loads, named for the run when on.

transformers sends the trainer's logs to the trackers named in ``report_to`` (trackio, TensorBoard,
Weights & Biases, ...), but it finds out that one is missing only when the trainer is built, after
the model has loaded. recipe checks each named tracker with ``importlib.util.find_spec`` instead:
nothing is imported, so ``recipe validate`` stays fast. An unknown name is a mistake in the recipe;
a tracker this machine lacks stops the training commands (``recipe_cli.launch.missing_packages``)
and is a warning in ``recipe validate``, which may run on another machine than the training.

Each attempt at a stage is one run in the trackers (``TrackerRun``): a resumed stage continues it,
a stage started again is a new one, and the next stage of ``recipe run`` starts its own.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from recipe_cli.trainer_fields import package_dir

log = logging.getLogger(__name__)

# report_to name -> (modules, any of which makes it available as transformers checks it; what to pip install).
# From transformers.integrations.integration_utils (is_<name>_available), for the trackers people install.
TRACKER_PACKAGES = {
    "trackio": (("trackio",), "trackio"),
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet-ml"),
    "clearml": (("clearml",), "clearml"),
    "neptune": (("neptune",), "neptune"),
    "dvclive": (("dvclive",), "dvclive"),
    "swanlab": (("swanlab",), "swanlab"),
    "codecarbon": (("codecarbon",), "codecarbon"),
    "flyte": (("flytekit",), "flytekit"),
}
SPECIAL = ("none", "all")  # no tracker; every installed one (transformers' own meaning)

# transformers' callbacks for these read the project from the environment and ignore TrainingArguments.project,
# which trackio alone reads (transformers.integrations.integration_utils, 5.x)
PROJECT_VARIABLES = {
    "wandb": "WANDB_PROJECT",
    "swanlab": "SWANLAB_PROJECT",
    "clearml": "CLEARML_PROJECT",
    "mlflow": "MLFLOW_EXPERIMENT_NAME",
}
# ... and these continue an earlier run given its id: (id variable, resume mode variable). trackio continues
# the run of the same name (its callback passes resume="allow").
RESUME_VARIABLES = {"wandb": ("WANDB_RUN_ID", "WANDB_RESUME"), "swanlab": ("SWANLAB_RUN_ID", "SWANLAB_RESUME")}
# Trackers whose transformers callback leaves the run open after training and logs into an open one (wandb:
# WandbCallback.setup initialises only when ``wandb.run`` is None): the next stage would log into this one.
LEFT_OPEN = ("wandb", "swanlab")


def named_trackers(value: Any) -> list[str]:
    """The trackers a ``report_to`` value names (``none`` and ``all`` name none).

    >>> named_trackers("none"), named_trackers("all"), named_trackers(None)
    ([], [], [])
    >>> named_trackers("wandb"), named_trackers(["trackio", "tensorboard"])
    (['wandb'], ['trackio', 'tensorboard'])
    """
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    return [name for name in names if name not in SPECIAL]


def is_installed(module: str) -> bool:
    """Whether a module can be imported, found without importing it (a dotted name's parent must exist)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent of a dotted name is missing
        return False


@cache
def supported_trackers() -> tuple[str, ...]:
    """The ``report_to`` names the installed transformers knows, read from its source without importing it."""
    source = package_dir("transformers") / "integrations" / "integration_utils.py"
    tree = ast.parse(source.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "INTEGRATION_TO_CALLBACK" for t in node.targets
        ):
            return tuple(key.value for key in node.value.keys if isinstance(key, ast.Constant))
    return tuple(TRACKER_PACKAGES)  # a transformers that moved the table: at least the known ones


def check_report_to(value: Any, where: str) -> list[str]:
    """Problems with a ``report_to`` value: names transformers does not know. A tracker that is known but not
    installed here is a machine's problem (``missing_trackers``): the recipe may be meant for another machine."""
    from recipe_cli.trainer_settings import suggest

    names = [value] if isinstance(value, str) else list(value or [])
    if len(names) > 1 and any(name in SPECIAL for name in names):
        return [f"{where}: {names}: 'none' and 'all' stand alone; give them alone or list tracker names only"]
    problems = []
    for name in named_trackers(value):
        if name not in supported_trackers():
            known = ", ".join(sorted({*supported_trackers(), *SPECIAL}))
            hint = suggest(name, supported_trackers()) or f"; one of {known}"
            problems.append(f"{where}: '{name}' is not a tracker transformers knows{hint}")
    return problems


def missing_trackers(value: Any) -> list[tuple[str, str]]:
    """The trackers a ``report_to`` value names that this machine lacks: (name, what to pip install) each.

    >>> missing_trackers("none"), missing_trackers(["no-such-tracker"])
    ([], [])
    """
    missing = []
    for name in named_trackers(value):
        modules, package = TRACKER_PACKAGES.get(name, ((), ""))
        if modules and not any(is_installed(module) for module in modules):
            missing.append((name, package))
    return missing


def tracker_defaults(recipe_name: str, stage: str, report_to: Any) -> dict[str, Any]:
    """Names for the run in the trackers, when any is on: the project is the recipe, the run is its stage.

    >>> tracker_defaults("demo", "grpo", ["trackio"])
    {'project': 'demo', 'run_name': 'demo-grpo'}
    >>> tracker_defaults("demo", "grpo", "none")
    {}
    """
    if not named_trackers(report_to) and report_to != "all":
        return {}
    return {"project": recipe_name, "run_name": f"{recipe_name}-{stage}"}


def active_trackers(report_to: Any) -> list[str]:
    """The trackers a ``report_to`` value turns on: the named ones, or every installed one for ``all``.

    >>> active_trackers(["wandb"]), active_trackers("none")
    (['wandb'], [])
    """
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "all" in names:
        return [name for name in supported_trackers() if any(map(is_installed, TRACKER_PACKAGES.get(name, ((),))[0]))]
    return named_trackers(report_to)


@dataclass(frozen=True)
class TrackerRun:
    """One attempt at a stage as the trackers see it: its run id, and which attempt it is (the first is 1)."""

    id: str
    attempt: int

    @classmethod
    def after(cls, earlier: dict | None, stage: str, *, resuming: bool) -> TrackerRun:
        """The run of a stage that starts now, given the stage's earlier record in ``run.json``: the same run when
        it resumes, else a new one (a stage started again counts one attempt more)."""
        kept = (earlier or {}).get("tracker")
        if resuming and kept:
            return cls(**kept)
        attempt = kept["attempt"] + 1 if kept else 2 if earlier else 1
        return cls(f"{stage}-{secrets.token_hex(6)}", attempt)

    def run_name(self, recipe_name: str, stage: str) -> str:
        """``<recipe>-<stage>``, with the attempt after the first (trackio tells its runs apart by name).

        >>> TrackerRun("grpo-1", 1).run_name("demo", "grpo"), TrackerRun("grpo-2", 3).run_name("demo", "grpo")
        ('demo-grpo', 'demo-grpo-3')
        """
        return f"{recipe_name}-{stage}" + (f"-{self.attempt}" if self.attempt > 1 else "")

    def record(self) -> dict[str, Any]:
        return asdict(self)


def tracker_environment(trackers: list[str], project: str, run: TrackerRun) -> dict[str, str]:
    """The environment transformers' tracker callbacks read the project and the run to continue from.

    >>> tracker_environment(["wandb", "trackio"], "demo", TrackerRun("grpo-ab12", 1))
    {'WANDB_PROJECT': 'demo', 'WANDB_RUN_ID': 'grpo-ab12', 'WANDB_RESUME': 'allow'}
    """
    environment = {}
    for name in trackers:
        if name in PROJECT_VARIABLES:
            environment[PROJECT_VARIABLES[name]] = project
        if name in RESUME_VARIABLES:
            run_id, resume = RESUME_VARIABLES[name]
            environment.update({run_id: run.id, resume: "allow"})
    return environment


@dataclass
class TrackerEnding:
    """How a stage attempt ended, for the trackers' run state: 0 when it finished; else the exit code the
    command ends with, ``preempted`` when a signal stopped it with a checkpoint to resume from."""

    exit_code: int = 0
    preempted: bool = False


@contextmanager
def tracking(trackers: list[str], project: str, run: TrackerRun) -> Iterator[TrackerEnding]:
    """Train one stage attempt in its own tracker run (main process): the project and run id set where the
    user's environment does not set them, and the run ended afterwards, however training ends. The block sets
    the yielded ``TrackerEnding`` when the stage did not finish; an exception out of it ends the run as failed."""
    added = {key: value for key, value in tracker_environment(trackers, project, run).items() if key not in os.environ}
    os.environ.update(added)
    ending = TrackerEnding()
    try:
        yield ending
    except BaseException:
        ending.exit_code = ending.exit_code or 1
        raise
    finally:
        for key in added:
            os.environ.pop(key, None)
        _end_open_runs(trackers, ending)


def _end_open_runs(trackers: list[str], ending: TrackerEnding) -> None:
    """End the runs transformers leaves open, so the next stage starts its own (and a resume continues this).

    A stage that did not finish must not show as finished: wandb's ``finish`` takes the exit code (non-zero:
    failed), and ``mark_preempting`` first makes a preempted run resumable (queued again in a sweep). wandb
    also reads its environment once per process (``wandb.setup``): ``teardown`` lets the next stage's
    ``wandb.init`` read the next run's id and project instead of this one's.
    """
    for name in trackers:
        module = sys.modules.get(name) if name in LEFT_OPEN else None
        if module is None:
            continue
        finish, run = getattr(module, "finish", None), getattr(module, "run", None)
        calls = []
        if ending.preempted and callable(getattr(run, "mark_preempting", None)):
            calls.append(("mark_preempting", run.mark_preempting, {}))
        if callable(finish):
            failed = ending.exit_code and "exit_code" in _parameters(finish)
            calls.append(("finish", finish, {"exit_code": ending.exit_code} if failed else {}))
        if callable(getattr(module, "teardown", None)):
            calls.append(("teardown", module.teardown, {}))
        for step, call, keywords in calls:
            try:
                call(**keywords)
            except Exception as error:  # the run's data is the tracker's; training has finished either way
                log.warning("%s: could not end the tracker's run (%s): %s", name, step, error)


def _parameters(function: Any) -> set[str]:
    """The parameter names of a callable (none when it is not one or has no signature)."""
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()
