"""What the command line shows: rich rendering of plans, progress, tables and results, in one place.

The library reports through a ``Reporter`` (``recipe_cli.pipeline``) and returns results; this
module turns them into text. On ranks other than the main process the consoles are quiet, so a
multi-process run prints each line once.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from recipe_cli.peak_memory import GPU_KEY, RSS_KEY

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


# Libraries whose deprecation notices name their own internals (e.g. transformers' `is_gradient_checkpointing`
# on every generate and save): the user can act on none of them, so they are silenced once, at start-up.
LIBRARIES = r"(transformers|trl|peft|accelerate|datasets|torch|huggingface_hub)(\.|$)"


def silence_library_warnings() -> None:
    """Once, at start-up: no deprecation notices the user cannot act on."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)


def quiet_libraries() -> None:
    """Keep the console for what matters: no per-file loading bars or library chatter below warnings."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def quiet_dataset_progress() -> None:
    """No "Generating train split" bars from ``datasets`` (``recipe validate`` measures local files through it),
    without importing it where nothing else does: ``datasets`` reads the variable when it is first imported."""
    import os
    import sys

    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    else:
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"


def quiet() -> None:
    """Print nothing from this process (a rank other than the main process)."""
    console.quiet = err_console.quiet = True


def error(message: str) -> None:
    """A user mistake, one line; the message is plain text (``[accuracy_reward]`` stays as written)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)


def stopped(message: str) -> None:
    err_console.print(f"[bold yellow]stopped:[/] {escape(message)}", markup=True, soft_wrap=True)


class ConsoleReporter:
    """Progress of a pipeline on the console: stage rules, stage results, evaluations, pushes."""

    def stage_skipped(self, stage: str, output: str, forced: bool) -> None:
        if forced:
            console.print(f"[yellow]{stage} already finished[/] with other settings, kept by --force: {output}")
        else:
            console.print(f"[green]{stage} already finished[/] with these settings: checkpoint in {output}")

    def stage_started(self, stage: str, name: str, resuming: Path | None, world_size: int) -> None:
        resumed = f" (resuming {resuming.name})" if resuming else ""
        ranks = f" on {world_size} processes" if world_size > 1 else ""
        console.rule(f"[bold]{stage}[/] {name}{resumed}{ranks}")

    def stage_done(self, stage: str, seconds: float, output: Path) -> None:
        console.print(f"[green]{stage} done[/] in {seconds:.0f} s: checkpoint in {output}")

    @contextmanager
    def eval_progress(self):
        """Progress of one evaluation, ``start(label, total)`` then ``advance(n)``: a bar on a terminal,
        a line every ``PROGRESS_EVERY`` seconds elsewhere (pipes, Slurm logs)."""
        if not err_console.is_terminal:
            yield _PeriodicLines("samples")
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
        with Progress(*columns, console=err_console, transient=True) as progress:
            yield _EvalBar(progress)

    def training_progress(self):
        """Progress of a training stage: one compact line per log, and a step bar on a terminal."""
        return _TrainingProgress()

    def evaluated(self, summary: dict) -> None:
        sampled = summary["sampled"]
        extra = ""
        if sampled:
            k = max(int(key) for key in sampled["pass@k"])
            extra = f", pass@{k} {sampled['pass@k'][str(k)]:.1%}, maj@{k} {sampled['maj@k'][str(k)]:.1%}"
        console.print(
            f"eval {summary['label']}: accuracy {summary['accuracy']:.1%} "
            f"(greedy, {summary.get('accuracy_mode', 'flexible')}){extra} on {summary['n']} problems "
            f"({summary['backend']}, {summary['samples_per_second']} samples/s, "
            f"{summary['tokens_per_second']} tokens/s)"
        )

    def eval_table(self, summaries: list[dict]) -> None:
        print_eval_table(summaries)

    def pushed(self, result) -> None:
        print_pushed(result)

    def report_written(self, report) -> None:
        print_report(report)

    def finished(self, name: str, seconds: float) -> None:
        console.print(f"[bold green]run {name} finished[/] in {seconds:.0f} s")


PROGRESS_EVERY = 30.0  # seconds between progress lines where there is no terminal to redraw a bar on


