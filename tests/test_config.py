"""The recipe schema: every mistake is reported with its dotted path and a fix, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recipe_cli.config import load_recipe, parse_override, validate_recipe
from recipe_cli.errors import RecipeError


def _error(data: dict) -> str:
    with pytest.raises(RecipeError) as caught:
        validate_recipe(data)
    return str(caught.value)


def test_tiny_recipe_is_valid(recipe_dict):
    recipe = validate_recipe(recipe_dict)
    assert recipe.training_stages == ["sft", "grpo"]
    assert recipe.sft.dataset.adapter == "arithmetic"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["model"].update(torch_dtype="bfloat16"),
            "model.torch_dtype: 'torch_dtype' was renamed; set `model.dtype`",
        ),
        (
            lambda d: d["sft"]["trainer"].update(learning_rat=1e-3),
            "sft.trainer.learning_rat: unknown SFTConfig setting; did you mean 'learning_rate'?",
        ),
        (
            lambda d: d["grpo"]["trainer"].update(max_prompt_length=256),
            "grpo.trainer.max_prompt_length: 'max_prompt_length' was removed from GRPOConfig",
        ),
        (lambda d: d["sft"]["trainer"].update(warmup_ratio=0.1), "write `warmup_steps: 0.1`"),
        (
            lambda d: d["sft"]["trainer"].update(overwrite_output_dir=True),
            "'overwrite_output_dir' was removed in transformers 5",
        ),
        (lambda d: d["grpo"]["trainer"].update(output_dir="x"), "grpo.trainer.output_dir: not allowed here"),
        (lambda d: d["grpo"]["trainer"].update(loss_type="ppo"), "grpo.trainer.loss_type: 'ppo' is not one of"),
        (
            lambda d: d["sft"]["trainer"].update(max_steps="ten"),
            "sft.trainer.max_steps: expected a whole number, got 'ten'",
        ),
        (lambda d: d.update(modle={}), "modle: unknown key; did you mean 'model'?"),
        (
            lambda d: d["sft"]["dataset"].update(max_sample=3),
            "sft.dataset.max_sample: unknown key; did you mean 'max_samples'?",
        ),
        (
            lambda d: d["grpo"]["rewards"].append({"name": "acuracy"}),
            "unknown reward 'acuracy'; did you mean 'accuracy'? available: accuracy, cosine,",
        ),
        (
            lambda d: d["grpo"]["rewards"][0].update(params={"strict": True}),
            "reward 'accuracy' has no parameter 'strict'",
        ),
        (
            lambda d: d["grpo"]["trainer"].update(num_generations=3),
            "num_generations: 3 does not divide the generation batch of 8",
        ),
        (
            lambda d: d["grpo"]["trainer"].update(num_generations=7),  # open-r1's, written for 7 GPUs
            "e.g. [7, 14, 21]), or train on 7 processes (--num-processes 7: a recipe written for several GPUs",
        ),
        (lambda d: d["grpo"]["trainer"].update(num_generations=1), "at least 2 completions per prompt"),
        (  # validate called it valid; GRPOConfig refused it only when the stage built its trainer
            lambda d: d["grpo"]["trainer"].update(generation_batch_size=12),
            "grpo.trainer.generation_batch_size: 12 does not split into micro-batches of 8 completions "
            "(per_device_train_batch_size 8); use a multiple of 8 that num_generations 4 divides, e.g. 8 or 16",
        ),
        (  # TRL crashed at the first loss computation (torch.quantile), after the model loaded
            lambda d: d["grpo"]["trainer"].update(top_entropy_quantile=-0.2),
            "grpo.trainer.top_entropy_quantile: -0.2 is not a value it can take: it must be at least 0 and at most 1",
        ),
        (  # TRL kept every token without a word: the setting did nothing
            lambda d: d["grpo"]["trainer"].update(top_entropy_quantile=1.5),
            "grpo.trainer.top_entropy_quantile: 1.5 is not a value it can take",
        ),
        (  # ZeroDivisionError in TRL's sync callback at the first step, after the model loaded
            lambda d: d["grpo"]["trainer"].update(beta=0.04, sync_ref_model=True, ref_model_sync_steps=0),
            "grpo.trainer.ref_model_sync_steps: 0 is not a value it can take: it must be at least 1",
        ),
        (  # the reference became 1.5 x policy - 0.5 x reference: an extrapolation, not a mix
            lambda d: d["grpo"]["trainer"].update(beta=0.04, sync_ref_model=True, ref_model_mixup_alpha=1.5),
            "grpo.trainer.ref_model_mixup_alpha: 1.5 is not a value it can take: it must be above 0 and at most 1",
        ),
        (
            lambda d: d["eval"]["dataset"].update(adapter="columns", path="missing.jsonl"),
            "eval.dataset.path: 'missing.jsonl' does not exist",
        ),
        (lambda d: d["model"].update(path="./no/such/model"), "give exactly one of `path`"),
        (lambda d: d.update(name="has space"), "name: 'has space' is not a run name; use letters, digits"),
        (lambda d: d.update(evaluation={}), "evaluation: unknown key; did you mean 'eval'?"),
        (
            lambda d: d["sft"]["trainer"].update(num_generations=4),
            "sft.trainer.num_generations: unknown SFTConfig setting; it is a GRPOConfig setting: put it under "
            "grpo.trainer",
        ),
        (lambda d: d["prompt"].update(user="{problem}"), "unknown placeholder(s) ['problem']"),
        (lambda d: d.update(push={"repo_id": "no-slash"}), "is not a Hub repo id"),
        (lambda d: d["sft"].pop("dataset"), "sft.dataset: required but missing; add `dataset:` to the sft section"),
        (
            lambda d: d.update(push={"private": True}),
            "push.repo_id: required but missing; set it to user-or-org/model-name, or pass `recipe push --repo-id`",
        ),
        (
            lambda d: d["grpo"]["rewards"].insert(0, {"weight": 1.0}),
            "grpo.rewards.0.name: required but missing; add `name:`",
        ),
        (lambda d: d["eval"].update(max_new_tokens="many"), "eval.max_new_tokens: input should be a valid integer"),
    ],
)
def test_mistakes_are_named_with_their_fix(recipe_dict, change, expected):
    change(recipe_dict)
    assert expected.lower() in _error(recipe_dict).lower()


def test_every_problem_is_reported_at_once(recipe_dict):
    recipe_dict["sft"]["trainer"]["learning_rat"] = 1
    recipe_dict["grpo"]["trainer"]["num_generations"] = 3
    recipe_dict["model"]["torch_dtype"] = "float32"
    message = _error(recipe_dict)
    assert message.startswith("recipe: 3 problems")
    assert "learning_rat" in message and "num_generations" in message and "torch_dtype" in message


def test_missing_files_are_reported_beside_schema_problems(recipe_dict):
    recipe_dict["model"]["colour"] = "red"  # a schema problem elsewhere must not hide the missing files
    recipe_dict["sft"]["dataset"] = {"path": "no/such/train.jsonl"}
    recipe_dict["eval"]["dataset"] = {"path": "missing.jsonl", "adapter": "columns"}
    recipe_dict["grpo"]["dataset"]["decontaminate"] = {"benchmarks": ["no-bench.jsonl"]}
    message = _error(recipe_dict)
    assert message.startswith("recipe: 4 problems")
    assert "model.colour: unknown key" in message
    assert "sft.dataset.path: 'no/such/train.jsonl' does not exist" in message
    assert "eval.dataset.path: 'missing.jsonl' does not exist" in message
    assert "grpo.dataset.decontaminate.benchmarks.0: 'no-bench.jsonl' is not a" in message


def test_a_missing_model_folder_is_reported_beside_schema_problems(recipe_dict):
    recipe_dict["model"] = {"path": "./no/such/model"}
    recipe_dict["sft"]["trainer"]["learning_rat"] = 1
    recipe_dict["eval"]["max_new_token"] = 8
    message = _error(recipe_dict)
    assert "model.path: './no/such/model' does not exist" in message and "eval.max_new_token" in message


def test_generation_batch_suggests_valid_values(recipe_dict):
    recipe_dict["grpo"]["trainer"].update(per_device_train_batch_size=6, num_generations=4)
    message = _error(recipe_dict)
    assert "num_generations in [2, 3, 6]" in message


def test_yaml_exponent_floats_become_numbers(recipe_dict, write_recipe):
    recipe_dict["sft"]["trainer"]["learning_rate"] = "PLACEHOLDER"
    text = yaml.safe_dump(recipe_dict).replace("PLACEHOLDER", "2e-5")
    assert yaml.safe_load(text)["sft"]["trainer"]["learning_rate"] == "2e-5"  # YAML 1.1 reads it as a string
    recipe = load_recipe(write_recipe(text))
    assert recipe.sft.trainer["learning_rate"] == pytest.approx(2e-5)
    assert isinstance(recipe.sft.trainer["learning_rate"], float)


def test_overrides_reach_nested_keys_and_lists(recipe_dict, write_recipe):
    path = write_recipe(recipe_dict)
    recipe = load_recipe(
        path, ["grpo.trainer.max_steps=9", "grpo.rewards.1.weight=2.0", "sft.trainer.learning_rate=3e-4"]
    )
    assert recipe.grpo.trainer["max_steps"] == 9
    assert recipe.grpo.rewards[1].weight == 2.0
    assert recipe.sft.trainer["learning_rate"] == pytest.approx(3e-4)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("grpo.trainer.max_steps", "write it as key.path=value"),
        ("grpo.rewards.5.weight=1", "'5' is not an index of the 3-item list"),
        ("seed.x=1", "'seed' is a value, not a section"),
    ],
)
def test_bad_overrides(recipe_dict, write_recipe, override, expected):
    with pytest.raises(RecipeError, match=expected):
        load_recipe(write_recipe(recipe_dict), [override])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the recipe is empty"),
        ("- a\n- b\n", "a list, not a mapping"),
        ("name: [unclosed\n", "not valid YAML at line"),
        # PyYAML keeps the last of two keys without a word: a second sft: block replaced the whole first one
        ("name: a\nsft:\n  trainer: {max_steps: 9}\nsft:\n  dataset: {}\n", r"line 4 gives `sft` again \(first at"),
        ("name: a\nsft:\n  trainer:\n    max_steps: 9\n    max_steps: 8\n", "line 5 gives `max_steps` again"),
        (
            "name: a\nsft: {trainer: {max_steps: 9, max_steps: 8}}\n",
            r"line 2 gives `max_steps` again \(first at line 2",
        ),
    ],
)
def test_malformed_files(write_recipe, text, expected):
    with pytest.raises(RecipeError, match=expected):
        load_recipe(write_recipe(text))


def test_missing_file():
    with pytest.raises(RecipeError, match="recipe file 'nope.yaml' not found"):
        load_recipe("nope.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml")), ids=lambda p: p.name
)
def test_a_recipe_reads_back_as_the_run_saved_it(path, tmp_path):
    """runs/<name>/recipe.yaml (every field, defaults included) must validate to the same recipe: eval, push
    and the model card read it back."""
    from recipe_cli.runs import RunFolder

    recipe = load_recipe(path, [f"runs_dir={tmp_path}"])
    RunFolder(recipe).save_recipe()
    assert RunFolder(recipe).recorded_recipe() == recipe


def test_yaml_anchors_and_merge_keys_share_settings_between_stages(recipe_dict, write_recipe):
    """`<<: *common` brings a mapping's keys in, to be overridden: not a key given twice."""
    recipe_dict["sft"]["trainer"]["warmup_steps"] = 0.1
    recipe_dict["grpo"]["trainer"]["learning_rate"] = 5.0e-4
    text = yaml.safe_dump(recipe_dict, sort_keys=False)
    sft, grpo = text.index("\nsft:"), text.index("\ngrpo:")
    sft_trainer, grpo_trainer = text.index("\n  trainer:\n", sft), text.index("\n  trainer:\n", grpo)
    assert sft_trainer < grpo < grpo_trainer
    end = len("\n  trainer:")
    text = (
        text[: sft_trainer + end]
        + " &common"
        + text[sft_trainer + end : grpo_trainer + end]
        + "\n    <<: *common"
        + text[grpo_trainer + end :]
    )
    recipe = load_recipe(write_recipe(text))
    assert recipe.grpo.trainer["learning_rate"] == recipe_dict["grpo"]["trainer"]["learning_rate"]  # overridden
    only_sft = set(recipe_dict["sft"]["trainer"]) - set(recipe_dict["grpo"]["trainer"])
    assert only_sft and all(recipe.grpo.trainer[key] == recipe_dict["sft"]["trainer"][key] for key in only_sft)


@pytest.mark.parametrize(("given", "meant"), [(False, "none"), (True, "group"), ("batch", "batch")])
def test_scale_rewards_takes_trls_true_and_false(recipe_dict, given, meant):
    """GRPOConfig reads true as group and false as none (Dr. GRPO recipes write `scale_rewards: false`); validate
    answered "expected a string, got False", naming no value to write."""
    recipe_dict["grpo"]["trainer"]["scale_rewards"] = given
    assert validate_recipe(recipe_dict).grpo.trainer["scale_rewards"] == meant


def test_a_wrong_value_is_named_once(recipe_dict):
    recipe_dict["seed"] = 1.5  # pydantic's message already says "got a number with a fractional part"
    with pytest.raises(RecipeError) as raised:
        validate_recipe(recipe_dict)
    assert str(raised.value).count("got") == 1 and "1.5" in str(raised.value)
