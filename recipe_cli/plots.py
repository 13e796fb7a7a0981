"""PNG plots of what runs logged, drawn with matplotlib's Agg canvas (files only, no display, no pyplot state).

matplotlib is imported here only, when a report or a model card is written, so ``recipe --help``
and ``recipe validate`` never load it. Every curve is drawn twice: the values as logged, faint,
and a centred moving average over about a tenth of the points on top (``recipe_cli.report.smooth``);
curves of fewer than 10 logged points are drawn as logged, with markers. With several runs each
run has one colour, named in a legend above the panels; line styles tell a panel's curves apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recipe_cli.config import DIVERGENCE_REWARD_PREFIX
from recipe_cli.errors import RecipeError
from recipe_cli.report import (
    STEP_TIME_KEY,
    STEP_TIME_PREFIX,
    RunLogs,
    series,
    smooth,
    smoothing_window,
    step_time_phases,
)

DPI = 120
PANEL_SIZE = (5.0, 3.4)  # inches per panel: readable at 100% zoom on a model card
MAX_COLUMNS = 3
STEP_LABEL = "optimizer step"
NOTE = "solid: centred moving average over ~1/10 of the logged points; faint: values as logged"
SHORT_NOTE = "every logged value (curves of fewer than 10 points are not smoothed)"
LINE_STYLES = ("-", "--", ":", "-.")  # a panel's curves, told apart


@dataclass(frozen=True)
class Curve:
    """One logged key drawn in a panel, told apart from the panel's other curves by its line style."""

    key: str
    label: str = ""
    style: str = "-"


@dataclass(frozen=True)
class Panel:
    """One axes: a title, the y unit, its curves; ``percent`` for shares (0 to 1 drawn as 0-100%)."""

    title: str
    ylabel: str
    curves: tuple[Curve, ...]
    percent: bool = False
    scientific: bool = False
    log_scale: bool = False  # a loss falling over orders of magnitude
    missing: str = "not logged"  # shown when no run logged any of the curves
    smoothed: bool = True  # False for a schedule (the learning rate): averaging would only blur its ends
    limit: Callable[[RunLogs], tuple[float, str] | None] | None = None  # a horizontal line per run


def require_matplotlib():
    """matplotlib's Figure class, or a one-line error saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RecipeError(
            "matplotlib is not installed, so no plots can be drawn; run `pip install matplotlib` (or `make install`)"
        ) from None
    return Figure


def run_colors(count: int) -> list:
    """One colour per run (matplotlib's tab10 cycle)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    return [palette[i % len(palette)] for i in range(count)]


def new_figure(panels: int, title: str, runs: list[RunLogs]):
    """A figure with a grid of ``panels`` axes, a title naming the run (or a legend of the runs), and the note."""
    figure_class = require_matplotlib()
    columns = 2 if panels == 4 else min(panels, MAX_COLUMNS)  # 2 x 2 rather than 3 + 1
    rows = math.ceil(panels / columns)
    figure = figure_class(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.9), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for extra in axes[panels:]:
        extra.set_visible(False)
    name = f" - {runs[0].label}" if len(runs) == 1 else ""
    figure.suptitle(f"{title}{name}", fontsize=14, fontweight="bold")
    return figure, list(axes[:panels])


def save_figure(figure, runs: list[RunLogs], note: str, path: Path) -> Path:
    """Say under the panels how to read them (with several runs, above a legend of their colours); write the PNG."""
    if len(runs) > 1:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=color, linewidth=2.5) for color in run_colors(len(runs))]
        legend = figure.legend(
            handles,
            [run.label for run in runs],
            loc="outside lower center",
            ncols=min(len(runs), 6),
            frameon=False,
            fontsize=10,
            title=note,
            title_fontsize=8,
        )
        legend.get_title().set_color("0.4")
    else:
        figure.supxlabel(note, fontsize=8, color="0.4")
    figure.savefig(path)
    return path