class _PeriodicLines:
    """Progress as a plain line now and then, for output that is not a terminal."""

    def __init__(self, unit: str):
        self.unit, self.name, self.total, self.done = unit, "", 0, 0
        self.started = self.last = 0.0

    def start(self, name: str, total: int, done: int = 0):
        self.name, self.total, self.done = name, total, done
        self.started = self.last = time.perf_counter()

    def advance(self, n: int):
        self.update(self.done + n)

    def update(self, done: int):
        self.done = done
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            speed = f"{rate:.1f}/s" if rate >= 1 else f"{1 / rate:.1f} s each" if rate else "starting"
            console.print(f"{self.name}: {self.done}/{self.total} {self.unit} ({speed})")


class _TrainingProgress:
    """What a training stage shows: compact log lines, and a bar of steps on a terminal."""

    def __init__(self):
        self.bar = None
        self.lines = None

    def start(self, stage: str, max_steps: int, first_step: int):
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(stage),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(stage, total=max_steps, completed=first_step)
        else:
            self.lines = _PeriodicLines("steps")
            self.lines.start(stage, max_steps, first_step)

    def advance(self, step: int):
        if self.bar is not None:
            self.bar.update(self.task, completed=step)
        elif self.lines is not None:
            self.lines.update(step)

    def logged(self, stage: str, step: int, max_steps: int, logs: dict, seconds_per_step: float):
        line = step_line(stage, step, max_steps, logs, seconds_per_step)
        (self.bar.console if self.bar is not None else console).print(line, markup=False)

    def end(self):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _short(value: float) -> str:
    """A logged number in few characters: 3 significant digits, scientific for small and large ones.

    >>> _short(0.53214), _short(12.0), _short(0.000987), _short(1234.5)
    ('0.532', '12', '9.87e-04', '1.23e+03')
    """
    if value == 0 or 1e-3 <= abs(value) < 1e3:
        return f"{value:.3g}"
    return f"{value:.2e}"


def step_line(stage: str, step: int, max_steps: int, logs: dict, seconds_per_step: float) -> str:
    """One compact line for a training log: what moved, and how fast (full numbers stay in trainer_state.json).

    >>> step_line("grpo", 10, 180, {"loss": 0.01, "learning_rate": 1e-4, "reward": 0.8, "rewards/accuracy/mean": 0.6,
    ...     "rewards/format/mean": 1.0, "completions/mean_length": 31.5, "completions/clipped_ratio": 0.05}, 2.61)
    'grpo 10/180  loss 0.01  reward 0.8 (accuracy 0.6, format 1)  len 31.5 (5% cut)  lr 1.00e-04  2.61 s/step'
    >>> step_line("sft", 100, 800, {"loss": 1.2345, "learning_rate": 0.00098, "mean_token_accuracy": 0.61}, 0.15)
    'sft 100/800  loss 1.23  token acc 0.61  lr 9.80e-04  0.15 s/step'
    >>> step_line("sft", 5, 9, {"loss": 1.0, "memory/peak_rss_gib": 2.5, "memory/peak_gpu_gib": 31.25}, 0.5)
    'sft 5/9  loss 1  0.50 s/step  peak 31.2 GiB GPU'
    """
    parts = [f"{stage} {step}/{max_steps}", f"loss {_short(logs['loss'])}"]
    rewards = {
        key[len("rewards/") : -len("/mean")]: value
        for key, value in logs.items()
        if key.startswith("rewards/") and key.endswith("/mean")
    }
    if "reward" in logs:
        each = ", ".join(f"{name} {_short(value)}" for name, value in rewards.items())
        parts.append(f"reward {_short(logs['reward'])}" + (f" ({each})" if each else ""))
    if "mean_token_accuracy" in logs:
        parts.append(f"token acc {_short(logs['mean_token_accuracy'])}")
    if "completions/mean_length" in logs:
        cut = logs.get("completions/clipped_ratio")
        parts.append(f"len {_short(logs['completions/mean_length'])}" + (f" ({cut:.0%} cut)" if cut else ""))
    for key, value in logs.items():
        if key == "kl" or key.startswith("divergence/"):
            parts.append(f"{key.removeprefix('divergence/')} {_short(value)}")
    if "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.2e}")
    parts.append(f"{seconds_per_step:.2f} s/step")
    if GPU_KEY in logs or RSS_KEY in logs:  # the device's memory where training runs on one, else the process's
        parts.append(f"peak {logs[GPU_KEY]:.1f} GiB GPU" if GPU_KEY in logs else f"peak {logs[RSS_KEY]:.1f} GiB")
    return "  ".join(parts)


