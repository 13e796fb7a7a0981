"""The run report: what a run folder logged, as PNG plots and one Markdown page (``recipe report``).

A run folder already holds everything a report needs: each stage's ``trainer_state.json`` (the
logged curves), ``eval/<label>.json`` (the evaluations), ``grpo/samples.jsonl`` (a few completions
per logging step, ``recipe_cli.samples``) and ``grpo/health.log``. This module reads them into
``RunLogs`` and writes ``report.md`` next to the plots that ``recipe_cli.plots`` draws. Given
several run folders (an ablation, two seeds), the curves are overlaid, one colour per run, and the
evaluation table compares them.

Step time: TRL logs ``step_time`` (seconds per optimizer step). Keys ``step_time/<phase>`` (seconds
per step spent in one phase: generation, reference log-probs, policy forward and backward, rewards,
callbacks) are drawn stacked and summarised as shares of the step, and a key ending in
``tokens_per_second`` beside them, whenever a run logged them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipe_cli.answers import MODE_LEGEND
from recipe_cli.atomic import made_folder, write_atomic
from recipe_cli.checkpoints import checkpoint_folders
from recipe_cli.errors import RecipeError, unwritable_reason
from recipe_cli.peak_memory import describe_peaks
from recipe_cli.samples import SAMPLES_FILE, read_samples
from recipe_cli.trainer_settings import TRAINING_STAGES

log = logging.getLogger(__name__)

MODEL_ORDER = ("base", "sft", "grpo")  # evaluated models, in the order of the recipe
STEP_TIME_KEY = "step_time"  # TRL's seconds per optimizer step
STEP_TIME_PREFIX = "step_time/"  # seconds per step in one phase of it
COMPLETIONS_SHOWN = 2  # per run and point of the report's samples
# The plots recipe_cli.plots draws, in the report's order, with what each shows (the image text).
PLOT_ALT = {
    "eval": "Accuracy, format rate and truncation of each evaluated model",
    "sft": "SFT loss, token accuracy, learning rate and gradient norm",
    "grpo_rewards": "GRPO rewards: the weighted total and each reward's mean and standard deviation",
    "grpo_completions": "GRPO learning signal and completions: zero-std groups, length, truncation",
    "grpo_optimization": (
        "GRPO optimisation: loss, gradient norm, learning rate, entropy, divergence to the reference, clipping"
    ),
    "grpo_step_time": "GRPO step time",
}


@dataclass
class RunLogs:
    """What one run folder logged: curves per stage, evaluations, kept completions, health warnings."""

    label: str  # how plots and tables name the run
    folder: Path
    recipe: dict[str, Any]  # recipe.yaml as saved with the run (raw; only read for limits and names)
    histories: dict[str, list[dict]] = field(default_factory=dict)  # stage -> trainer_state.json log_history
    sources: dict[str, Path] = field(default_factory=dict)  # stage -> the trainer_state.json read
    steps: dict[str, int] = field(default_factory=dict)  # stage -> the optimizer steps that log was saved after
    evals: dict[str, dict] = field(default_factory=dict)  # label -> eval summary
    outdated: dict[str, str] = field(default_factory=dict)  # eval label -> why it measured a replaced model
    notes: dict[str, str] = field(default_factory=dict)  # stage -> what its log does not say (run.json)
    samples: list[dict] = field(default_factory=list)  # grpo/samples.jsonl
    health: list[str] = field(default_factory=list)  # grpo/health.log lines

    def trainer_setting(self, stage: str, key: str, default: Any = None) -> Any:
        """A ``trainer:`` value of a stage as the run's recipe set it, else ``default``."""
        section = self.recipe.get(stage) or {}
        return (section.get("trainer") or {}).get(key, default)

    def reward_names(self) -> list[str]:
        """The rewards the GRPO curves log, in the recipe's order (by TRL's names: functions' names)."""
        logged = {
            key[len("rewards/") : -len("/mean")]
            for row in self.histories.get("grpo", [])
            for key in row
            if key.startswith("rewards/") and key.endswith("/mean")
        }
        ordered = [reward_key(r.get("name", "")) for r in (self.recipe.get("grpo") or {}).get("rewards", [])]
        return [name for name in ordered if name in logged] + sorted(logged - set(ordered))


