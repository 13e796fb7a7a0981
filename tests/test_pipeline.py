"""End to end on a tiny model: sft -> grpo -> eval through the CLI, and the weights really change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from recipe_cli.cli import app

runner = CliRunner()


def weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no weights in {folder}"
    tensors = {}
    for path in files:
        tensors.update(load_file(path))
    return tensors


def changed(before: dict, after: dict) -> bool:
    shared = before.keys() & after.keys()
    assert shared, "the two checkpoints share no tensor names"
    return any(not torch.equal(before[name], after[name]) for name in shared)


def run_ok(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.slow
def test_full_run_trains_and_evaluates(recipe_dict, write_recipe, tmp_path, monkeypatch):
    import recipe_cli.data

    chained = []  # every pass of a stage's data through the chain
    real_prepare = recipe_cli.data.prepare_stage
    monkeypatch.setattr(
        recipe_cli.data,
        "prepare_stage",
        lambda recipe, stage, *a, **k: chained.append(stage) or real_prepare(recipe, stage, *a, **k),
    )
    path = write_recipe(recipe_dict)
    output = run_ok("run", path)
    # each stage's data once, up front (a mistake stops before any work), for its report and its trainer
    assert chained == ["sft", "grpo"]
    run_dir = tmp_path / "runs" / "tiny"

    base, sft, grpo = (weights(run_dir / stage) for stage in ("base", "sft", "grpo"))
    assert changed(base, sft), "SFT left the weights as they were"
    assert changed(sft, grpo), "GRPO left the weights as they were"

    record = json.loads((run_dir / "run.json").read_text())
    assert record["stages"]["grpo"]["started_from"] == str(run_dir / "sft")  # hand-off through disk

    for label in ("base", "sft", "grpo"):
        summary = json.loads((run_dir / "eval" / f"{label}.json").read_text())
        assert summary["n"] == 8
        assert 0.0 <= summary["accuracy"] <= 1.0
        assert summary["model"]
        samples = [json.loads(line) for line in (run_dir / "eval" / f"{label}.jsonl").read_text().splitlines()]
        assert len(samples) == 8
        assert {"prompt", "completion", "extracted", "gold", "correct"} <= samples[0].keys()
        assert sum(s["correct"] for s in samples) / 8 == summary["accuracy"]
    assert "Evaluation" in output and "grpo" in output

    eval_output = run_ok("eval", path, "--limit", "4")
    assert "base" in eval_output and "sft" in eval_output and "grpo" in eval_output


@pytest.mark.slow
def test_lora_sft_then_grpo_continues_the_adapter(recipe_dict, write_recipe, tmp_path):
    recipe_dict["model"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0}
    recipe_dict["sft"]["trainer"]["learning_rate"] = 1.0e-2
    recipe_dict["grpo"]["trainer"]["learning_rate"] = 1.0e-2
    del recipe_dict["eval"]
    path = write_recipe(recipe_dict)
    run_ok("sft", path)
    run_ok("grpo", path)
    run_dir = tmp_path / "runs" / "tiny"
    for stage in ("sft", "grpo"):
        assert (run_dir / stage / "adapter_config.json").is_file(), f"{stage} did not save a LoRA adapter"
    sft, grpo = weights(run_dir / "sft"), weights(run_dir / "grpo")
    assert any("lora" in name for name in sft)
    assert changed(sft, grpo), "GRPO did not train the SFT adapter further"
    record = json.loads((run_dir / "run.json").read_text())["stages"]
    assert record["grpo"]["lora"] and record["grpo"]["base_model"] == str(run_dir / "base")

    recipe_dict["eval"] = {"dataset": {"adapter": "arithmetic", "split": "test", "max_samples": 4}, "max_new_tokens": 8}
    output = run_ok("eval", write_recipe(recipe_dict), "--model", run_dir / "grpo")
    assert "grpo" in output


@pytest.mark.slow
@pytest.mark.parametrize("lora", [None, {"r": 8, "alpha": 8}])
def test_sft_from_an_adapter_folder_trains_that_adapter_further(recipe_dict, write_recipe, tmp_path, caplog, lora):
    """`model.path` naming a LoRA adapter: SFT continues it, as GRPO does (it raised in TRL or autograd before)."""
    recipe_dict["model"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0}
    recipe_dict["sft"]["trainer"]["learning_rate"] = 1.0e-2
    del recipe_dict["grpo"], recipe_dict["eval"]
    run_ok("sft", write_recipe(recipe_dict))
    first = tmp_path / "runs" / "tiny"

    # bfloat16: a frozen 16-bit base under the float32 adapter, as with model.lora (full weights would be float32)
    again_model = {"path": str(first / "sft"), "dtype": "bfloat16", **({"lora": lora} if lora else {})}
    recipe_dict.update(name="again", model=again_model)
    trained = sum(tensor.numel() for tensor in weights(first / "sft").values())
    planned = run_ok("sft", write_recipe(recipe_dict, "again.yaml"), "--dry-run")  # read the base's config
    assert f"LoRA trains {trained:,}" in planned, planned  # the adapter's own rank and targets
    run_ok("sft", write_recipe(recipe_dict, "again.yaml"))
    assert ("with its own settings: r 4 (model.lora: 8)" in caplog.text) == (lora is not None)
    again = tmp_path / "runs" / "again" / "sft"
    assert (again / "adapter_config.json").is_file() and not (again / "config.json").is_file()
    before, after = weights(first / "sft"), weights(again)
    assert before.keys() == after.keys() and changed(before, after), "SFT did not train the adapter further"
    assert json.loads((again / "adapter_config.json").read_text())["base_model_name_or_path"] == str(first / "base")
    record = json.loads((again.parent / "run.json").read_text())["stages"]["sft"]
    assert record["lora"] is True and record["base_model"] == str(first / "base")
    assert (record["precision"]["base"], record["precision"]["master"]) == ("bfloat16", "float32")


def test_batched_greedy_equals_one_at_a_time(recipe_dict):
    """Left padding must not change what greedy decoding writes (right padding would)."""
    from recipe_cli.config import validate_recipe
    from recipe_cli.generation import generate_greedy
    from recipe_cli.models import load_causal_lm, load_tokenizer
    from recipe_cli.runs import RunFolder
    from recipe_cli.synthetic import generate_problems
    from recipe_cli.training import prepare_base_model

    recipe = validate_recipe(recipe_dict)
    path = prepare_base_model(recipe, RunFolder(recipe))
    tokenizer, model = load_tokenizer(path, recipe.model), load_causal_lm(path, recipe.model)
    questions = [p["question"] for p in generate_problems("test", 6, seed=1)]
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    batched, _ = generate_greedy(model, tokenizer, prompts, max_new_tokens=12, batch_size=6)
    single, _ = generate_greedy(model, tokenizer, prompts, max_new_tokens=12, batch_size=1)
    assert len({len(tokenizer(p)["input_ids"]) for p in prompts}) > 1  # the batch really needs padding
    assert batched == single


def test_trainer_config_on_cpu_keeps_the_recipe_choices(recipe_dict):
    from trl import SFTConfig

    from recipe_cli.config import validate_recipe
    from recipe_cli.training import trainer_config

    recipe_dict["sft"]["trainer"].update(gradient_checkpointing=True, report_to="none")
    config = trainer_config(SFTConfig, validate_recipe(recipe_dict), "sft")
    if not torch.cuda.is_available():
        assert config.bf16 is False and config.fp16 is False  # TRL's default bf16=True raises without a GPU
    assert config.activation_checkpointing is True  # the deprecated name still means what it said
    assert config.seed == 7 and config.output_dir.endswith("runs/tiny/sft")

    del recipe_dict["sft"]["trainer"]["gradient_checkpointing"]
    config = trainer_config(SFTConfig, validate_recipe(recipe_dict), "sft")
    if not torch.cuda.is_available():
        assert config.activation_checkpointing is False  # TRL's default is on; it slows small models on CPU


@pytest.mark.slow
def test_later_commands_use_the_runs_recorded_recipe(recipe_dict, write_recipe, tmp_path):
    """A run trained with --set model.lora=... is evaluated and pushed as a LoRA run without repeating the --set."""
    del recipe_dict["grpo"]
    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    recipe_dict["eval"]["dataset"]["max_samples"] = 2
    path = write_recipe(recipe_dict)
    run_ok("sft", path, "--set", "model.lora={r: 4, alpha: 8}", "--set", "sft.trainer.learning_rate=1.0e-2")
    output = run_ok("push", path, "--repo-id", "someone/lora", "--dry-run", "--set", "push.merge_lora=true")
    assert "using the run's recorded recipe" in output
    assert "full weights" in output  # the adapter merged: the run's LoRA setting was used
    output = run_ok("eval", path)
    assert "using the run's recorded recipe" in output and "eval sft" in output
    assert "differs from the run in model.lora" in output  # said, not silently used
    summary = json.loads((tmp_path / "runs" / "tiny" / "eval" / "sft.json").read_text())
    assert summary["lora"] is True


def test_the_runs_record_applies_to_the_stages_a_command_does_not_start_again(recipe_dict):
    """Shared sections and recorded stages the command does not train come from runs/<name>/recipe.yaml."""
    import copy

    from recipe_cli.config import validate_recipe
    from recipe_cli.pipeline import recipe_for_run
    from recipe_cli.runs import RunFolder

    trained = copy.deepcopy(recipe_dict)
    trained["model"]["lora"] = {"r": 4, "alpha": 8}
    trained["sft"]["trainer"]["learning_rate"] = 1.0e-2
    run = RunFolder(validate_recipe(trained))
    earlier = run.record_training("sft", None)

    def load(trains, overwrite=False):
        return recipe_for_run(copy.deepcopy(recipe_dict), "r.yaml", trains, overwrite)

    grpo = load(("grpo",))
    assert grpo.recipe.model.lora is not None and grpo.recipe.sft.trainer["learning_rate"] == 1.0e-2
    assert grpo.sections == ("model", "prompt", "seed", "sft") and grpo.record == run.root / "recipe.yaml"
    assert any(d.startswith("model.lora: {") and d.endswith("-> None") for d in grpo.differences), grpo.differences
    assert any(d.startswith("sft.trainer.learning_rate: 0.01 -> 0.001") for d in grpo.differences)
    resumed = load(("sft",))  # sft's own section is the command line's: --resume compares it with the run
    assert resumed.sections == ("model", "prompt", "seed") and resumed.recipe.model.lora is not None
    assert resumed.recipe.sft.trainer["learning_rate"] == 1.0e-3
    for trains in (("sft",), ("sft", "grpo")):  # every recorded stage starts again: the command line alone
        fresh = load(trains, overwrite=True)
        assert fresh.record is None and fresh.recipe.model.lora is None and not fresh.differences
    assert load((), overwrite=True).sections == ("model", "prompt", "seed", "sft")  # eval, push, data train nothing
    recipe_dict["model"]["attn_implementation"] = "eager"  # e.g. where the run's flash-attn is not installed
    evaluated = load(())  # a command that only loads the model computes attention as it is told
    assert evaluated.recipe.model.attn_implementation == "eager" and evaluated.recipe.model.lora is not None
    assert not any(d.startswith("model.attn_implementation") for d in evaluated.differences)
    assert load(("grpo",)).recipe.model.attn_implementation != "eager"  # training goes on as the run trained
    del recipe_dict["model"]["attn_implementation"]
    run.restore_stage("sft", earlier)  # nothing recorded as started: the record is not the run's yet
    assert load(("grpo",)).record is None


def test_stages_after_one_a_command_starts_again_do_not_bind_it(recipe_dict):
    """`recipe sft --overwrite` retrains the model grpo continued: grpo's record no longer keeps the run's settings,
    and a record nothing keeps is not even read."""
    import copy

    from recipe_cli.config import validate_recipe
    from recipe_cli.errors import RecipeError
    from recipe_cli.pipeline import recipe_for_run
    from recipe_cli.runs import RunFolder

    run = RunFolder(validate_recipe(copy.deepcopy(recipe_dict)))
    run.record_training("sft", None)
    run.record_training("grpo", None)
    changed = {**copy.deepcopy(recipe_dict), "seed": 9}

    def load(trains, overwrite=False):
        return recipe_for_run(copy.deepcopy(changed), "r.yaml", trains, overwrite)

    again = load(("sft",), overwrite=True)
    assert again.record is None and again.recipe.seed == 9 and not again.differences
    kept = load(("grpo",))  # sft is not trained again: its record binds, and wins
    assert kept.sections == ("model", "prompt", "seed", "sft") and kept.recipe.seed == 7
    assert kept.differences == ("seed: 7 -> 9",)
    for flags in ({"overwrite": True}, {"force": True}):  # asked to train as the command line says: refused
        with pytest.raises(RecipeError, match=r"--(overwrite|force): .* seed differ from .* in seed: 7 -> 9 "):
            recipe_for_run(copy.deepcopy(changed), "r.yaml", ("grpo",), **flags)
    changed = {**copy.deepcopy(recipe_dict), "sft": {**recipe_dict["sft"], "trainer": {"max_steps": 6}}}
    sft = load(("grpo",), overwrite=True)  # the sft model exists as trained: a difference there is said
    assert "sft.trainer.max_steps: 4 -> 6" in sft.differences and sft.recipe.sft.trainer["max_steps"] == 4
    changed = {**copy.deepcopy(recipe_dict), "seed": 9}
    (run.root / "recipe.yaml").write_text("model: [unclosed\n")
    for trains in (("sft",), ("sft", "grpo")):
        assert load(trains, overwrite=True).recipe.seed == 9  # recipe.yaml is not read
    with pytest.raises(RecipeError, match="cannot be read"):
        load(("grpo",), overwrite=True)


@pytest.mark.slow
def test_a_data_mistake_leaves_the_runs_recipe_as_it_was(recipe_dict, write_recipe, tmp_path):
    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    path = write_recipe(recipe_dict)
    run_ok("sft", path)
    saved = (tmp_path / "runs" / "tiny" / "recipe.yaml").read_bytes()
    mistake = runner.invoke(app, ["grpo", str(path), "--set", "grpo.dataset.max_prompt_tokens=1"])
    assert mistake.exit_code == 2 and "every prompt is longer than max_prompt_tokens=1" in mistake.stderr
    assert (tmp_path / "runs" / "tiny" / "recipe.yaml").read_bytes() == saved
    assert not (tmp_path / "runs" / "tiny" / "grpo").exists()


@pytest.mark.slow
def test_grpo_goes_on_with_the_settings_sft_trained_with(recipe_dict, write_recipe, tmp_path):
    """`recipe sft --set model.lora=...` then `recipe grpo` trains the adapter further, not full weights."""
    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    recipe_dict["grpo"]["trainer"]["max_steps"] = 1
    path = write_recipe(recipe_dict)
    run_dir = tmp_path / "runs" / "tiny"
    run_ok("sft", path, "--set", "model.lora={r: 4, alpha: 8}")
    output = run_ok("grpo", path)
    assert f"using the run's recorded recipe {run_dir / 'recipe.yaml'}" in output.replace("\n", " ")
    assert "for model, prompt, seed, sft" in output and "differs from the run in model.lora" in output
    assert (run_dir / "grpo" / "adapter_config.json").is_file(), "grpo dropped the run's LoRA"
    assert json.loads((run_dir / "run.json").read_text())["stages"]["grpo"]["lora"] is True
    assert "lora" in (run_dir / "recipe.yaml").read_text().split("prompt:")[0]  # the record kept it
    output = run_ok("push", path, "--repo-id", "someone/tiny", "--dry-run")
    assert "grpo checkpoint, LoRA adapter" in output.replace("\n", " ")


def test_an_adapter_trained_further_names_each_setting_of_model_lora_it_does_not_take(tmp_path, caplog):
    """The adapter keeps its rank, alpha, dropout and targets; the warning names every one model.lora gives
    otherwise (targets when model.lora names them: all-linear is resolved against the model only by peft)."""
    from recipe_cli.config import LoraSettings, ModelSettings
    from recipe_cli.models import warn_lora_unused

    saved = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["v_proj", "q_proj"]}
    (tmp_path / "adapter_config.json").write_text(json.dumps(saved))
    same = {"r": 4, "alpha": 8, "dropout": 0.0}
    for targets, warned in ((["q_proj", "v_proj"], False), ("all-linear", False), (["q_proj"], True)):
        caplog.clear()
        lora = LoraSettings(**same, target_modules=targets)
        warn_lora_unused(tmp_path, ModelSettings(path=str(tmp_path), lora=lora), "sft")
        assert ("target_modules ['q_proj', 'v_proj'] (model.lora: ['q_proj'])" in caplog.text) == warned, caplog.text
        assert "r 4" not in caplog.text