class _EvalBar:
    def __init__(self, progress):
        self.progress, self.task, self.started = progress, None, 0.0

    def start(self, name: str, total: int):
        self.started = time.perf_counter()
        self.task = self.progress.add_task(f"eval {name}", total=total, rate="")

    def advance(self, n: int):
        self.progress.advance(self.task, n)
        done = self.progress.tasks[self.task].completed
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, rate=f"{rate:.1f} samples/s")


def print_eval_table(summaries: list[dict]) -> None:
    """One table per eval set across the evaluated models: greedy accuracy, then pass@k and maj@k where sampled."""
    sets = list(dict.fromkeys(s.get("eval_set") for s in summaries))
    if len(sets) > 1:
        for name in sets:
            _print_eval_table([s for s in summaries if s.get("eval_set") == name], f"Evaluation: {name}")
        return
    _print_eval_table(summaries, "Evaluation")


def _print_eval_table(summaries: list[dict], title: str) -> None:
    from recipe_cli.answers import MODE_LEGEND

    ks = sorted({int(k) for s in summaries if s.get("sampled") for k in s["sampled"]["pass@k"]})
    table = Table(title=title)
    table.add_column("model", overflow="fold", min_width=min(max(len(s["label"]) for s in summaries), 16))
    # the accuracy mode the headline is not: flexible next to a strict headline, else strict
    mode = next((s["accuracy_mode"] for s in summaries if "accuracy_mode" in s), "flexible")
    other = "flexible" if mode == "strict" else "strict"
    numeric = ["n", "accuracy", other, *[f"pass@{k}" for k in ks], *[f"maj@{k}" for k in ks if k > 1]]
    numeric += ["format", "trunc", "tokens", "samp/s"]
    for column in numeric:
        table.add_column(column, justify="right", overflow="fold")
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
        f"{MODE_LEGEND}"
    )
    if ks:
        legend += "; pass@k: unbiased estimate from the samples; maj@k: majority vote of the first k samples"
    console.print(legend)
    for s in summaries:
        console.print(f"  {s['label']}: {s['model']} ({s['backend']})")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


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
    table.add_column("completion", overflow="fold")  # folded, never cut with an ellipsis at 80 columns
    for row in report.rows:
        table.add_column(row.label, justify="right", overflow="fold")  # a reward file's path can be long
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


def print_push_plan(plan) -> None:
    """What a push would upload: each file and its size, the target, where the card was written."""
    kind = "LoRA adapter" if plan.lora else "full weights"
    table = Table(title=f"dry run: {plan.repo_id} @ {plan.revision} ({plan.stage} checkpoint, {kind})")
    table.add_column("file", overflow="fold")  # folded, never cut with an ellipsis at 80 columns
    table.add_column("bytes", justify="right", overflow="fold")
    for file in plan.files:
        table.add_row(file.path_in_repo, f"{file.size:,}")
    table.add_row(f"[bold]{len(plan.files)} files[/]", f"[bold]{plan.total_bytes:,}[/]")
    console.print(table)
    console.print(f"from {plan.checkpoint}; the branch is created from main if missing")
    converted = f" (converted from the checkpoint's {plan.converted_from})" if plan.converted_from else ""
    console.print(f"weights in {plan.dtype}{converted}; set push.dtype to publish another dtype")
    console.print(f"model card written to {plan.card_path}")
    console.print("nothing was uploaded (dry run)")


def print_pushed(result) -> None:
    console.print(
        f"[green]pushed[/] {result.files} files ({result.total_bytes / 1e6:.1f} MB) to "
        f"{result.repo_id} @ {result.revision}: {result.commit_url}"
    )


def print_report(report) -> None:
    """Where a report and its plots were written."""
    console.print(f"[green]report[/] written to {report.path}")
    for plot in report.plots:
        console.print(f"  {plot}")


def data_steps_table(prepared) -> Table:
    """A stage's data chain, one row per step: rows in, what it removed and why, rows out."""
    table = Table(title=f"{prepared.stage} data, step by step (seed {prepared.seed})", title_justify="left")
    table.add_column("step", overflow="fold")  # folded, never cut with an ellipsis at 80 columns
    table.add_column("rows in", justify="right", overflow="fold")
    table.add_column("removed", overflow="fold")
    table.add_column("rows out", justify="right", overflow="fold")
    for step in prepared.steps:
        removed = "; ".join(f"{count} {reason}" for reason, count in step.removed.items()) or "-"
        table.add_row(step.step, str(step.rows_in), removed, str(step.rows_out))
    return table