def reward_key(name: str) -> str:
    """The name TRL logs a reward under: the function's name (``module.py:function`` -> ``function``).

    >>> reward_key("accuracy"), reward_key("my_rewards.py:short_answers")
    ('accuracy', 'short_answers')
    """
    return name.rsplit(":", 1)[-1]


def run_labels(folders: list[Path]) -> list[str]:
    """One label per run folder: its name, with as many parent folders as it takes to tell runs apart.

    >>> run_labels([Path("runs/demo"), Path("runs/demo-seed1")])
    ['demo', 'demo-seed1']
    >>> run_labels([Path("a/runs/demo"), Path("b/runs/demo"), Path("b/runs/other")])
    ['a/runs/demo', 'b/runs/demo', 'other']
    """
    parts = [folder.resolve().parts for folder in folders]
    labels = [p[-1] for p in parts]
    for depth in range(2, max(len(p) for p in parts) + 1):
        clashing = {label for label in labels if labels.count(label) > 1}
        if not clashing:
            break
        labels = ["/".join(p[-depth:]) if label in clashing else label for p, label in zip(parts, labels, strict=True)]
    return labels


def trainer_state_of(stage_dir: Path) -> Path | None:
    """The newest log of a stage: the final ``trainer_state.json``, unless a checkpoint went further (the stage
    trains: for the first time, or again after ``max_steps`` was raised, when the final log is the earlier run's)."""
    final = stage_dir / "trainer_state.json"
    logs = [checkpoint / "trainer_state.json" for checkpoint in checkpoint_folders(stage_dir)]
    newest = next((path for path in reversed(logs) if path.is_file()), None)
    if not final.is_file():
        return newest
    if newest is not None and _state_step(newest) > _state_step(final):
        return newest
    return final


