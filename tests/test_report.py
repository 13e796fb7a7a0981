"""The run report: plots and report.md from run folders, overlaid runs, kept samples, trackers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recipe_cli import plots
from recipe_cli.cli import app
from recipe_cli.errors import RecipeError
from recipe_cli.report import RunLogs, read_run, render_report, write_card_plots, write_report
from recipe_cli.samples import keep_samples_until, read_samples
from tests.conftest import REPO

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR)."""
    data = path.read_bytes()
    assert data.startswith(PNG), f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def grpo_history(steps: int, offset: float = 0.0) -> list[dict]:
    return [
        {
            "step": step,
            "loss": 0.01 * step,
            "reward": 0.1 * step + offset,
            "reward_std": 0.3,
            "rewards/accuracy/mean": 0.05 * step + offset,
            "rewards/accuracy/std": 0.2,
            "frac_reward_zero_std": 0.5,
            "completions/mean_length": 30.0,
            "completions/clipped_ratio": 0.1,
            "entropy": 1.0,
            "learning_rate": 1e-4,
            "step_time": 1.0,
        }
        for step in range(1, steps + 1)
    ]


def fake_run(tmp_path: Path, name: str, offset: float = 0.0, steps: int = 12) -> Path:
    """A run folder as `recipe run` leaves it, with logs that need no training."""
    root = tmp_path / "runs" / name
    (root / "grpo").mkdir(parents=True)
    (root / "sft").mkdir()
    (root / "eval").mkdir()
    recipe = {"name": name, "grpo": {"rewards": [{"name": "accuracy", "weight": 1.0}], "trainer": {"beta": 0.0}}}
    (root / "recipe.yaml").write_text(json.dumps(recipe))
    (root / "grpo" / "trainer_state.json").write_text(json.dumps({"log_history": grpo_history(steps, offset)}))
    sft = [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-3, "mean_token_accuracy": 0.5} for s in range(1, 5)]
    (root / "sft" / "trainer_state.json").write_text(json.dumps({"log_history": sft}))
    for label, accuracy in (("base", 0.0), ("sft", 0.5 + offset), ("grpo", 0.6 + offset)):
        summary = {"label": label, "n": 8, "accuracy": accuracy, "format_rate": 1.0, "truncation_rate": 0.0}
        (root / "eval" / f"{label}.json").write_text(json.dumps(summary))
    records = [
        {
            "step": s,
            "group": 0,
            "prompt": f"question {s}",
            "completion": f"answer {s} ```",
            "rewards": {"accuracy": 1.0},
        }
        for s in (1, 6, 12)
    ]
    (root / "grpo" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_two_runs_are_overlaid_one_colour_each(tmp_path):
    runs = [read_run(fake_run(tmp_path, "a")), read_run(fake_run(tmp_path, "b", offset=0.2))]
    figure_class = plots.require_matplotlib()
    ax = figure_class().subplots()
    panel = plots.grpo_reward_panels(runs)[0]  # the total reward: mean and std
    assert plots.draw_panel(ax, runs, "grpo", panel)  # 12 points each: smoothed
    lines = ax.get_lines()
    assert len(lines) == 2 * 2 * 2  # 2 runs x (mean, std) x (faint as logged, smoothed)
    faint = [line for line in lines if line.get_alpha() is not None and line.get_alpha() < 0.5]
    assert len(faint) == 4 and {line.get_linewidth() for line in faint} == {1.0}
    assert len({tuple(line.get_color()) for line in lines}) == 2  # one colour per run
    raw_b = next(line for line in faint if line.get_ydata()[0] == pytest.approx(0.3))  # b's first reward, 0.1 + 0.2
    assert list(raw_b.get_xdata()) == list(range(1, 13))


def test_a_curve_nobody_logged_says_why(tmp_path):
    runs = [read_run(fake_run(tmp_path, "a"))]
    ax = plots.require_matplotlib()().subplots()
    kl = next(panel for panel in plots.grpo_optimization_panels(runs) if panel.curves[0].key == "kl")
    assert not plots.draw_panel(ax, runs, "grpo", kl)
    assert "beta = 0" in ax.texts[0].get_text()


def test_the_divergence_panel_draws_what_recipe_logs(tmp_path):
    """recipe runs TRL's loss with beta 0 and logs divergence/<name>, never TRL's kl: the panel draws those."""
    folder = fake_run(tmp_path, "a")
    history = grpo_history(12)
    for row in history:
        row["divergence/k3"] = 0.001 * row["step"]
    (folder / "grpo" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    runs = [read_run(folder)]
    panel = next(p for p in plots.grpo_optimization_panels(runs) if p.title.startswith("divergence"))
    assert panel.title == "divergence to the reference (k3)"
    ax = plots.require_matplotlib()().subplots()
    assert plots.draw_panel(ax, runs, "grpo", panel) and not ax.texts
    assert [list(line.get_ydata()) for line in ax.get_lines()][0] == [0.001 * s for s in range(1, 13)]


def test_report_of_one_run_has_every_plot_and_the_samples(tmp_path):
    folder = fake_run(tmp_path, "a")
    result = invoke("report", folder)
    assert result.exit_code == 0, result.output
    report = folder / "report" / "report.md"
    text = report.read_text()
    names = {"eval", "sft", "grpo_rewards", "grpo_completions", "grpo_optimization", "grpo_step_time"}
    assert {p.stem for p in report.parent.glob("*.png")} == names
    for name in names:
        width, height = png_size(report.parent / f"{name}.png")
        assert width >= 600 and height >= 400  # at least one panel of 5 x 3.4 inches at 120 dpi
        assert f"]({name}.png)" in text  # linked relatively, beside the report
    assert "| sft | 8 | 50.0% (flexible) |" in text
    assert "### step 1 (start)" in text and "### step 6 (middle)" in text and "### step 12 (end)" in text
    assert "````text\nanswer 12 ```\n````" in text  # a completion's own backticks cannot close its block
    assert "accuracy 1 -> no reward" in text


def test_report_compares_runs_in_one_table(tmp_path):
    a, b = fake_run(tmp_path, "a"), fake_run(tmp_path, "b", offset=0.2)
    report = write_report([a, b])
    assert report.path == tmp_path / "runs" / "report-a-vs-b" / "report.md"
    text = report.path.read_text()
    assert text.startswith("# Runs compared: `a`, `b`")
    assert "| a | grpo | 8 | 60.0% (flexible) |" in text and "| b | grpo | 8 | 80.0% (flexible) |" in text
    assert "### a, step 12 (end)" in text and "### b, step 12 (end)" in text


def test_report_says_when_runs_were_evaluated_on_different_problems(tmp_path):
    a, b, c = (fake_run(tmp_path, name) for name in ("a", "b", "c"))
    for folder, problems in ((a, "1111"), (b, "1111"), (c, "2222")):
        for label in ("base", "sft", "grpo"):
            path = folder / "eval" / f"{label}.json"
            summary = json.loads(path.read_text()) | {"eval_set": "arithmetic test", "problems": problems}
            path.write_text(json.dumps(summary))
    assert "Different problems" not in write_report([a, b]).path.read_text()
    text = write_report([a, b, c]).path.read_text()
    assert "the evaluations measured different problems on arithmetic test (`a`, `b`; `c`)" in text


def test_report_names_the_models_of_a_run_whose_own_evaluations_measured_different_problems(tmp_path):
    """One run whose base model was evaluated before the eval split changed: naming the run alone twice, as in
    "(`a`; `a`)", says nothing; its models are named."""
    a = fake_run(tmp_path, "a")
    for label, problems in (("base", "1111"), ("sft", "2222"), ("grpo", "2222")):
        path = a / "eval" / f"{label}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"eval_set": "test", "problems": problems}))
    text = write_report([a]).path.read_text()
    assert "the evaluations measured different problems on test (`a` (base); `a` (grpo, sft))" in text


def test_report_of_what_is_not_a_run_is_a_user_error(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert "holds no training log" in result.output and "runs/demo" in result.output
    result = invoke("report", tmp_path / "missing")
    assert result.exit_code == 2 and "is not a folder" in result.output
    folder = fake_run(tmp_path, "a")
    result = invoke("report", folder, folder)
    assert result.exit_code == 2 and "given twice" in result.output


def test_an_output_that_cannot_be_a_folder_is_one_line(tmp_path):
    folder = fake_run(tmp_path, "a")
    (tmp_path / "a-file").write_text("")
    for output, expected in (
        (tmp_path / "a-file", "a-file is a file; give --output a folder (or remove the file)"),
        (tmp_path / "a-file" / "report", "a-file is a file, not a folder); give --output a folder you can write"),
        (Path("/proc/no-such/report"), "cannot write the report into /proc/no-such/report (No such file"),
    ):
        result = invoke("report", folder, "-o", output)
        assert result.exit_code == 2, result.output + repr(result.exception)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert (tmp_path / "a-file").read_text() == "" and not (folder / "report").exists()


def test_a_folder_that_is_not_a_run_is_left_as_it_was(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    for folder in (tmp_path / "data", tmp_path / "empty"):
        folder.mkdir(exist_ok=True)
        before = sorted(p.name for p in folder.iterdir())
        result = invoke("report", folder)
        assert result.exit_code == 2 and "holds no training log" in result.stderr
        assert sorted(p.name for p in folder.iterdir()) == before  # no .lock, no report/


def test_a_report_into_a_run_holds_its_lock_and_one_elsewhere_works_while_it_trains(tmp_path):
    """Every writer of a run folder holds the run's lock: during a run, the report goes elsewhere with --output."""
    from recipe_cli.lock import RunLock

    folder = fake_run(tmp_path, "a")
    with RunLock(folder, "recipe grpo r.yaml"):  # a stage training: the run folder is locked
        result = invoke("report", folder)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert "in use by pid" in lines[0] and "write the report elsewhere: recipe report" in lines[0], lines
        assert "--output DIR" in lines[0] and not (folder / "report").exists()
        result = invoke("report", folder, "-o", tmp_path / "elsewhere")
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert (tmp_path / "elsewhere" / "report.md").is_file()
    assert not (tmp_path / "elsewhere" / ".lock").exists()  # a folder outside any run is not a run's
    other = fake_run(tmp_path, "b")
    (other / "run.json").write_text("{}")
    with RunLock(other, "recipe sft b.yaml"):  # an --output inside another run holds that run's lock
        result = invoke("report", folder, "-o", other / "report-of-a")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "give --output a folder outside it" in lines[0], lines
    assert not (other / "report-of-a").exists()
    assert invoke("report", folder).exit_code == 0 and (folder / "report" / "report.md").is_file()


def test_without_matplotlib_the_report_names_the_fix_and_the_card_has_no_plots(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    folder = fake_run(tmp_path, "a")
    result = invoke("report", folder)
    assert result.exit_code == 2 and "pip install matplotlib" in result.output
    assert write_card_plots(folder, "grpo", None, tmp_path / "card") == {}


def test_card_plots_stop_at_the_pushed_stage_and_follow_its_checkpoint(tmp_path, monkeypatch):
    folder = fake_run(tmp_path, "a")
    drawn = write_card_plots(folder, "sft", None, tmp_path / "sft-card")
    assert set(drawn) == {"eval", "sft"}  # no GRPO curves on the card of the SFT model
    checkpoint = folder / "grpo" / "checkpoint-3"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": grpo_history(3)}))
    drawn_from = []
    draw = plots.write_plots
    monkeypatch.setattr(plots, "write_plots", lambda runs, out: drawn_from.extend(runs) or draw(runs, out))
    drawn = write_card_plots(folder, "grpo", checkpoint, tmp_path / "step-card")
    assert {"grpo_rewards", "sft"} <= set(drawn)
    assert [row["step"] for row in drawn_from[0].histories["grpo"]] == [1, 2, 3]  # the pushed checkpoint's own log


def test_an_unfinished_stage_is_read_from_its_newest_checkpoint(tmp_path):
    folder = fake_run(tmp_path, "a")
    (folder / "grpo" / "trainer_state.json").unlink()
    for step in (2, 4):
        (folder / "grpo" / f"checkpoint-{step}").mkdir()
        history = {"log_history": grpo_history(step)}
        (folder / "grpo" / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(history))
    run = read_run(folder)
    assert run.sources["grpo"].parent.name == "checkpoint-4" and len(run.histories["grpo"]) == 4
    assert "4 steps (unfinished: read from `checkpoint-4`)" in render_report([run], {})


def test_a_resumed_run_keeps_the_samples_up_to_its_checkpoint(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (5, 10, 15)) + '{"step": 20, "cut')
    keep_samples_until(path, 10)
    assert [record["step"] for record in read_samples(path)] == [5, 10]
    text = json.dumps({"step": 15, "prompt": "सवाल"}, ensure_ascii=False)  # a Hindi prompt, cut inside a letter
    path.write_bytes(path.read_bytes() + text.encode()[:-4])
    keep_samples_until(path, 15)
    assert [record["step"] for record in read_samples(path)] == [5, 10]


def test_step_time_phases_are_stacked_and_shared_when_logged(tmp_path):
    folder = fake_run(tmp_path, "a")
    history = grpo_history(12)
    for row in history:
        row.update({"step_time/generation": 0.6, "step_time/policy": 0.3, "completion_tokens_per_second": 500.0})
    (folder / "grpo" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    report = write_report([folder])
    assert "| a | 60.0% | 30.0% | 10.0% |" in report.path.read_text()  # generation, policy, other
    assert png_size(report.path.parent / "grpo_step_time.png")[0] >= 1000


# Eval answers of the demo's kind: right, the teacher's slip (the first step's result), a step computed wrong.
RIGHT = {"completion": "5 + 3 = 8\n8 - 2 = 6", "extracted": "6", "gold": "6", "correct": True}
SLIP = {**RIGHT, "extracted": "8", "correct": False}
MISCOMPUTED = {**RIGHT, "completion": "5 + 3 = 9\n9 - 2 = 7", "extracted": "7", "correct": False}


def write_eval(folder: Path, label: str, rows: list[dict], n: int | None = None) -> None:
    """eval/<label>.json and .jsonl as `recipe eval` writes them (the fields the demo scripts read)."""
    accuracy = sum(row["correct"] for row in rows) / len(rows)
    summary = {"label": label, "n": n or len(rows), "accuracy": accuracy, "format_rate": 1.0}
    (folder / "eval" / f"{label}.json").write_text(json.dumps(summary))
    (folder / "eval" / f"{label}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_check_demo_checks_the_report_the_plots_and_the_slips(tmp_path, capsys, load_script):
    """The demo's check fails, in one line each, while the report or a plot it links is missing, or GRPO kept the slips."""
    check_demo = load_script("check_demo")
    folder = fake_run(tmp_path, "demo")
    write_eval(folder, "base", [MISCOMPUTED] * 10, n=300)
    write_eval(folder, "sft", [RIGHT] * 4 + [SLIP] * 4 + [MISCOMPUTED] * 2, n=300)
    write_eval(folder, "grpo", [RIGHT] * 7 + [SLIP] * 1 + [MISCOMPUTED] * 2, n=300)

    def failures() -> list[str]:
        code = check_demo.main(str(folder))
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
        assert code == (1 if lines else 0)
        return lines

    assert failures() == [f"FAIL the report and its plots exist (missing: {folder / 'report' / 'report.md'})"]
    report = write_report([folder])
    assert failures() == []
    (report.path.parent / "grpo_optimization.png").unlink()
    assert failures() == [
        f"FAIL the report and its plots exist (missing: {report.path.parent / 'grpo_optimization.png'})"
    ]
    write_report([folder])
    write_eval(folder, "grpo", [RIGHT] * 6 + [SLIP] * 3 + [MISCOMPUTED], n=300)  # +20 points, 3 of 4 slips kept
    assert failures() == ["FAIL GRPO trains away at least half of the teacher's slips SFT learned (4 -> 3)"]


def test_demo_seeds_counts_each_stages_mistakes_by_kind(tmp_path, load_script):
    """One row per seed: accuracies, the gain, check_demo's GRPO checks, wrong answers as slip / arithmetic / other."""
    demo_seeds = load_script("demo_seeds")
    (tmp_path / "eval").mkdir()
    write_eval(tmp_path, "sft", [RIGHT, SLIP, SLIP, MISCOMPUTED])
    write_eval(tmp_path, "grpo", [RIGHT, RIGHT, RIGHT, MISCOMPUTED])
    row, gain, passed = demo_seeds.table_row(44, tmp_path, minutes=5.04)
    assert row == "| 44 | 25.0% | 75.0% | +50.0 | ok | 2 / 1 / 0 | 0 / 1 / 0 | 5.0 |"
    assert (gain, passed) == (0.5, True)
    write_eval(tmp_path, "grpo", [RIGHT, RIGHT, SLIP, SLIP])  # +25 points, but every slip kept
    row, gain, passed = demo_seeds.table_row(44, tmp_path, minutes=5.04)
    assert row == "| 44 | 25.0% | 50.0% | +25.0 | FAIL | 2 / 1 / 0 | 2 / 0 / 0 | 5.0 |"
    assert (gain, passed) == (0.25, False)
    with pytest.raises(RecipeError, match="write a range"):
        demo_seeds.parse_seeds("42..46")


def test_validate_and_help_do_not_import_matplotlib(recipe_dict, write_recipe):
    path = write_recipe(recipe_dict)
    code = textwrap.dedent(
        f"""
        import sys
        from typer.testing import CliRunner
        from recipe_cli.cli import app
        for args in (["--help"], ["validate", {str(path)!r}]):
            assert CliRunner().invoke(app, args).exit_code == 0
        print(sorted(name for name in ("matplotlib", "torch") if name in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_tracker_this_machine_lacks_stops_training_and_is_a_warning_in_validate(recipe_dict, write_recipe):
    from recipe_cli.trackers import TRACKER_PACKAGES, is_installed

    missing = [name for name, (modules, _) in TRACKER_PACKAGES.items() if not any(map(is_installed, modules))]
    if not missing:
        pytest.skip("every tracker is installed here")
    recipe_dict["grpo"]["trainer"]["report_to"] = [missing[0]]
    package = TRACKER_PACKAGES[missing[0]][1]
    line = f"grpo.trainer.report_to: the tracker '{missing[0]}' is not installed here"
    validated = invoke("validate", write_recipe(recipe_dict))  # the recipe may be meant for another machine
    assert validated.exit_code == 0, validated.output
    assert f"warning: {line}, so `recipe grpo` and `run` stop here; run `pip install {package}`" in validated.output
    trained = invoke("grpo", write_recipe(recipe_dict))
    assert trained.exit_code == 2
    assert f"{line}; run `pip install {package}` where the model trains, or set `report_to: none`" in trained.output
    assert not (Path(recipe_dict["runs_dir"]) / recipe_dict["name"] / "grpo").exists()
    recipe_dict["sft"]["trainer"]["report_to"] = "trakio"  # a name transformers does not know is the recipe's mistake
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "sft.trainer.report_to: 'trakio' is not a tracker transformers knows; did you mean 'trackio'?" in (
        result.output
    )


FAKE_TENSORBOARDX = '''
"""A stand-in for tensorboardX: records every scalar transformers' TensorBoardCallback logs."""
import json, os


class SummaryWriter:
    def __init__(self, log_dir=None, **kwargs):
        os.makedirs(log_dir, exist_ok=True)
        self.path = os.path.join(log_dir, "scalars.jsonl")

    def add_scalar(self, tag, value, step):
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"tag": tag, "value": value, "step": step}) + "\\n")

    def add_text(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass
'''


@pytest.fixture
def fake_tensorboard(tmp_path, monkeypatch):
    """tensorboardX as transformers finds it (``find_spec``), recording scalars in the run folder."""
    from recipe_cli.trackers import is_installed

    if is_installed("tensorboard"):
        pytest.skip("the real tensorboard is installed; transformers would write its own event files")
    modules = tmp_path / "modules"
    (modules / "tensorboardX").mkdir(parents=True)
    (modules / "tensorboardX" / "__init__.py").write_text(FAKE_TENSORBOARDX)
    monkeypatch.syspath_prepend(str(modules))
    yield
    sys.modules.pop("tensorboardX", None)


@pytest.mark.slow
def test_report_to_passes_through_to_the_tracker(recipe_dict, write_recipe, tmp_path, fake_tensorboard):
    del recipe_dict["sft"], recipe_dict["eval"]
    recipe_dict["grpo"]["trainer"].update(report_to="tensorboard", logging_steps=1)
    result = invoke("grpo", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    logged = [json.loads(line) for path in (tmp_path / "runs").rglob("scalars.jsonl") for line in path.open()]
    rewards = [(row["step"], row["value"]) for row in logged if row["tag"] == "train/reward"]
    history = json.loads((tmp_path / "runs" / "tiny" / "grpo" / "trainer_state.json").read_text())["log_history"]
    assert [step for step, _ in rewards] == [1, 2]
    assert [value for _, value in rewards] == pytest.approx([row["reward"] for row in history if "loss" in row])


@pytest.mark.slow
def test_two_seeds_of_a_run_train_and_their_report_overlays_them(recipe_dict, write_recipe, tmp_path):
    recipe_dict["sft"]["trainer"]["logging_steps"] = 1
    recipe_dict["grpo"]["trainer"].update(logging_steps=1, max_steps=4)
    path = write_recipe(recipe_dict)
    for seed in (1, 2):
        result = invoke("run", path, "--set", f"seed={seed}", "--set", f"name=tiny-seed{seed}")
        assert result.exit_code == 0, result.output
        folder = tmp_path / "runs" / f"tiny-seed{seed}"
        assert "report written" in result.output and (folder / "report" / "report.md").is_file()
        samples = read_samples(folder / "grpo" / "samples.jsonl")
        assert sorted({record["step"] for record in samples}) == [1, 2, 3, 4]
        weights = {"accuracy": 1.0, "format": 0.5, "closeness_to_length": 1.0}
        for record in samples:  # the reward GRPO trained on: the weighted sum of the rewards
            paid = [weights[name] * score for name, score in record["rewards"].items() if score is not None]
            assert record["reward"] == pytest.approx(sum(paid))
    folders = [tmp_path / "runs" / "tiny-seed1", tmp_path / "runs" / "tiny-seed2"]
    histories = [read_run(folder).histories["grpo"] for folder in folders]
    assert histories[0] != histories[1]  # the seeds trained differently
    result = invoke("report", *folders, "--output", tmp_path / "compare")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "compare" / "report.md").read_text()
    assert "`tiny-seed1`: 4 steps, logged every step" in text and "`tiny-seed2`: 4 steps, logged every step" in text
    for stage in ("sft", "grpo"):  # both trainers log their process's peak memory at every logging step
        history = read_run(folders[0]).histories[stage]
        peaks = [row["memory/peak_rss_gib"] for row in history if "loss" in row]
        assert len(peaks) == max(row["step"] for row in history) and peaks == sorted(peaks) and peaks[0] > 0.1
        assert f"peak resident memory {max(peaks):.2f} GiB" in text
    for seed in (1, 2):
        for label in ("base", "sft", "grpo"):
            assert f"| tiny-seed{seed} | {label} | 8 |" in text
    assert png_size(tmp_path / "compare" / "grpo_rewards.png")[0] >= 1000


def test_run_logs_name_rewards_as_trl_logs_them():
    run = RunLogs(
        "a",
        Path("."),
        {"grpo": {"rewards": [{"name": "format"}, {"name": "my.py:short"}]}},
        histories={"grpo": [{"step": 1, "rewards/short/mean": 1.0, "rewards/format/mean": 0.0, "rewards/x/mean": 0}]},
    )
    assert run.reward_names() == ["format", "short", "x"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "divergence",
    [None, {"name": "k1", "in": "reward"}],
    ids=["beta-0", "k1-in-reward"],
)
def test_grpo_logs_where_each_step_goes(recipe_dict, write_recipe, tmp_path, divergence):
    """The phases add up to TRL's step time; recipe's callbacks are counted beside it; the card gives shares."""
    from typer.testing import CliRunner

    from recipe_cli.card import render_model_card
    from recipe_cli.cli import app
    from recipe_cli.config import validate_recipe
    from recipe_cli.report import step_time_shares

    del recipe_dict["sft"], recipe_dict["eval"]
    recipe_dict["grpo"]["trainer"].update(max_steps=3, logging_steps=1)
    if divergence is not None:  # the reference's forward pass, and the policy's for the penalty
        recipe_dict["grpo"]["divergence"] = divergence
        recipe_dict["grpo"]["trainer"]["beta"] = 0.04
    result = CliRunner().invoke(app, ["grpo", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "runs" / "tiny" / "grpo" / "trainer_state.json").read_text())
    logs = [row for row in state["log_history"] if "step_time" in row]
    assert len(logs) == 3
    for row in logs:
        inside = sum(row[f"step_time/{p}"] for p in ("generation", "logprobs", "rewards", "scoring", "policy"))
        assert inside == pytest.approx(row["step_time"], rel=0.05, abs=5e-3)
        assert row["step_time/generation"] > 0 and row["step_time/policy"] > 0 and row["step_time/callbacks"] > 0
        assert row["completions/tokens_per_second"] > 0
        if divergence is not None:
            assert row["step_time/logprobs"] > 0
    shares = step_time_shares(state["log_history"])
    assert set(shares) >= {"generation", "policy", "rewards", "callbacks"}
    assert sum(shares.values()) == pytest.approx(1, rel=0.01)  # the timers sit a little outside TRL's
    card = render_model_card(validate_recipe(recipe_dict), "grpo", str(tmp_path / "runs" / "tiny" / "base"))
    step_time = next(line for line in card.splitlines() if line.startswith("GRPO step time: "))
    for phase, share in shares.items():
        assert f"{phase} {share:.0%}" in step_time
    peak = max(row["memory/peak_rss_gib"] for row in logs)
    assert f"GRPO memory of the main process: peak resident memory {peak:.2f} GiB." in card


def test_a_stage_trained_further_is_read_from_the_checkpoint_past_its_final_log(tmp_path):
    """`--resume` with a higher max_steps trains on beside the final log of the earlier run, which is stale."""
    folder = fake_run(tmp_path, "a")
    final = {"global_step": 12, "log_history": grpo_history(12)}
    (folder / "grpo" / "trainer_state.json").write_text(json.dumps(final))
    for step in (12, 14):
        (folder / "grpo" / f"checkpoint-{step}").mkdir()
        state = {"global_step": step, "log_history": grpo_history(step)}
        (folder / "grpo" / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    run = read_run(folder)
    assert run.sources["grpo"].parent.name == "checkpoint-14" and len(run.histories["grpo"]) == 14
    assert "14 steps (unfinished: read from `checkpoint-14`)" in render_report([run], {})
    final = {"global_step": 16, "log_history": grpo_history(16)}  # once it finished, the final log again
    (folder / "grpo" / "trainer_state.json").write_text(json.dumps(final))
    assert read_run(folder).sources["grpo"].parent.name == "grpo"


def test_a_stage_stopped_between_logging_steps_counts_the_steps_it_trained(tmp_path):
    """A preemption saves checkpoint-7 with logs at steps 2, 4 and 6: it trained 7 steps, not 6."""
    folder = fake_run(tmp_path, "a")
    (folder / "grpo" / "trainer_state.json").unlink()
    (folder / "grpo" / "checkpoint-7").mkdir()
    state = {"global_step": 7, "log_history": grpo_history(6)[1::2]}
    (folder / "grpo" / "checkpoint-7" / "trainer_state.json").write_text(json.dumps(state))
    text = render_report([read_run(folder)], {})
    assert "7 steps (unfinished: read from `checkpoint-7`), logged every 2 steps" in text


def test_the_divergence_in_the_reward_is_drawn_as_a_penalty_of_weight_minus_beta():
    """`in: reward` logs the divergence as a reward TRL weights -beta; its panel must not read as a reward to raise."""
    history = [{"step": 1, "rewards/accuracy/mean": 0.5, "rewards/divergence_k1/mean": 0.2}]
    recipe = {"grpo": {"rewards": [{"name": "accuracy"}], "trainer": {"beta": 0.04}, "divergence": "k1"}}
    run = RunLogs("a", Path("."), recipe, histories={"grpo": history})
    titles = [panel.title for panel in plots.grpo_reward_panels([run])]
    assert titles == [
        "total reward (weighted sum)",
        "reward 'accuracy' (weight 1)",
        "penalty 'divergence_k1' (weight -0.04: -beta)",
    ]
    recipe["grpo"]["rewards"].append({"name": "my.py:divergence_k1", "weight": 0.5})  # a reward of that name is one
    assert plots.grpo_reward_panels([run])[-1].title == "reward 'divergence_k1' (weight 0.5)"


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="the resident peak resets on Linux only")
def test_a_stage_logs_its_own_peak_not_that_of_an_earlier_stage_in_the_process():
    """`recipe run` trains SFT then GRPO in one process: GRPO's logged peak must not be SFT's."""
    from recipe_cli.peak_memory import RSS_KEY, peak_memory, with_peak_memory

    class Stage:
        def train(self):
            return peak_memory()[RSS_KEY]

    earlier_stage = b"\x01" * (300 * 2**20)  # written, so resident
    earlier_peak = peak_memory()[RSS_KEY]
    del earlier_stage
    assert with_peak_memory(Stage)().train() < earlier_peak - 0.2


def test_evaluations_of_a_model_trained_again_since_are_marked_outdated(tmp_path):
    """`recipe sft --overwrite` (or `--resume` to more steps) leaves eval/sft.json of the model it replaced, and a
    GRPO trained from that model: the report must not show them as the run's current numbers."""
    import os

    folder = fake_run(tmp_path, "a")
    identity = {"settings_hash": "old", "length": {"max_steps": 20}, "finished_at": "2026-01-01T10:05:00+0000"}
    stages = {
        "sft": {
            "status": "finished",
            "settings_hash": "new",
            "length": {"max_steps": 24},
            "started_at": "2026-01-01T11:00:00+0000",
            "finished_at": "2026-01-01T11:02:00+0000",
        },
        "grpo": {"status": "finished", "started_at": "2026-01-01T10:06:00+0000", "sft": identity},
    }
    (folder / "run.json").write_text(json.dumps({"stages": stages}))
    evaluated = 1767262000  # 2026-01-01T10:06:40Z: after GRPO started, before SFT trained again
    for label in ("base", "sft", "grpo"):
        os.utime(folder / "eval" / f"{label}.json", (evaluated, evaluated))
    run = read_run(folder)
    assert set(run.outdated) == {"sft"}
    text = render_report([run], {})
    assert "| sft (outdated*) | 8 |" in text and "| grpo | 8 |" in text
    assert "- sft: measured before sft trained again or further, from 2026-01-01T11:00:00+0000" in text
    assert "12 steps, logged every step; trained from an earlier SFT model" in text
    stages["grpo"]["sft"] = {key: stages["sft"][key] for key in ("settings_hash", "length", "finished_at")}
    stages["sft"]["started_at"] = "2026-01-01T10:00:00+0000"  # the run as trained: nothing outdated
    (folder / "run.json").write_text(json.dumps({"stages": stages}))
    run = read_run(folder)
    assert not run.outdated and not run.notes and "outdated" not in render_report([run], {})
