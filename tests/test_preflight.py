"""`recipe rewards`: the preflight passes a sound recipe and fails, with the reason, on rewards that cannot teach."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.preflight import run_preflight

runner = CliRunner()


def preflight(path, *args):
    return runner.invoke(app, ["rewards", str(path), "--golds", "40", "--groups", "3", *args])


def test_a_sound_recipe_passes_with_model_samples(recipe_dict, write_recipe, tmp_path):
    result = preflight(write_recipe(recipe_dict), "--samples", "1")
    assert result.exit_code == 0, result.output
    assert "gold answers: 32 checked, 0 unreadable, 0 perfect completions scored wrong" in result.output
    assert "sample 1" in result.output and "model samples from the tiny base model" in result.output
    assert "ok: no fatal problem found" in result.output
    assert not (tmp_path / "runs").exists()  # the preflight writes nothing to the run folder


def test_samples_that_are_all_alike_are_a_warning(recipe_dict, write_recipe):
    """A temperature near 0 samples one completion G times: every group scores alike, GRPO learns nothing."""
    recipe_dict["grpo"]["trainer"]["temperature"] = 1.0e-4
    result = preflight(write_recipe(recipe_dict), "--samples", "2")
    assert result.exit_code == 0, result.output  # a warning: a confident model samples alike at any temperature
    assert "samples of each of the 3 prompts are all the same text (temperature 0.0001)" in result.output
    assert "raise grpo.trainer.temperature" in result.output
    recipe_dict["grpo"]["trainer"]["temperature"] = 1.0
    assert "all the same text" not in preflight(write_recipe(recipe_dict), "--samples", "2").output


def test_no_samples_loads_and_names_no_model(recipe_dict, write_recipe):
    result = preflight(write_recipe(recipe_dict), "--samples", "0")
    assert result.exit_code == 0, result.output
    assert "no model samples" in result.output and "sample 1" not in result.output


def test_the_report_separates_good_from_bad_completions(recipe_dict):
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}, {"name": "format"}, {"name": "tag_count"}]
    report = run_preflight(validate_recipe(recipe_dict), golds=20, groups=4, use_model=False)
    accuracy, format_, tags = report.rows
    assert accuracy.means["perfect"] == 1.0 and accuracy.means["wrong answer"] == 0.0
    assert format_.means["perfect"] == 1.0 and format_.means["no tags"] == 0.0
    assert tags.means["perfect"] == 1.0 and tags.means["empty"] == 0.0
    assert all(row.signal == 1.0 for row in report.rows)
    assert not report.fatal


def test_a_template_the_format_reward_never_matches_is_fatal(recipe_dict, write_recipe):
    recipe_dict["sft"]["completion"] = "{reasoning}\nThe answer is {answer}."
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}, {"name": "format"}]
    result = preflight(write_recipe(recipe_dict), "--no-model")
    assert result.exit_code == 1
    assert "fatal: reward format ×1 gives every completion of a prompt the same score (0)" in result.output
    assert "accuracy" not in result.output.split("fatal:")[1]  # accuracy itself is fine


def test_unreadable_golds_are_fatal(recipe_dict, write_recipe, tmp_path):
    data = tmp_path / "data.jsonl"
    # an empty math span: the accuracy reward cannot read it (an empty gold stops validate itself)
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "$$"}) + "\n" for i in range(6)))
    recipe_dict["grpo"]["dataset"] = {"path": str(data)}
    result = preflight(write_recipe(recipe_dict), "--no-model")
    assert result.exit_code == 1
    assert "fatal: 6 of 6 gold answers cannot be read" in result.output


def test_a_reward_that_raises_is_a_finding_not_a_crash(recipe_dict, write_recipe, tmp_path):
    module = tmp_path / "broken.py"
    module.write_text("def broken(completions, **kwargs):\n    return [1 / 0 for _ in completions]\n")
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}, {"name": f"{module}:broken"}]
    result = preflight(write_recipe(recipe_dict), "--no-model")
    assert result.exit_code == 1
    assert "could not be scored: raised ZeroDivisionError" in result.output


def test_a_prefilled_think_is_reported_and_handled(recipe_dict, tmp_path):
    from recipe_cli.tiny_model import build_tiny_model

    folder = build_tiny_model(
        tmp_path / "r1-like", hidden_size=32, num_layers=1, num_heads=2, vocab_size=400, max_length=128, seed=1
    )
    template_path = folder / "chat_template.jinja"  # as DeepSeek-R1's distills do: the prompt opens the reasoning
    template_path.write_text(template_path.read_text().replace("assistant\n' }}", "assistant\n<think>\n' }}"))
    recipe_dict["model"] = {"path": str(folder)}
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}, {"name": "format"}, {"name": "tag_count"}]
    report = run_preflight(validate_recipe(recipe_dict), golds=10, groups=3, use_model=False)
    assert not report.example.lstrip().startswith("<think>")
    assert [row.means["perfect"] for row in report.rows] == [1.0, 1.0, 1.0]
    messages = [f.message for f in report.findings]
    prefilled = [m for m in messages if "ends the prompt with <think>" in m]
    assert prefilled and "SFT targets leave out the <think> the prompt has" in prefilled[0]
    assert "the eval's format rate" in prefilled[0]
    assert not report.fatal  # SFT's targets follow the template; nothing for the user to fix


def test_without_a_recipe_it_lists_the_catalogue():
    result = runner.invoke(app, ["rewards"])
    assert result.exit_code == 0
    assert "soft_overlong_punishment" in result.output and "ngram_size=3, max_penalty=-1.0" in result.output


def test_a_recipe_without_grpo_is_a_one_line_error(recipe_dict, write_recipe):
    del recipe_dict["grpo"]
    result = preflight(write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "the recipe has no `grpo:` section" in result.output


def test_the_demo_recipe_passes_the_preflight(tmp_path):
    from .conftest import REPO

    result = runner.invoke(
        app,
        [
            "rewards",
            str(REPO / "recipes" / "demo.yaml"),
            "--golds",
            "100",
            "--samples",
            "1",
            "--groups",
            "2",
            "--set",
            f"runs_dir={tmp_path}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ok: no fatal problem found" in result.output


def gsm8k_rows(n: int) -> list[dict]:
    """GSM8K-shaped rows: a worked solution ending in #### and the number."""
    return [
        {"question": f"Ann has {i} apples and buys 2 more. How many now?", "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"}
        for i in range(n)
    ]


