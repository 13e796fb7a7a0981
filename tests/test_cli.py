"""The command line through Typer's runner: user mistakes end in one message, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("validate", "rewards", "sft", "grpo", "eval", "push", "run", "serve", "report"):
        assert command in result.output
    assert "<bool>" not in result.output  # flags are flags
    assert invoke("-h").output == result.output
    from recipe_cli import __version__

    version = invoke("--version")
    assert version.exit_code == 0 and version.output.strip() == f"recipe {__version__}"
    bare = runner.invoke(app, [], prog_name="recipe")  # no command: the help, not a one-line error
    assert "Usage: recipe" in bare.output and "Commands" in bare.output and "error:" not in bare.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["sft", "r.yaml", "--num-processes", "0"],
            "invalid value for '--num-processes': Input should be greater than",
        ),
        (["sft", "r.yaml", "--bogus"], "no such option: --bogus; see `recipe sft --help`"),
        (["sft", "r.yaml", "--resum"], "no such option: --resum (Possible options: --resume); see `recipe sft --help`"),
        (["eval", "r.yaml", "--limit", "0"], "invalid value for '--limit'"),
        (["eval", "r.yaml", "--limit"], "option '--limit' requires an argument; see `recipe eval --help`"),
        (["report"], "missing argument 'RUN'; see `recipe report --help`"),
        (["sft", "r.yaml", "extra"], "got unexpected extra argument(s) (extra); see `recipe sft --help`"),
        (["bogus"], "no such command 'bogus'; see `recipe --help`"),
        (["--bogus", "sft"], "no such option: --bogus; see `recipe --help`"),
    ],
)
def test_command_line_mistakes_are_one_line_naming_the_help(args, expected, tmp_path, monkeypatch):
    """click's three lines (usage, hint, error) become the one line every other mistake gets."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args, prog_name="recipe")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), lines
    assert result.stdout == "" and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--resume", "--overwrite"], "--resume and --overwrite contradict each other; pass one of them"),
        (["--force"], "--force only applies with --resume"),
    ],
)
@pytest.mark.parametrize("command", ["sft", "grpo", "run"])
def test_a_dry_run_refuses_the_flags_a_real_run_refuses(recipe_dict, write_recipe, tmp_path, command, flags, expected):
    path = write_recipe(recipe_dict)
    for dry_run in ([], ["--dry-run"]):
        result = invoke(command, path, *flags, *dry_run)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [f"error: {expected}"] or (len(lines) == 1 and expected in lines[0]), lines
    assert not (tmp_path / "runs").exists()


LAUNCH_METAVARS = (
    "--num-processes N",
    "--accelerate-config CONFIG",
    "--num-machines N",
    "--machine-rank RANK",
    "--main-process-ip ADDRESS",
    "--main-process-port PORT",
)
METAVARS = {  # every option that takes a value, with the word its help shows for it
    "validate": ("--num-processes N", "--accelerate-config CONFIG"),
    "rewards": ("--golds N", "--groups N", "--samples N"),
    "data": ("--stage STAGE",),
    "sft": LAUNCH_METAVARS,
    "grpo": LAUNCH_METAVARS,
    "run": LAUNCH_METAVARS,
    "eval": ("--model PATH", "--limit N"),
    "push": ("--repo-id REPO_ID", "--stage STAGE", "--checkpoint PATH", "--revision BRANCH"),
    "serve": (),
    "report": ("--output PATH",),
    "convert": ("--output PATH", "--stage STAGE"),
}


@pytest.mark.parametrize("command", list(METAVARS))
def test_subcommand_help_names_values_in_words(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    usage = result.output.splitlines()[0]
    assert "RECIPE" in usage or "RUN" in usage or "FILE" in usage, usage
    options = result.output.split("Options:")[1]
    assert "<" not in options and "{" not in options, options  # no <list[str]>, <int range>, <path>
    if command not in ("report", "convert"):
        assert "--set KEY=VALUE" in options
    for words in METAVARS[command]:
        assert words in options, options


def test_validate_prints_the_plan(recipe_dict, write_recipe):
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    assert "stages: eval base -> sft -> eval -> grpo -> eval" in result.output
    assert "max_steps" in result.output  # a setting that differs from TRL's default
    assert "<|im_start|>user" in result.output  # the prompt rendered with the chat template
    assert "is valid" in result.output
    assert "eval decoding: greedy; max_new_tokens 16" in result.output


def test_validate_shows_the_eval_sampling(recipe_dict, write_recipe):
    recipe_dict["eval"].update(num_samples=4, temperature=0.7)
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    assert "greedy + 4 samples per problem (temperature 0.7, top_p 1, seed 7)" in result.output
    assert "k in [1, 2, 4]" in result.output


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["grpo"]["trainer"].update(num_generations=3), "does not divide the generation batch"),
        (lambda d: d["sft"]["trainer"].update(lr=1.0), "unknown SFTConfig setting"),
        (lambda d: d.pop("model"), "model: required but missing"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "sft", "grpo", "eval", "run"])