def data_step_notes(prepared) -> list[str]:
    """What a step measured beyond its counts: the source, the benchmarks compared, the pass-rate histogram."""
    lines = []
    for step in prepared.steps:
        details = step.details
        if step.step == "read":
            shuffled = f", shuffled ({details['shuffled']})" if "shuffled" in details else ""
            lines.append(f"read: {details['source']}{shuffled}")
        if step.step == "decontamination":
            against = ", ".join(f"{name} ({n} questions)" for name, n in details.get("benchmarks", {}).items())
            lines.append(f"decontamination: {details['rule']} against {against or 'nothing'}")
        if step.step == "pass rate" and "histogram" in details:
            histogram = ", ".join(f"{bucket}: {n}" for bucket, n in details["histogram"].items())
            lines.append(
                f"pass rate ({details['samples']} samples from {details['model']}; kept "
                f"{details['min_pass_rate']:g}-{details['max_pass_rate']:g}): {histogram}; "
                f"{details['sampled']} prompts sampled, the rest from the cache"
            )
        if "note" in details:
            lines.append(f"{step.step}: {details['note']}")
    return lines


def print_data_report(prepared, written: tuple[Path, Path] | None) -> None:
    """``recipe data``: the step table, the notes, and where the rows and the report went."""
    console.print(data_steps_table(prepared))
    for line in data_step_notes(prepared):
        console.print(line)
    if written is not None:
        console.print(f"[green]{len(prepared.rows)} rows[/] in {written[0]}; report in {written[1]}")


def print_recipe_plan(plan) -> None:
    """``recipe validate``'s plan (``recipe_cli.plan.RecipePlan``)."""
    console.print(f"[bold]{escape(plan.name)}[/]: {escape(plan.summary)}")
    console.print(f"precision: {escape(plan.precision)}")
    if plan.precision_note:
        console.print(f"[yellow]note:[/] {escape(plan.precision_note)}")
    console.print(f"launch: {escape(plan.launch)}")
    console.print(f"run folder: {escape(str(plan.run_folder))}")
    if plan.downloads:
        console.print(f"[yellow]not on this machine:[/] {escape(plan.downloads)}")
    for warning in plan.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    console.print("stages: " + " -> ".join(plan.stages))
    for line in [*plan.data, *([plan.decoding] if plan.decoding else []), *plan.grpo]:
        console.print(escape(line))
    for stage, class_name, settings in plan.settings:
        table = Table(title=f"{stage}: {class_name} settings that differ from TRL's defaults", title_justify="left")
        table.add_column("setting", overflow="fold")
        table.add_column("value", overflow="fold")
        table.add_column("TRL default", overflow="fold")
        for key, (value, default) in settings.items():
            table.add_row(escape(key), escape(repr(value)), escape(repr(default)))
        console.print(table)
    _print_prompt(plan.prompt)
    if plan.length_budget is not None:
        _print_length_budget(plan.length_budget)


def print_training_plan(plan) -> None:
    """What ``--dry-run`` found (``recipe_cli.plan.TrainingPlan``), stage by stage."""
    lora = f", LoRA trains {plan.trainable:,}" if plan.trainable is not None else ""
    console.print(f"[bold]{escape(plan.name)}[/] dry run: model {plan.params:,} parameters{lora}")
    console.print(f"precision here: {escape(plan.precision)}")
    console.print(f"launch: {escape(plan.launch)}")
    if plan.machine_problem:
        console.print(f"[bold yellow]on this machine:[/] {escape(plan.machine_problem)}")
    if plan.precision_note:
        console.print(f"[yellow]note:[/] {escape(plan.precision_note)}")
    for stage in plan.stages:
        console.rule(f"[bold]{stage.stage}[/] plan")
        console.print(data_steps_table(stage.prepared))
        for line in data_step_notes(stage.prepared):
            console.print(escape(line))
        console.print(f"data: {len(stage.prepared.rows)} {stage.stage} rows kept of {stage.prepared.read} read")
        for line in stage.template:
            console.print(f"chat template: {escape(line)}")
        if stage.prompt is not None:
            _print_prompt(stage.prompt)
        if stage.example is not None:
            legend = r"([dim]\[masked][/] prompt tokens, [bold green]trained-on[/] tokens)"
            console.print(f"[bold]one tokenised example[/] {legend}:")
            console.print(_loss_mask(stage.example), soft_wrap=False)
        for line in stage.facts:
            console.print(escape(line))
        console.print(_memory_table(stage.memory))
        from recipe_cli.plan import MEMORY_ASSUMPTIONS

        console.print(f"[dim]{MEMORY_ASSUMPTIONS}[/]")
        console.print(_disk_line(stage.disk))
        for misfit in stage.misfits:
            console.print(f"[bold yellow]misfit:[/] {escape(misfit)}")
        if not stage.misfits:
            console.print("no misfits found")
        for risk in stage.risks:
            console.print(f"[yellow]risk:[/] {escape(risk)}")
    from recipe_cli.plan import format_bytes

    if plan.disk_warning is not None:
        console.print(f"[bold yellow]warning:[/] disk: {escape(plan.disk_warning)}")
    else:
        console.print(f"disk: the planned stages: up to {format_bytes(plan.disk)} in {escape(str(plan.run_folder))}")
    if plan.length_budget is not None:
        console.rule("[bold]length budget[/]")
        _print_length_budget(plan.length_budget)