def test_wrong_answers_scoring_as_right_are_fatal(recipe_dict, write_recipe, tmp_path):
    """Read as plain columns, a GSM8K file's gold is the whole worked solution: every answer looks right."""
    data = tmp_path / "gsm8k-copy.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in gsm8k_rows(8)))
    recipe_dict["grpo"]["dataset"] = {"path": str(data), "adapter": "columns"}
    result = preflight(write_recipe(recipe_dict), "--no-model")
    assert result.exit_code == 1, result.output
    assert "scores completions with a wrong answer" in result.output and "columns.answer" in result.output


def test_golds_that_are_all_the_same_are_fatal(recipe_dict, write_recipe, tmp_path):
    data = tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}?", "answer": "see above"}) + "\n" for i in range(6)))
    recipe_dict["grpo"]["dataset"] = {"path": str(data)}
    result = preflight(write_recipe(recipe_dict), "--no-model")
    assert result.exit_code == 1
    assert "every gold answer of the 6 checked is 'see above'" in result.output


def test_rewards_returning_nan_or_text_are_fatal(recipe_dict, write_recipe, tmp_path):
    module = tmp_path / "odd.py"
    module.write_text(
        "def nan(completions, **kwargs):\n    return [float('nan') for _ in completions]\n\n"
        "def text(completions, **kwargs):\n    return ['1.0' for _ in completions]\n"
    )
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}, {"name": f"{module}:nan"}, {"name": f"{module}:text"}]
    result = preflight(write_recipe(recipe_dict), "--no-model")
    assert result.exit_code == 1, result.output
    assert "returned NaN for" in result.output
    assert "returned '1.0' (a str) where a number or None belongs" in result.output
    assert "Traceback" not in result.output


def test_rewards_get_what_trl_passes_them_and_async_ones_are_awaited(recipe_dict, tmp_path):
    """TRL passes trainer_state, log_extra and log_metric, and awaits async rewards: the check before training
    (and the preflight) must call rewards the same way, or it refuses rewards that train fine."""
    from recipe_cli.preflight import check_rewards_run
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model

    (tmp_path / "trl_style.py").write_text(
        "def by_step(completions, trainer_state, **kwargs):\n"
        "    kwargs['log_metric']('seen', float(trainer_state.global_step))\n"
        "    return [1.0 if 'answer' in str(c) else 0.0 for c in completions]\n\n"
        "async def later(completions, **kwargs):\n"
        "    return [0.5 for _ in completions]\n"
    )
    recipe_dict["grpo"]["rewards"] += [{"name": f"{tmp_path / 'trl_style.py'}:{n}"} for n in ("by_step", "later")]
    recipe = validate_recipe(recipe_dict)
    check_rewards_run(recipe, prepare_base_model(recipe, RunFolder(recipe)))  # raises if either cannot run
    rows = {row.label.split(":")[-1]: row for row in run_preflight(recipe, use_model=False).rows}
    assert rows["later ×1"].skipped is None and rows["later ×1"].means["perfect"] == 0.5
    assert rows["by_step ×1"].skipped is None