def style_axes(ax, panel: Panel) -> None:
    ax.set_title(panel.title, fontsize=11)
    ax.set_xlabel(STEP_LABEL, fontsize=9)
    ax.set_ylabel(panel.ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    if panel.percent:
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylim(-0.03, 1.03)
    elif panel.log_scale:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 0.1, 0.2, 0.5, 1, 2, ...
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    elif panel.scientific:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    else:  # an offset (+5.994 above the axis) is easy to miss; print the values themselves
        ax.ticklabel_format(axis="y", useOffset=False)


def draw_curve(ax, steps: list[int], values: list[float], color, style: str, smoothed: bool = True) -> bool:
    """The logged values faint and their moving average solid; short curves as logged, with markers.

    Returns whether the curve was smoothed.
    """
    window = smoothing_window(len(steps)) if smoothed else 1
    if window == 1:
        ax.plot(steps, values, color=color, linestyle=style, linewidth=1.8, marker="o", markersize=3.5)
        return False
    ax.plot(steps, values, color=color, linestyle=style, linewidth=1.0, alpha=0.28)
    ax.plot(steps, smooth(values, window), color=color, linestyle=style, linewidth=2.0)
    return True


def draw_panel(ax, runs: list[RunLogs], stage: str, panel: Panel) -> bool:
    """Every run's curves of one panel, a legend of the line styles where there are several, or a note.

    Returns whether any curve was smoothed.
    """
    from matplotlib.lines import Line2D

    colors = run_colors(len(runs))
    drawn: dict[str, Curve] = {}
    legend = []
    smoothed = False
    top = 0.0  # the highest limit line drawn
    for run, color in zip(runs, colors, strict=True):
        history = run.histories.get(stage, [])
        for curve in panel.curves:
            steps, values = series(history, curve.key)
            if steps:
                smoothed = draw_curve(ax, steps, values, color, curve.style, panel.smoothed) or smoothed
                drawn[curve.key] = curve
        found = panel.limit(run) if panel.limit is not None and stage in run.histories else None
        if found is not None:
            value, label = found
            ax.axhline(value, color=color, linestyle=":", linewidth=1.2)
            top = max(top, value)
            if not legend:
                legend.append((Line2D([], [], color="0.35", linestyle=":", linewidth=1.2), label))
    style_axes(ax, panel)
    if top:  # from 0, with room above the limit for the legend
        ax.set_ylim(0, 1.3 * max(top, ax.get_ylim()[1]))
    if not drawn:
        ax.text(0.5, 0.5, panel.missing, transform=ax.transAxes, ha="center", va="center", color="0.45", wrap=True)
        ax.set_xticks([])
        ax.set_yticks([])
        return False
    if len(drawn) > 1 or legend:
        color = colors[0] if len(runs) == 1 else "0.35"
        handles = [(Line2D([], [], color=color, linestyle=c.style, linewidth=2), c.label) for c in drawn.values()]
        handles += legend
        ax.legend([h for h, _ in handles], [label for _, label in handles], fontsize=8, frameon=False)
    return smoothed


def draw_figure(runs: list[RunLogs], stage: str, title: str, panels: list[Panel], path: Path) -> Path | None:
    """One PNG of ``panels``; None (and no file) when no run logged the stage."""
    if not any(stage in run.histories for run in runs):
        return None
    figure, axes = new_figure(len(panels), title, runs)
    smoothed = [draw_panel(ax, runs, stage, panel) for ax, panel in zip(axes, panels, strict=True)]
    return save_figure(figure, runs, NOTE if any(smoothed) else SHORT_NOTE, path)


def sft_panels() -> list[Panel]:
    return [
        Panel("training loss", "cross-entropy (nats per token, log scale)", (Curve("loss"),), log_scale=True),
        Panel("token accuracy", "completion tokens predicted", (Curve("mean_token_accuracy"),), percent=True),
        Panel("learning rate", "learning rate", (Curve("learning_rate"),), scientific=True, smoothed=False),
        Panel("gradient norm", "L2 norm (before clipping)", (Curve("grad_norm"),)),
    ]


def reward_weight(run: RunLogs, name: str) -> float | None:
    """The weight the run's recipe gave a reward, by the name TRL logs it under; ``-beta`` for the divergence
    penalty that ``in: reward`` adds as a reward."""
    from recipe_cli.report import reward_key

    for reward in (run.recipe.get("grpo") or {}).get("rewards", []):
        if reward_key(reward.get("name", "")) == name:
            return float(reward.get("weight", 1.0))
    if is_penalty(run, name):
        return -float(run.trainer_setting("grpo", "beta", 0.0))
    return None


def is_penalty(run: RunLogs, name: str) -> bool:
    """Whether a logged reward is the divergence penalty (``divergence_<name>``), not one of the recipe's rewards."""
    from recipe_cli.report import reward_key

    rewards = {reward_key(r.get("name", "")) for r in (run.recipe.get("grpo") or {}).get("rewards", [])}
    return name.startswith(DIVERGENCE_REWARD_PREFIX) and name not in rewards


def grpo_reward_panels(runs: list[RunLogs]) -> list[Panel]:
    mean_std = (Curve("reward", "mean"), Curve("reward_std", "std across completions", "--"))
    panels = [Panel("total reward (weighted sum)", "reward", mean_std)]
    names = list(dict.fromkeys(name for run in runs for name in run.reward_names()))
    for name in names:
        weights = {reward_weight(run, name) for run in runs} - {None}
        weight = f" (weight {weights.pop():g})" if len(weights) == 1 else ""
        curves = (Curve(f"rewards/{name}/mean", "mean"), Curve(f"rewards/{name}/std", "std across completions", "--"))
        if all(is_penalty(run, name) for run in runs if name in run.reward_names()):
            # the divergence `in: reward`, weighted -beta: the higher it is, the lower the total reward
            title = f"penalty '{name}'" + (weight.replace(")", ": -beta)") if weight else " (weight -beta)")
            panels.append(Panel(title, "divergence estimate summed over a completion", curves))
        else:
            panels.append(Panel(f"reward '{name}'{weight}", "reward", curves))
    return panels


def completion_limit(run: RunLogs) -> tuple[float, str]:
    """GRPO's completion budget: the recipe's ``max_completion_length``, else TRL's default."""
    from recipe_cli.trainer_fields import trainer_fields

    default = trainer_fields("GRPOConfig")["max_completion_length"].default
    return float(run.trainer_setting("grpo", "max_completion_length", default)), "max_completion_length"


def grpo_completion_panels() -> list[Panel]:
    lengths = (Curve("completions/mean_length", "mean"), Curve("completions/max_length", "longest", "--"))
    return [
        Panel(
            "groups with no learning signal",
            "groups whose rewards are all equal",
            # recipe's count; TRL's frac_reward_zero_std misses groups of equal float32 totals (dashed when logged)
            (Curve("frac_reward_zero_signal", "recipe"), Curve("frac_reward_zero_std", "TRL's", "--")),
            percent=True,
        ),
        Panel("completion length", "tokens", lengths, limit=completion_limit),
        Panel(
            "truncated completions",
            "completions cut at max_completion_length",
            (Curve("completions/clipped_ratio"),),
            percent=True,
        ),
    ]


def divergence_curves(runs: list[RunLogs]) -> tuple[Curve, ...]:
    """The divergence curves the runs logged: recipe's ``divergence/<name>`` (TRL's loss runs with beta 0 under
    ``recipe_cli.divergence``, so TRL logs no ``kl``), else TRL's own ``kl`` for a log of plain TRL."""
    keys = sorted(
        {k for run in runs for row in run.histories.get("grpo", []) for k in row if k.startswith("divergence/")}
    )
    if not keys:
        return (Curve("kl", "TRL's kl"),)
    return tuple(
        Curve(key, key.removeprefix("divergence/"), LINE_STYLES[i % len(LINE_STYLES)]) for i, key in enumerate(keys)
    )


def grpo_optimization_panels(runs: list[RunLogs]) -> list[Panel]:
    no_kl = all(not run.trainer_setting("grpo", "beta", 0.0) for run in runs if "grpo" in run.histories)
    kl_missing = "not logged: beta = 0,\nno reference model, no divergence term" if no_kl else "not logged"
    divergences = divergence_curves(runs)
    return [
        Panel("loss", "GRPO objective (unitless)", (Curve("loss"),)),
        Panel("gradient norm", "L2 norm (before clipping)", (Curve("grad_norm"),)),
        Panel("learning rate", "learning rate", (Curve("learning_rate"),), scientific=True, smoothed=False),
        Panel("entropy of the policy", "nats per completion token", (Curve("entropy"),)),
        Panel(
            f"divergence to the reference ({', '.join(curve.label for curve in divergences)})",
            "mean estimate per completion token",
            divergences,
            missing=kl_missing,
        ),
        Panel(
            "tokens clipped by the ratio bound",
            "completion tokens",
            (Curve("clip_ratio/region_mean"),),
            percent=True,
        ),
    ]


def draw_step_time(runs: list[RunLogs], path: Path) -> Path | None:
    """Seconds per GRPO step, stacked by phase where phases were logged, and completion tokens per second."""
    logged = [run for run in runs if series(run.histories.get("grpo", []), STEP_TIME_KEY)[0]]
    if not logged:
        return None
    phased = [run for run in logged if step_time_phases(run.histories["grpo"])]
    rate_keys = sorted(
        {key for run in logged for row in run.histories["grpo"] for key in row if key.endswith("tokens_per_second")}
    )
    panels = len(phased) or 1
    panels += 1 if rate_keys else 0
    figure, axes = new_figure(panels, "GRPO step time", runs)
    smoothed = False
    if phased:
        for ax, run in zip(axes, phased, strict=False):
            label = "" if len(runs) == 1 else f" - {run.label}"
            smoothed = draw_phases(ax, run, title=f"seconds per step by phase{label}") or smoothed
    else:
        panel = Panel("seconds per step (phases not logged)", "seconds", (Curve(STEP_TIME_KEY),))
        smoothed = draw_panel(axes[0], runs, "grpo", panel)
    if rate_keys:
        panel = Panel("completion tokens per second", "tokens per second", tuple(Curve(key) for key in rate_keys))
        smoothed = draw_panel(axes[-1], runs, "grpo", panel) or smoothed
    return save_figure(figure, runs, NOTE if smoothed else SHORT_NOTE, path)


def draw_phases(ax, run: RunLogs, title: str) -> bool:
    """A stack of the logged phases (smoothed) under the whole step's time, per step; whether it smoothed."""
    history = run.histories["grpo"]
    steps, total = series(history, STEP_TIME_KEY)
    window = smoothing_window(len(steps))
    layers, labels = [], []
    for phase in step_time_phases(history):
        logged = dict(zip(*series(history, STEP_TIME_PREFIX + phase), strict=True))
        layers.append(smooth([logged.get(step, 0.0) for step in steps], window))
        labels.append(phase)
    import matplotlib

    palette = matplotlib.colormaps["Set2"].colors
    ax.stackplot(steps, *layers, labels=labels, colors=palette[: len(layers)], alpha=0.85)
    ax.plot(steps, total, color="0.2", linewidth=1.0, alpha=0.3)
    ax.plot(steps, smooth(total, window), color="0.2", linewidth=1.6, label="whole step")
    style_axes(ax, Panel(title, "seconds", ()))
    handles, labels = ax.get_legend_handles_labels()
    # beside the axes, top to bottom as the layers are stacked: inside, the legend would hide the stack
    ax.legend(handles[::-1], labels[::-1], fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return window > 1


def draw_evals(runs: list[RunLogs], path: Path) -> Path | None:
    """Accuracy, format rate and truncation of each evaluated model, one bar per run."""
    if not any(run.evals for run in runs):
        return None
    models = list(dict.fromkeys(label for run in runs for label in run.evals))
    modes = {summary.get("accuracy_mode", "flexible") for run in runs for summary in run.evals.values()}
    mode = modes.pop() if len(modes) == 1 else "headline mode"
    metrics = [
        (f"accuracy (greedy, {mode})", "accuracy"),
        ("format followed (<think> then <answer>)", "format_rate"),
        ("truncated (hit max_new_tokens)", "truncation_rate"),
    ]
    sizes = {summary.get("n") for run in runs for summary in run.evals.values()}
    title = "Evaluation" + (f" on {sizes.pop()} problems" if len(sizes) == 1 else "")
    figure, axes = new_figure(len(metrics), title, runs)
    colors = run_colors(len(runs))
    width = 0.8 / len(runs)
    for ax, (metric_title, key) in zip(axes, metrics, strict=True):
        for i, (run, color) in enumerate(zip(runs, colors, strict=True)):
            positions = [m + (i - (len(runs) - 1) / 2) * width for m, label in enumerate(models) if label in run.evals]
            values = [float(run.evals[label].get(key) or 0.0) for label in models if label in run.evals]
            marks = ["*" if label in run.outdated else "" for label in models if label in run.evals]
            bars = ax.bar(positions, values, width=width * 0.92, color=color)
            labels = [f"{v:.0%}{mark}" for v, mark in zip(values, marks, strict=True)]
            ax.bar_label(bars, labels=labels, fontsize=8 if len(runs) < 3 else 6, padding=2)
        style_axes(ax, Panel(metric_title, "share of problems", (), percent=True))
        ax.set_ylim(0, 1.12)
        ax.set_xticks(range(len(models)), models)
        ax.set_xlabel("model", fontsize=9)
    note = "greedy decoding; one group of bars per evaluated model"
    if any(run.outdated for run in runs):
        note += "; *: measured a model replaced since (trained again or further)"
    return save_figure(figure, runs, note, path)


def write_plots(runs: list[RunLogs], folder: Path) -> dict[str, Path]:
    """Draw every plot the runs have data for into ``folder``; return them by name."""
    require_matplotlib()
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {
        "eval": draw_evals(runs, folder / "eval.png"),
        "sft": draw_figure(runs, "sft", "SFT", sft_panels(), folder / "sft.png"),
        "grpo_rewards": draw_figure(
            runs, "grpo", "GRPO rewards", grpo_reward_panels(runs), folder / "grpo_rewards.png"
        ),
        "grpo_completions": draw_figure(
            runs,
            "grpo",
            "GRPO learning signal and completions",
            grpo_completion_panels(),
            folder / "grpo_completions.png",
        ),
        "grpo_optimization": draw_figure(
            runs, "grpo", "GRPO optimisation", grpo_optimization_panels(runs), folder / "grpo_optimization.png"
        ),
        "grpo_step_time": draw_step_time(runs, folder / "grpo_step_time.png"),
    }
    for name, path in drawn.items():
        if path is None:  # a plot an earlier report drew, which these runs have no data for
            (folder / f"{name}.png").unlink(missing_ok=True)
    return {name: path for name, path in drawn.items() if path is not None}