def _disk_line(disk) -> str:
    """A stage's disk footprint (``recipe_cli.disk.DiskPlan``) in one line."""
    from recipe_cli.plan import format_bytes

    return (
        f"disk: checkpoint-N {format_bytes(disk.checkpoint)} (weights {format_bytes(disk.weights)}, optimizer "
        f"state {format_bytes(disk.optimizer)}), up to {disk.checkpoints} at once; final model "
        f"{format_bytes(disk.final)}: at most {format_bytes(disk.total)}"
    )


def _print_prompt(prompt: str) -> None:
    console.print("[bold]one prompt, as the model sees it:[/]")
    console.print(Text(prompt), soft_wrap=False)  # wrapped at any width, never cropped


def _print_length_budget(budget) -> None:
    console.print(escape(budget.summary))
    for warning in budget.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if budget.verdict:
        console.print(escape(budget.verdict))


def _loss_mask(example) -> Text:
    """The example token by token: masked prompt tokens dim in [brackets], trained-on tokens in bold."""
    trained = len(example.pieces) - example.prompt_tokens
    text = Text(f"{len(example.pieces)} tokens: {example.prompt_tokens} masked (no loss), {trained} trained on\n")
    for index, piece in enumerate(example.pieces):
        piece = piece.replace("\n", "\\n")
        if index < example.prompt_tokens:
            text.append(f"[{piece}]", style="dim")
        else:
            text.append(piece, style="bold green")
        text.append("|")
    return text


def _memory_table(memory) -> Table:
    """A stage's memory estimate (``recipe_cli.plan.MemoryEstimate``), part by part."""
    from recipe_cli.plan import format_bytes

    table = Table(title=escape(memory.title), title_justify="left")
    table.add_column("part", overflow="fold")
    table.add_column("size", justify="right", overflow="fold")
    for part, size in memory.parts.items():
        table.add_row(part, format_bytes(size))
    table.add_row("total", format_bytes(memory.total))
    return table


def print_translation(translation, path) -> None:
    """What ``recipe_cli.foreign`` did with an open-r1 or TRL file: each key's translation, the defaults that
    changed since the release it was written for, and what was not carried over."""
    console.print(f"[bold]{escape(str(path))}[/] is {escape(translation.describe())}; read as this recipe:")
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("key", overflow="fold", style="cyan")
    table.add_column("in the recipe", overflow="fold")
    for note in translation.notes:
        if note.kind in ("translated", "meaning"):
            table.add_row(escape(note.key), escape(note.becomes))  # keys such as grpo.rewards[cosine]
    console.print(table)
    defaults = translation.of_kind("default")
    if defaults:
        kept = translation.old_defaults
        title = f"defaults that changed since {translation.written_for}" + (
            " (kept: --old-defaults)" if kept else " (the new ones are used; --old-defaults keeps the old)"
        )
        changed = Table(title=title, title_justify="left", box=None, pad_edge=False)
        changed.add_column("setting", overflow="fold", style="cyan")
        changed.add_column("was", overflow="fold")
        changed.add_column("now", overflow="fold")
        changed.add_column("", overflow="fold", style="dim")
        for note in defaults:
            changed.add_row(escape(note.key), escape(repr(note.old)), escape(repr(note.new)), escape(note.becomes))
        console.print(changed)
    for note in translation.of_kind("dropped"):
        console.print(f"[yellow]not carried over:[/] {escape(note.key)}: {escape(note.becomes)}")
