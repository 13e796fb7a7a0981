"""What the command line shows: rich rendering of plans, progress, tables and results, in one place.

The library reports through a ``Reporter`` (``recipe_cli.pipeline``) and returns results; this
module turns them into text. On ranks other than the main process the consoles are quiet, so a
multi-process run prints each line once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def quiet() -> None:
    """Print nothing from this process (a rank other than the main process)."""
    console.quiet = err_console.quiet = True


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


def stopped(message: str) -> None:
    err_console.print(f"[bold yellow]stopped:[/] {message}", markup=True, soft_wrap=True)


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
        """A progress bar for one evaluation: ``start(label, total)`` then ``advance(n)``."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
        ]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            yield _EvalBar(progress)

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

    def finished(self, name: str, seconds: float) -> None:
        console.print(f"[bold green]run {name} finished[/] in {seconds:.0f} s")


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
    converted = f" (converted from the checkpoint's {plan.converted_from})" if plan.converted_from else ""
    console.print(f"weights in {plan.dtype}{converted}; set push.dtype to publish another dtype")
    console.print(f"model card written to {plan.card_path}")
    console.print("nothing was uploaded (dry run)")


def print_pushed(result) -> None:
    console.print(
        f"[green]pushed[/] {result.files} files ({result.total_bytes / 1e6:.1f} MB) to "
        f"{result.repo_id} @ {result.revision}: {result.commit_url}"
    )


def data_steps_table(prepared) -> Table:
    """A stage's data chain, one row per step: rows in, what it removed and why, rows out."""
    table = Table(title=f"{prepared.stage} data, step by step (seed {prepared.seed})", title_justify="left")
    table.add_column("step")
    table.add_column("rows in", justify="right")
    table.add_column("removed")
    table.add_column("rows out", justify="right")
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