def _state_step(path: Path) -> int:
    """The step a ``trainer_state.json`` was saved at (-1 when it cannot be read: it is chosen by nothing)."""
    try:
        return trained_steps(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return -1


def trained_steps(state: dict) -> int:
    """The optimizer steps a trainer state was saved after: ``global_step``, else its last logged step.

    A stop between two logging steps (a preemption) saves steps the log does not reach yet.

    >>> trained_steps({"global_step": 7, "log_history": [{"step": 2}, {"step": 6}]})
    7
    >>> trained_steps({"log_history": [{"step": 2}, {"step": 6}]})
    6
    """
    if isinstance(state.get("global_step"), int):
        return state["global_step"]
    return max((row.get("step", 0) for row in state.get("log_history", [])), default=0)


def read_state(path: Path) -> tuple[list[dict], int]:
    """The ``log_history`` of a ``trainer_state.json`` and the steps it was saved after."""
    try:
        state = json.loads(path.read_text())
        return state.get("log_history", []), trained_steps(state)
    except (OSError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as error:
        raise RecipeError(f"{path} cannot be read as a trainer state ({error}); train the stage again") from None


def read_evals(folder: Path) -> dict[str, dict]:
    """The eval summaries of a run folder by label, base, sft and grpo first."""
    found = {}
    for path in sorted((folder / "eval").glob("*.json")):
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("skipping %s: not valid JSON", path)
            continue
        if isinstance(summary, dict) and "accuracy" in summary:
            found[path.stem] = summary
    return dict(sorted(found.items(), key=lambda item: (model_rank(item[0]), item[0])))


def model_rank(label: str) -> int:
    return MODEL_ORDER.index(label) if label in MODEL_ORDER else len(MODEL_ORDER)


def recorded_stages(folder: Path) -> dict[str, dict]:
    """The stages of a run's ``run.json`` (``recipe_cli.runs.read_record``); none when it cannot be read: the
    report still draws."""
    from recipe_cli.runs import read_record

    try:
        return read_record(folder / "run.json")["stages"]
    except (OSError, RecipeError):
        return {}


def outdated_evals(folder: Path, stages: dict[str, dict], evals: dict[str, dict]) -> dict[str, str]:
    """The evaluations of a stage's model (``sft``, ``grpo@<set>``) written before that stage last started
    training (``--overwrite``, or ``--resume`` to more steps): they measured the model it replaced, with why."""
    from datetime import datetime

    found = {}
    for label in evals:
        stage = label.split("@", 1)[0]
        entry = stages.get(stage)
        if stage not in TRAINING_STAGES or not isinstance(entry, dict) or not isinstance(entry.get("started_at"), str):
            continue
        try:
            started = datetime.strptime(entry["started_at"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            evaluated = (folder / "eval" / f"{label}.json").stat().st_mtime
        except (ValueError, OSError):
            continue
        if evaluated < started:
            found[label] = f"measured before {stage} trained again or further, from {entry['started_at']}"
    return found


def stage_notes(stages: dict[str, dict]) -> dict[str, str]:
    """What a stage's log does not say: GRPO trained from an SFT model that was trained again or further since."""
    from recipe_cli.runs import sft_identity

    grpo = stages.get("grpo")
    if isinstance(grpo, dict) and grpo.get("sft") is not None and grpo["sft"] != sft_identity({"stages": stages}):
        return {"grpo": "trained from an earlier SFT model (SFT was trained again or further since)"}
    return {}


def read_run(folder: Path, label: str | None = None) -> RunLogs:
    """Everything a run folder logged; a folder that holds no run is a user mistake."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecipeError(f"'{folder}' is not a folder; give a run folder such as runs/demo")
    saved = folder / "recipe.yaml"
    try:
        recipe = yaml.safe_load(saved.read_text()) if saved.is_file() else {}
    except yaml.YAMLError:
        recipe = {}
    run = RunLogs(label or folder.resolve().name, folder, recipe if isinstance(recipe, dict) else {})
    for stage in TRAINING_STAGES:
        state = trainer_state_of(folder / stage)
        if state is not None:
            run.histories[stage], run.steps[stage] = read_state(state)
            run.sources[stage] = state
    run.evals = read_evals(folder)
    stages = recorded_stages(folder)
    run.outdated, run.notes = outdated_evals(folder, stages, run.evals), stage_notes(stages)
    run.samples = read_samples(folder / "grpo" / SAMPLES_FILE)
    health = folder / "grpo" / "health.log"
    run.health = health.read_text().splitlines() if health.is_file() else []
    if not run.histories and not run.evals:
        raise RecipeError(
            f"'{folder}' holds no training log (sft/ or grpo/ trainer_state.json) and no evaluation (eval/*.json); "
            "give a run folder that `recipe run` wrote, e.g. runs/demo"
        )
    return run


def series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """The steps and finite values logged under ``key``, one per step (a later row of the same step wins).

    >>> series([{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": 1.0},
    ...         {"step": 3, "train_runtime": 9.0}], "loss")
    ([1, 3], [2.0, 1.0])
    """
    values = {}
    for row in history:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and "step" in row:
            values[row["step"]] = float(value)
    steps = sorted(values)
    return steps, [values[step] for step in steps]


def smoothing_window(points: int) -> int:
    """How many logged points a smoothed value averages: about a tenth of the curve, odd, 1 (none) below 10.

    >>> [smoothing_window(n) for n in (5, 18, 36, 180, 2000)]
    [1, 3, 3, 19, 51]
    """
    if points < 10:
        return 1
    window = min(max(3, points // 10), 51)
    return window if window % 2 else window + 1


def smooth(values: list[float], window: int) -> list[float]:
    """A centred moving average over ``window`` points (fewer at the ends), so a curve is not shifted in time.

    >>> smooth([0.0, 3.0, 0.0, 3.0, 0.0], 3)
    [1.5, 1.0, 2.0, 1.0, 1.5]
    >>> smooth([1.0, 2.0], 1)
    [1.0, 2.0]
    """
    if window <= 1:
        return list(values)
    half = window // 2
    out = []
    for i in range(len(values)):
        part = values[max(0, i - half) : i + half + 1]
        out.append(sum(part) / len(part))
    return out


def logging_every(steps: list[int]) -> str:
    """How often a curve was logged, in words.

    >>> logging_every([10, 20, 30]), logging_every([1, 2, 3]), logging_every([5, 10, 12]), logging_every([4])
    ('every 10 steps', 'every step', 'at 3 steps', 'at 1 step')
    """
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    if len(gaps) == 1:
        gap = gaps.pop()
        return "every step" if gap == 1 else f"every {gap} steps"
    return f"at {len(steps)} step{'s' if len(steps) != 1 else ''}"


def step_time_phases(history: list[dict]) -> list[str]:
    """The phases of a step whose time was logged (``step_time/<phase>``), in the order first logged.

    >>> step_time_phases([{"step_time": 1.0, "step_time/generation": 0.7, "step_time/rewards": 0.1}])
    ['generation', 'rewards']
    """
    phases = []
    for row in history:
        for key in row:
            if key.startswith(STEP_TIME_PREFIX) and key[len(STEP_TIME_PREFIX) :] not in phases:
                phases.append(key[len(STEP_TIME_PREFIX) :])
    return phases


def step_time_shares(history: list[dict]) -> dict[str, float]:
    """Each phase's share of the logged step time, over the whole run (the rest is ``other``).

    >>> step_time_shares([{"step": 1, "step_time": 2.0, "step_time/generation": 1.5},
    ...                   {"step": 2, "step_time": 2.0, "step_time/generation": 0.5}])
    {'generation': 0.5, 'other': 0.5}
    """
    from recipe_cli.step_time import OUTSIDE_TRL_STEP_TIME

    outside = sum(sum(series(history, STEP_TIME_PREFIX + phase)[1]) for phase in OUTSIDE_TRL_STEP_TIME)
    total = sum(series(history, STEP_TIME_KEY)[1]) + outside  # TRL's step time leaves recipe's callbacks out
    if total <= 0:
        return {}
    shares = {phase: sum(series(history, STEP_TIME_PREFIX + phase)[1]) / total for phase in step_time_phases(history)}
    if shares:
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def pick_sample_steps(steps: list[int]) -> dict[str, int]:
    """The logged steps the report shows completions of: the first, the middle and the last.

    >>> pick_sample_steps([10, 20, 30, 40, 50])
    {'start': 10, 'middle': 30, 'end': 50}
    >>> pick_sample_steps([10, 20])
    {'start': 10, 'end': 20}
    >>> pick_sample_steps([])
    {}
    """
    unique = sorted(set(steps))
    if not unique:
        return {}
    picks = {"start": unique[0], "middle": unique[len(unique) // 2], "end": unique[-1]}
    if len(unique) < 3:
        del picks["middle"]
    if len(unique) < 2:
        del picks["end"]
    return picks


def default_output(folders: list[Path]) -> Path:
    """Where a report goes: ``RUN/report`` for one run, ``<parent>/report-A-vs-B`` beside several.

    >>> default_output([Path("runs/demo")])
    PosixPath('runs/demo/report')
    >>> default_output([Path("runs/demo"), Path("runs/demo-seed1")])
    PosixPath('runs/report-demo-vs-demo-seed1')
    """
    if len(folders) == 1:
        return folders[0] / "report"
    labels = [label.replace("/", "-") for label in run_labels(folders)]
    return folders[0].parent / ("report-" + "-vs-".join(labels))


@dataclass(frozen=True)
class Report:
    """A written report: its Markdown page and the plots beside it."""

    path: Path
    plots: list[Path]


def write_report(
    folders: list[Path], output: Path | None = None, command: str = "recipe report", holds_lock: bool = False
) -> Report:
    """Read the run folders, draw the plots and write ``report.md`` into ``output``.

    A report written into a run folder (``RUN/report``, or an ``--output`` inside a run) holds that run's
    lock, as every writer of a run folder does (``holds_lock``: the caller holds it, ``recipe run``;
    ``command`` names the holder); while a run trains, one is written elsewhere with ``--output``.
    Nothing is created for a folder that holds no run, and a report that fails removes the folders it
    created.
    """
    if not folders:
        raise RecipeError("give at least one run folder, e.g. `recipe report runs/demo`")
    folders = [Path(folder) for folder in folders]
    if len({folder.resolve() for folder in folders}) < len(folders):
        raise RecipeError("a run folder is given twice; give each run once")
    runs = [read_run(folder, label) for folder, label in zip(folders, run_labels(folders), strict=True)]
    output = Path(output) if output is not None else default_output(folders)
    from recipe_cli.lock import RunLock
    from recipe_cli.plots import write_plots

    if output.exists() and not output.is_dir():
        raise RecipeError(f"the report folder {output} is a file; give --output a folder (or remove the file)")
    run = _enclosing_run(output, folders)
    with contextlib.ExitStack() as locks:
        if run is not None and not holds_lock:  # before anything is written into the run folder
            elsewhere = "give --output a folder outside it" if "--output" in command else f"{command} --output DIR"
            locks.enter_context(RunLock(run, command, busy=f"while it works, write the report elsewhere: {elsewhere}"))
        try:
            with made_folder(output):  # nothing half-written: a failed report removes the folders it made
                plots = write_plots(runs, output)
                path = output / "report.md"
                write_atomic(path, render_report(runs, {name: p.name for name, p in plots.items()}))
        except OSError as error:
            raise _unwritable(output, error) from None
    return Report(path, list(plots.values()))


def _enclosing_run(output: Path, folders: list[Path]) -> Path | None:
    """The run folder ``output`` lies in: one of the reported runs, or a folder above it with a ``run.json``."""
    resolved = output.resolve()
    for folder in folders:
        if folder.resolve() == resolved or folder.resolve() in resolved.parents:
            return folder
    return next((folder for folder in resolved.parents if (folder / "run.json").is_file()), None)


def _unwritable(output: Path, error: OSError) -> RecipeError:
    reason = unwritable_reason(output, error)
    return RecipeError(f"cannot write the report into {output} ({reason}); give --output a folder you can write")


def render_report(runs: list[RunLogs], plots: dict[str, str]) -> str:
    """The Markdown report: evaluations, curves (plots by name -> relative path), samples, health."""
    names = ", ".join(f"`{run.label}`" for run in runs)
    title = f"# Run report: {runs[0].label}" if len(runs) == 1 else f"# Runs compared: {names}"
    lines = [title, ""]
    lines += [
        "Made by `recipe report` from "
        + ", ".join(f"`{run.folder}`" for run in runs)
        + ": each stage's `trainer_state.json`, `eval/*.json` and `grpo/samples.jsonl`."
        + (" Curves are overlaid, one colour per run." if len(runs) > 1 else ""),
        "In the plots the solid lines are smoothed (a centred moving average over about a tenth of the logged "
        "points) and the faint lines behind them are the values as logged.",
        "",
        "## Evaluation",
        "",
        *eval_table(runs),
        "",
    ]
    lines += embed_plots(plots, ["eval"])
    for stage, title in (("sft", "SFT"), ("grpo", "GRPO")):
        if not any(stage in run.histories for run in runs):
            continue
        lines += [f"## {title}", "", *[f"- {describe_log(run, stage)}" for run in runs if stage in run.histories], ""]
        lines += embed_plots(plots, [name for name in PLOT_ALT if name.split("_")[0] == stage])
        if stage == "grpo":
            lines += step_time_table(runs)
    lines += samples_section(runs)
    lines += health_section(runs)
    return "\n".join(lines).rstrip() + "\n"


def embed_plots(plots: dict[str, str], names: list[str]) -> list[str]:
    """Markdown images of the named plots that were drawn (name -> relative path), each with a blank line after.

    >>> embed_plots({"eval": "eval.png"}, ["eval", "sft"])
    ['![Accuracy, format rate and truncation of each evaluated model](eval.png)', '']
    """
    return [line for name in names if name in plots for line in (f"![{PLOT_ALT[name]}]({plots[name]})", "")]


def describe_log(run: RunLogs, stage: str) -> str:
    """Where a stage's curves come from and how often they were logged."""
    history = run.histories[stage]
    steps = sorted({row["step"] for row in history if "step" in row and ("loss" in row or "reward" in row)})
    source = run.sources[stage]
    where = "" if source.parent.name == stage else f" (unfinished: read from `{source.parent.name}`)"
    last = run.steps.get(stage, max((row.get("step", 0) for row in history), default=0))
    logged = f"logged {logging_every(steps)}" if steps else "no step logged (raise logging_steps' frequency)"
    prefix = f"`{run.label}`: " if run.label else ""
    memory = describe_peaks(history)
    note = f"; {run.notes[stage]}" if stage in run.notes else ""
    return f"{prefix}{last} steps{where}, {logged}" + (f", {memory}" if memory else "") + note


def _percent(value: Any) -> str:
    return "" if not isinstance(value, (int, float)) else f"{value:.1%}"


def eval_table(runs: list[RunLogs]) -> list[str]:
    """One row per run and evaluated model: accuracy (greedy, headline mode), format, truncation, length."""
    if not any(run.evals for run in runs):
        return ["No evaluation was run (the recipe has no `eval:` section, or `recipe eval` was not run)."]
    several = len(runs) > 1
    head = ["run"] * several + ["model", "n", "accuracy", "strict", "flexible", "format", "truncated", "tokens"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        for label, summary in run.evals.items():
            limit = f" (--limit {summary['limit']})" if summary.get("limit") is not None else ""
            outdated = " (outdated*)" if label in run.outdated else ""
            cells = [run.label] * several + [
                label + limit + outdated,
                str(summary.get("n", "")),
                _percent(summary.get("accuracy")) + f" ({summary.get('accuracy_mode', 'flexible')})",
                _percent(summary.get("accuracy_strict")),
                _percent(summary.get("accuracy_flexible")),
                _percent(summary.get("format_rate")),
                _percent(summary.get("truncation_rate")),
                f"{summary['mean_completion_tokens']:.1f}" if "mean_completion_tokens" in summary else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Greedy decoding. accuracy: the headline mode (strict when the accuracy reward trains strict); "
        f"{MODE_LEGEND}; format: <think> then <answer>; truncated: reached max_new_tokens; tokens: mean completion "
        "length.",
    ]
    lines += different_problems(runs)
    outdated = [(run, label, why) for run in runs for label, why in run.outdated.items()]
    if outdated:
        lines += ["", "\\* Outdated: these evaluations measured a model that has been replaced since; "]
        lines[-1] += "`recipe eval` measures the current one:"
        lines += [""] + [f"- {f'`{run.label}` ' if several else ''}{label}: {why}" for run, label, why in outdated]
    return lines


def different_problems(runs: list[RunLogs]) -> list[str]:
    """A note for each eval set that the runs' full evaluations measured on different problems (another dataset
    split, ``max_samples`` or data version): their accuracies then differ by the problems too. A run whose own
    evaluations differ is named with its models."""
    digests: dict[str, dict[str, dict[str, list[str]]]] = {}  # eval set -> problems' digest -> run -> its models
    for run in runs:
        for label, summary in run.evals.items():
            if summary.get("problems") and summary.get("limit") is None:
                sets = digests.setdefault(summary.get("eval_set", ""), {})
                sets.setdefault(summary["problems"], {}).setdefault(run.label, []).append(label)
    lines = []
    for eval_set, groups in digests.items():
        if len(groups) > 1:
            split = {run for group in groups.values() for run in group if sum(run in g for g in groups.values()) > 1}
            named = "; ".join(
                ", ".join(
                    f"`{run}`" + (f" ({', '.join(sorted(models))})" if run in split else "")
                    for run, models in sorted(group.items())
                )
                for group in groups.values()
            )
            lines += ["", f"Different problems: the evaluations measured different problems on {eval_set} ({named}), "]
            lines[-1] += "so their accuracies differ by the problems as well as by the models."
    return lines


def step_time_table(runs: list[RunLogs]) -> list[str]:
    """The share of the step time each logged phase took, per run (only when phases were logged)."""
    shares = {run.label: step_time_shares(run.histories.get("grpo", [])) for run in runs}
    shares = {label: found for label, found in shares.items() if found}
    if not shares:
        return []
    phases = list(dict.fromkeys(phase for found in shares.values() for phase in found))
    lines = ["Share of each GRPO step's time:", "", "| run | " + " | ".join(phases) + " |"]
    lines.append("|---|" + "---|" * len(phases))
    for label, found in shares.items():
        lines.append(f"| {label} | " + " | ".join(_percent(found.get(phase)) for phase in phases) + " |")
    return [*lines, ""]


def samples_section(runs: list[RunLogs]) -> list[str]:
    """A few completions at the start, middle and end of GRPO, with what each reward paid."""
    if not any(run.samples for run in runs):
        if any("grpo" in run.histories for run in runs):
            return ["## Samples", "", "No completions were kept (`grpo/samples.jsonl` is missing or empty).", ""]
        return []
    lines = [
        "## Samples",
        "",
        f"Completions as generated during GRPO (the first {COMPLETIONS_SHOWN} of a prompt's group, not the best), "
        "with each reward's score, the weighted reward GRPO trained on and the completion's advantage "
        "(its reward against its group's).",
        "",
    ]
    for run in runs:
        for point, step in pick_sample_steps([record["step"] for record in run.samples]).items():
            records = [record for record in run.samples if record["step"] == step]
            group = records[0].get("group")
            shown = [record for record in records if record.get("group") == group][:COMPLETIONS_SHOWN]
            prefix = f"{run.label}, " if len(runs) > 1 else ""
            lines += [f"### {prefix}step {step} ({point})", "", "Prompt:", "", *_fenced(shown[0]["prompt"]), ""]
            for number, record in enumerate(shown, 1):
                lines += [f"Completion {number}:", "", *_fenced(record["completion"]), "", describe_scores(record), ""]
    return lines


def _fenced(text: str) -> list[str]:
    """Text in a fenced block that its own backticks cannot close."""
    fence = "```"
    while fence in text:
        fence += "`"
    return [fence + "text", text, fence]


def describe_scores(record: dict) -> str:
    """One line of a kept completion's rewards.

    >>> describe_scores({"rewards": {"accuracy": 1.0, "format": None}, "reward": 1.0, "advantage": 0.42})
    'accuracy 1, format None (not scored) -> reward 1, advantage +0.42'
    """
    scores = ", ".join(
        f"{name} {score:g}" if score is not None else f"{name} None (not scored)"
        for name, score in record.get("rewards", {}).items()
    )
    reward, advantage = record.get("reward"), record.get("advantage")
    total = f" -> reward {reward:g}" if reward is not None else " -> no reward"
    edge = f", advantage {advantage:+.2f}" if advantage is not None else ""
    return f"{scores}{total}{edge}"


def health_section(runs: list[RunLogs]) -> list[str]:
    """GRPO's health warnings (``grpo/health.log``), when any fired."""
    lines = []
    for run in runs:
        if run.health:
            prefix = f" of `{run.label}`" if len(runs) > 1 else ""
            lines += [f"## Health warnings{prefix}", "", *[f"- {line}" for line in run.health], ""]
    return lines


def write_card_plots(run_dir: Path, stage: str, checkpoint: Path | None, folder: Path) -> dict[str, Path]:
    """The plots a model card embeds: the evals, and the curves up to the pushed stage, from the pushed folder's log.

    A card without plots is still a card: a run with nothing logged, or no matplotlib, gives none
    (and says why in the log).
    """
    try:
        run = read_run(run_dir)
    except RecipeError as error:
        log.warning("the model card has no plots: %s", error)
        return {}
    shown = TRAINING_STAGES[: TRAINING_STAGES.index(stage) + 1] if stage in TRAINING_STAGES else TRAINING_STAGES
    run.histories = {name: history for name, history in run.histories.items() if name in shown}
    run.evals = {label: summary for label, summary in run.evals.items() if label not in run.outdated}
    if checkpoint is not None and (checkpoint / "trainer_state.json").is_file():
        run.histories[stage], run.steps[stage] = read_state(checkpoint / "trainer_state.json")
        run.sources[stage] = checkpoint / "trainer_state.json"
    from recipe_cli.plots import write_plots

    try:
        return write_plots([run], folder)
    except RecipeError as error:
        log.warning("the model card has no plots: %s", error)
        return {}