def test_invalid_recipe_exits_2_without_traceback_or_files(
    recipe_dict, write_recipe, tmp_path, mutate, expected, command
):
    mutate(recipe_dict)
    result = invoke(command, write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_missing_recipe_file():
    result = invoke("validate", "no/such/recipe.yaml")
    assert result.exit_code == 2
    assert "recipe file 'no/such/recipe.yaml' not found" in result.output


def test_set_overrides_from_the_command_line(recipe_dict, write_recipe):
    result = invoke("validate", write_recipe(recipe_dict), "--set", "grpo.trainer.num_generations=3")
    assert result.exit_code == 2
    assert "num_generations: 3" in result.output


def test_debug_shows_the_traceback(recipe_dict, write_recipe):
    recipe_dict["sft"]["trainer"]["lr"] = 1.0
    result = runner.invoke(app, ["--debug", "validate", str(write_recipe(recipe_dict))])
    assert result.exit_code != 0
    assert result.exception is not None and type(result.exception).__name__ == "RecipeError"


def test_stage_missing_from_the_recipe(recipe_dict, write_recipe):
    del recipe_dict["grpo"]
    result = invoke("grpo", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "the recipe has no `grpo:` section" in result.output


def test_grpo_before_sft_says_what_to_run(recipe_dict, write_recipe):
    result = invoke("grpo", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "run `recipe sft` first" in result.output


def test_push_without_a_trained_stage(recipe_dict, write_recipe):
    recipe_dict["push"] = {"repo_id": "someone/tiny"}
    result = invoke("push", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "no finished" in result.output


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output


def test_run_with_push_but_no_token_stops_before_training(recipe_dict, write_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe_dict["push"] = {"repo_id": "someone/tiny"}
    result = invoke("run", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "not logged in" in result.output
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(recipe_dict, write_recipe, tmp_path):
    recipe_dict["grpo"]["dataset"]["max_prompt_tokens"] = 60  # shorter than every generated prompt
    recipe_dict["grpo"]["trainer"]["beta"] = 0.04
    result = invoke("run", write_recipe(recipe_dict), "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "data: 32 sft rows kept of 32 read" in out and "one tokenised example" in out
    assert (
        "decontamination" in out and "token lengths" in out
    )  # the data chain, step by step and "masked (no loss)" in out
    assert "<|im_start|>assistant" in out  # a fully rendered prompt
    assert "2 unique prompts x 4 completions = 8 completions" in out
    assert "steps: 4 per epoch (8 examples per step); 4 in all (max_steps" in out
    assert "reference model: loaded (beta 0.04)" in out
    assert "memory estimate" in out and "optimizer" in out and "kv cache" in out
    assert "misfit: 32 of 32 grpo prompts are longer than grpo.dataset.max_prompt_tokens" in out
    assert "set max_prompt_tokens:" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("processes", "counted"),
    [
        ([], "steps: 7 per epoch (6 examples per step); 7 in all (1 epochs"),  # 14 micro-batches, the last of 1
        (["--num-processes", "2"], "steps: 4 per epoch (12 examples per step); 4 in all (1 epochs"),  # 7 a process
        ([], "steps: 7 per epoch (6 examples per step); 11 in all (1.5 epochs"),  # transformers rounds up
    ],
)
def test_dry_run_counts_sft_steps_as_transformers_trains_them(recipe_dict, write_recipe, processes, counted):
    """40 examples, 3 per micro-batch, 2 micro-batches per step: transformers trains a last, partial batch (7 steps
    on one process, 4 on two, where each process gets 7 of the 14 micro-batches; both measured), and the plan said
    6 and 3, counting whole steps only."""
    trainer = recipe_dict["sft"]["trainer"]
    del trainer["max_steps"]
    epochs = 1.5 if "1.5" in counted else 1
    trainer.update(num_train_epochs=epochs, per_device_train_batch_size=3, gradient_accumulation_steps=2)
    recipe_dict["sft"]["dataset"]["max_samples"] = 40
    result = invoke("sft", write_recipe(recipe_dict), "--dry-run", *processes)
    assert result.exit_code == 0, result.output
    assert counted in result.output


def test_dry_run_of_grpo_needs_no_sft_checkpoint(recipe_dict, write_recipe, tmp_path):
    result = invoke("grpo", write_recipe(recipe_dict), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "no misfits found" in result.output
    assert not (tmp_path / "runs").exists()


def test_validate_measures_sft_lengths_against_the_budgets(recipe_dict, write_recipe):
    recipe_dict["grpo"]["trainer"]["max_completion_length"] = 8  # shorter than every generated worked solution
    recipe_dict["eval"]["max_new_tokens"] = 40
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "SFT completions: median" in out and "90th percentile" in out and "(32 kept)" in out
    # every one is longer: the filter max_completion_tokens: 8 would leave SFT no example, so raising is the fix
    assert "32 of 32 SFT completions (100%)" in out and "SFT teaches completions GRPO cuts off; raise grpo" in out
    assert "max_completion_tokens" not in out
    assert "longer than eval.max_new_tokens" not in out  # the eval's budget fits
    assert "mask_truncated_completions" not in out
    # every completion cut off and masked out of the loss: the demo trained with a gradient of exactly 0
    recipe_dict["grpo"]["trainer"]["mask_truncated_completions"] = True
    out = invoke("validate", write_recipe(recipe_dict)).output
    assert (
        "SFT teaches completions GRPO cuts off, and mask_truncated_completions leaves every cut-off completion out "
        "of the loss: GRPO would train on nothing; raise grpo.trainer.max_completion_length to"
    ) in out


@pytest.mark.parametrize(
    ("overrides", "warns"),
    [
        (["grpo=null"], "longer than eval.max_new_tokens=64"),  # SFT-only (and eval): the eval's budget alone
        (["grpo=null", "eval=null"], None),  # SFT alone: no budget to check
        (["eval=null"], "longer than grpo.trainer.max_completion_length=64"),
        (["sft=null"], None),  # GRPO-only: no SFT completions to compare
    ],
)
def test_validate_states_the_budgets_of_the_stages_the_recipe_has(overrides, warns):
    """Hub data is not measured at validate time: the SFT limit is checked against the budgets that exist."""
    limits = [
        f"{stage}{key}=64" for stage, key in [("grpo", ".trainer.max_completion_length"), ("eval", ".max_new_tokens")]
    ]
    settings = overrides + [limit for limit in limits if f"{limit.split('.')[0]}=null" not in overrides]
    result = invoke("validate", REPO / "recipes" / "gsm8k.yaml", *[a for s in settings for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    out = result.output.replace("\n", " ")
    assert "Traceback" not in out and "is valid" in out
    if "sft=null" not in overrides:
        assert "SFT completions: at most 2048 tokens" in out
    if warns:
        assert warns in out
    else:
        assert "SFT may teach completions longer" not in out


def test_validate_measures_sft_lengths_against_the_eval_alone(recipe_dict, write_recipe):
    del recipe_dict["grpo"]
    recipe_dict["eval"]["max_new_tokens"] = 8  # shorter than every generated worked solution
    out = invoke("validate", write_recipe(recipe_dict)).output
    assert "SFT completions: median" in out and "; eval.max_new_tokens 8" in out
    assert "SFT teaches completions the eval cuts off; raise eval.max_new_tokens to" in out
    assert "grpo.trainer" not in out
    del recipe_dict["eval"]
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    assert "no GRPO or eval stage in the recipe, so no completion budget to check" in result.output


def test_dry_run_reports_the_length_budget_and_the_completion_filter(recipe_dict, write_recipe):
    recipe_dict["sft"]["dataset"]["max_completion_tokens"] = 25  # keeps the one-step solutions only
    recipe_dict["grpo"]["trainer"]["max_completion_length"] = 32
    recipe_dict["eval"]["max_new_tokens"] = 32
    result = invoke("sft", write_recipe(recipe_dict), "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "length budget" in out and "the SFT completions fit the GRPO and eval budgets" in out
    assert "sft completions are longer than sft.dataset.max_completion_tokens and are dropped" in out


def test_a_completion_filter_that_keeps_nothing_is_a_user_error(recipe_dict, write_recipe, tmp_path):
    recipe_dict["sft"]["dataset"]["max_completion_tokens"] = 2
    result = invoke("sft", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "every completion is longer than max_completion_tokens=2; raise it" in result.output
    assert not (tmp_path / "runs").exists()


def test_the_completion_filter_is_for_sft_only(recipe_dict, write_recipe):
    recipe_dict["grpo"]["dataset"]["max_completion_tokens"] = 100
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 2
    assert "its budget is trainer.max_completion_length" in result.output


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_tell_one_length_story_and_justify_their_numbers(path):
    from recipe_cli.config import grpo_max_completion_length, load_recipe
    from recipe_cli.trainer_settings import effective_setting

    recipe = load_recipe(path)
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    budget = grpo_max_completion_length(recipe.grpo.trainer)
    assert recipe.eval.max_new_tokens >= budget  # the eval does not cut what GRPO allowed
    assert "One length budget" in header
    if recipe.sft is not None:
        longest = recipe.sft.dataset.max_completion_tokens
        if longest is None:  # data made on this machine (the demo's): measured, and the header says how long
            from recipe_cli.data import prepare_sft
            from recipe_cli.plan import plan_tokenizer

            longest = max(prepare_sft(recipe, plan_tokenizer(recipe), check=False).kept_lengths("completion_tokens"))
            assert f"at most {longest} tokens" in header
        assert longest <= budget  # SFT teaches what GRPO samples
        prompt = recipe.sft.dataset.max_prompt_tokens or 0
        assert effective_setting("SFTConfig", recipe.sft.trainer, "max_length") >= prompt + longest
    assert "open-r1" in header and "lr 1.0e-6" in header and "generations" in header
    assert "bf16" not in "".join(recipe.grpo.trainer)  # precision comes from model.dtype


@pytest.mark.slow
def test_training_prints_one_compact_line_per_log_and_progress_lines_without_a_terminal(
    recipe_dict, write_recipe, monkeypatch
):
    from recipe_cli import console

    monkeypatch.setattr(console, "PROGRESS_EVERY", 0.0)  # a progress line at every step
    recipe_dict["sft"]["trainer"]["logging_steps"] = 2
    recipe_dict["grpo"]["trainer"]["logging_steps"] = 1
    del recipe_dict["eval"]
    result = invoke("run", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "{'loss'" not in out and "'learning_rate'" not in out  # no raw log dicts
    sft_lines = [line for line in out.splitlines() if line.startswith("sft 2/4") or line.startswith("sft 4/4")]
    assert len(sft_lines) == 2 and all("loss" in line and "s/step" in line for line in sft_lines)
    grpo_lines = [line for line in out.splitlines() if line.startswith("grpo 1/2") or line.startswith("grpo 2/2")]
    assert len(grpo_lines) == 2 and "reward" in grpo_lines[0] and "accuracy" in grpo_lines[0]
    assert "sft: 1/4 steps" in out  # the periodic progress line of a non-terminal output


def test_output_fits_80_columns_without_cropping(recipe_dict, write_recipe):
    result = invoke("validate", write_recipe(recipe_dict))  # the runner's console is 80 columns wide
    assert result.exit_code == 0
    assert "…" not in result.output
    assert "Think in <think> </think>, answer in <answer> </answer>." in result.output.replace("\n", " ")


def test_reward_and_data_tables_fit_80_columns_without_cropping(recipe_dict, write_recipe):
    """A reward named by its file's path, and every reason a data step removed rows, folded rather than cut."""
    import io

    from rich.console import Console

    from recipe_cli.config import validate_recipe
    from recipe_cli.console import data_steps_table
    from recipe_cli.pipeline import prepare_data

    recipe_dict["sft"]["dataset"].update(max_prompt_tokens=60, drop_duplicates=True, near_duplicates=0.5)
    path = write_recipe(recipe_dict)
    rewards = invoke("rewards", path, "--no-model", "--golds", "8", "--groups", "2")
    assert rewards.exit_code == 0, rewards.output
    data = invoke("data", path, "--dry-run", "--stage", "sft")
    assert data.exit_code == 0, data.output
    for result in (rewards, data):
        assert "…" not in result.output, result.output
    header = "".join(line.split("┃")[4].strip() for line in rewards.output.splitlines() if line.startswith("┃"))
    assert header.startswith(str(REPO / "tests" / "shaping_rewards.py:closeness_to_length"))
    assert "31 prompt over max_prompt_tokens" in data.output
    narrow = Console(file=io.StringIO(), width=48)  # a data step's name is never cut either
    [(prepared, _)] = prepare_data(validate_recipe(recipe_dict), ["sft"], dry_run=True)
    narrow.print(data_steps_table(prepared))
    assert "…" not in narrow.file.getvalue()


def test_validate_warns_of_sft_examples_that_max_length_would_cut(recipe_dict, write_recipe, tmp_path):
    """Reasoning past sft.trainer.max_length: TRL would cut off the answer, and `recipe sft` stops on it."""
    import json

    data = tmp_path / "traces.jsonl"
    rows = [{"question": f"What is {i} times 7?", "answer": str(7 * i), "reasoning": "7 " * 100} for i in range(4)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe_dict["sft"]["dataset"] = {"path": str(data), "adapter": "columns"}
    recipe_dict["sft"]["trainer"]["max_length"] = 120
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "sft.dataset: 4 of 4 examples are longer than sft.trainer.max_length=120 tokens" in out
    assert "(`recipe sft` and `run` stop on them)" in out


def test_prompts_longer_than_the_model_are_caught_with_fixes_that_fit(recipe_dict, write_recipe, tmp_path):
    """Prompts of ~2k tokens on a 256-position model: misfits suggest filtering, training stops in one line."""
    import json

    data = tmp_path / "long.jsonl"
    rows = [{"question": "7 " * 1500 + f"? {i}", "answer": str(i), "reasoning": f"{i}"} for i in range(4)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe_dict["sft"]["dataset"] = {"path": str(data), "adapter": "columns"}
    recipe_dict["grpo"]["dataset"] = {"path": str(data), "adapter": "columns"}
    path = write_recipe(recipe_dict)
    result = invoke("run", path, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output.replace("\n", " ")
    assert "4 of 4 sft prompts fill sft.trainer.max_length" in out and "max_prompt_tokens" in out
    assert "the longest prompts alone fill them: drop them with grpo.dataset.max_prompt_tokens" in out
    assert "max_completion_length: 1 " not in out and "max_length: 3" not in out
    result = invoke("sft", path)
    assert result.exit_code == 2
    assert "every prompt fills sft.trainer.max_length" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "runs").exists()  # nothing recorded as training, nothing left behind


def out_of_memory(*args, **kwargs):
    """A trainer that fails before its first step (building it, or the first step itself)."""
    raise RuntimeError("out of memory before step 1")


def test_a_crash_before_the_first_step_leaves_no_stage_marked_training(
    recipe_dict, write_recipe, tmp_path, monkeypatch
):
    import json

    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    path = write_recipe(recipe_dict)
    monkeypatch.setattr("transformers.Trainer.train", out_of_memory)
    result = invoke("sft", path)
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
    record = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())["stages"]
    assert "sft" not in record  # the attempt trained nothing: no stage is marked training
    assert not (tmp_path / "runs" / "tiny" / "recipe.yaml").exists()  # nor a recipe that trained nothing
    monkeypatch.undo()
    assert invoke("sft", path).exit_code == 0  # and a retry needs neither --resume nor --overwrite


@pytest.mark.slow
@pytest.mark.parametrize("where", ["build_stage_trainer", "Trainer.train"])
def test_a_stage_that_trains_no_step_leaves_the_runs_recipe_as_it_was(
    recipe_dict, write_recipe, tmp_path, monkeypatch, where
):
    """run.json and recipe.yaml tell the same run: an attempt that stops before its first step (the trainer
    cannot be built, or fails or is stopped before step 1) puts both back."""
    import json

    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    path = write_recipe(recipe_dict)
    assert invoke("sft", path).exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    saved, record = (run_dir / "recipe.yaml").read_bytes(), (run_dir / "run.json").read_text()
    target = (
        "recipe_cli.training.build_stage_trainer" if where == "build_stage_trainer" else "transformers.Trainer.train"
    )
    monkeypatch.setattr(target, out_of_memory)
    result = invoke("grpo", path, "--set", "grpo.trainer.learning_rate=0.002")
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError), result.output
    assert (run_dir / "recipe.yaml").read_bytes() == saved
    assert json.loads((run_dir / "run.json").read_text()) == json.loads(record)


@pytest.mark.slow
def test_an_overwrite_whose_trainer_cannot_be_built_forgets_the_stage_it_cleared(
    recipe_dict, write_recipe, tmp_path, monkeypatch
):
    """--overwrite clears the stage's folder before its trainer is built; if that fails, run.json must not go on
    calling the stage finished in a folder that no longer holds it."""
    import json

    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    path = write_recipe(recipe_dict)
    assert invoke("sft", path).exit_code == 0
    run_dir = tmp_path / "runs" / "tiny"
    monkeypatch.setattr("recipe_cli.training.build_stage_trainer", out_of_memory)
    result = invoke("sft", path, "--overwrite")
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError), result.output
    assert not any((run_dir / "sft").glob("*.safetensors"))
    assert "sft" not in json.loads((run_dir / "run.json").read_text())["stages"]
    monkeypatch.undo()
    assert invoke("sft", path).exit_code == 0  # nothing to resume or overwrite: it trains


def test_validate_says_what_is_not_on_this_machine(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    result = invoke("validate", REPO / "recipes" / "gsm8k.yaml")
    assert result.exit_code == 0, result.output
    out = result.output.replace("\n", " ")
    assert "not on this machine: model Qwen/Qwen2.5-0.5B-Instruct" in out and "dataset openai/gsm8k" in out
    (tmp_path / "hub" / "models--Qwen--Qwen2.5-0.5B-Instruct").mkdir(parents=True)
    out = invoke("validate", REPO / "recipes" / "gsm8k.yaml").output.replace("\n", " ")
    assert "model Qwen/Qwen2.5-0.5B-Instruct" not in out and "dataset openai/gsm8k" in out


def test_validate_names_every_dataset_a_command_reads(recipe_dict, write_recipe, tmp_path, monkeypatch):
    """A mixture's sources and every eval set (evaluated, and decontaminated against) are downloaded too."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    recipe_dict["grpo"]["dataset"] = {"mixture": [{"path": "someone/one", "adapter": "gsm8k"}, {"path": "someone/two"}]}
    recipe_dict["eval"]["datasets"] = [
        {"name": "arithmetic", **recipe_dict["eval"].pop("dataset")},
        {"name": "more", "path": "someone/three", "adapter": "gsm8k", "split": "test"},
    ]
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "not on this machine: dataset someone/one, dataset someone/two, dataset someone/three:" in out
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    out = " ".join(invoke("validate", write_recipe(recipe_dict)).output.split())
    assert "or point grpo.dataset.mixture.1.path at local files" in out
    assert "or point eval.datasets.1.path at local files" in out


def test_validate_offline_says_what_cannot_be_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 sets it
    result = invoke("validate", REPO / "recipes" / "gsm8k.yaml")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "downloaded when a command needs it" not in out
    assert (
        "warning: not on this machine: model Qwen/Qwen2.5-0.5B-Instruct: not local and not in the Hugging Face "
        "cache, and HF_HUB_OFFLINE is set, so it cannot be downloaded; unset HF_HUB_OFFLINE, download it first "
        "(`hf download Qwen/Qwen2.5-0.5B-Instruct`), or point model.path at a local model folder"
    ) in out
    assert (
        "(`hf download openai/gsm8k --repo-type dataset`), or point grpo.dataset.path and eval.dataset.path at" in out
    )


def test_library_deprecation_notices_are_silenced_and_others_are_not():
    """transformers warns on every generate and save about its own internals; a user's own warnings still show."""
    import warnings

    from recipe_cli.console import silence_library_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_library_warnings()
        for module in ("transformers.modeling_utils", "trl.trainer.grpo_trainer", "my_rewards"):
            warnings.warn_explicit("`x` is deprecated", FutureWarning, "f.py", 1, module=module)
    assert [str(w.message) for w in caught] == ["`x` is deprecated"]
    assert caught[0].filename == "f.py"


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device", "runs/tiny/sft/checkpoint-4/optimizer.pt"),
        # safetensors' Rust writer: no errno, the OS's words in its message
        RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
    ],
)
def test_a_full_disk_is_one_line_that_says_how_to_go_on(recipe_dict, write_recipe, monkeypatch, failure):
    def fill_the_disk(*args, **kwargs):
        raise RuntimeError("saving the final model failed") from failure

    monkeypatch.setattr("recipe_cli.pipeline.train_stages", fill_the_disk)
    result = invoke("sft", write_recipe(recipe_dict))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "no space left" in result.output.lower() and "runs_dir" in result.output and "--resume" in result.output
    debug = runner.invoke(app, ["--debug", "sft", str(write_recipe(recipe_dict))])
    assert isinstance(debug.exception.__cause__, RuntimeError)  # --debug: the traceback, down to the failed write
