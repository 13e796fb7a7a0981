"""open-r1 recipes and `trl sft|grpo --config` files, read as recipes: every key, the changed defaults, what is
refused, a convert round trip, and TRL's dataset formats (tests/data/foreign holds the files, written for these
tests in those formats)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import load_recipe
from recipe_cli.errors import RecipeError
from recipe_cli.foreign import ForeignOptions, convert_file, detect_source, is_foreign, translate

from .conftest import REPO

FILES = REPO / "tests" / "data" / "foreign"
runner = CliRunner()


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """The foreign files and their data in a folder of their own (their paths are relative), and the tiny model
    their `model_name_or_path: tiny-model` names."""
    from recipe_cli.tiny_model import build_tiny_model

    for path in FILES.iterdir():
        shutil.copy(path, tmp_path / path.name)
    build_tiny_model(
        tmp_path / "tiny-model", hidden_size=32, num_layers=2, num_heads=2, vocab_size=400, max_length=256, seed=3
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def read(name: str) -> dict:
    return yaml.safe_load((FILES / name).read_text())


def keys_of(translation, kind: str) -> set[str]:
    return {note.key for note in translation.of_kind(kind)}


def test_recipes_and_flat_files_are_told_apart():
    assert is_foreign(read("open-r1-grpo.yaml")) and is_foreign(read("trl-sft.yaml"))
    assert not is_foreign(yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text()))
    assert detect_source(read("open-r1-sft.yaml")) == "open-r1"  # dataset_mixture, system_prompt
    assert detect_source(read("trl-grpo.yaml")) == "TRL"


def test_open_r1_grpo_every_key():
    translation = translate(read("open-r1-grpo.yaml"))
    recipe = translation.recipe
    assert (translation.source, translation.stage, translation.written_for) == (
        "open-r1",
        "grpo",
        "TRL 0.18 / transformers 4.52",
    )
    assert recipe["name"] == "Qwen2.5-1.5B-Open-R1-GRPO"  # output_dir's last part
    assert recipe["seed"] == 42
    model = recipe["model"]
    assert model["path"] == "Qwen/Qwen2.5-1.5B-Instruct" and model["revision"] == "main"
    assert model["dtype"] == "bfloat16"  # torch_dtype + bf16: the compute precision
    assert model["attn_implementation"] == "sdpa"
    assert model["chat_template"].startswith("{% for message in messages %}")
    assert recipe["prompt"] == {
        "system": "Think in <think> </think>, then answer in <answer> </answer>.",
        "user": "{question}",
    }
    grpo = recipe["grpo"]
    assert grpo["dataset"] == {
        "path": "open-r1/OpenR1-Math-220k",
        "adapter": "columns",
        "columns": {"question": "problem", "answer": "solution"},  # dataset_prompt_column, open-r1's gold column
        "config": "default",
        "max_prompt_tokens": 512,  # max_prompt_length
    }
    rewards = {r["name"]: r for r in grpo["rewards"]}
    assert [r["name"] for r in grpo["rewards"]] == [
        "accuracy",
        "format",
        "tag_count",
        "reasoning_steps",
        "cosine",
        "repetition_penalty",
        "length",
        "soft_overlong_punishment",
    ]
    assert [r["weight"] for r in grpo["rewards"]] == [1.0, 0.5, 0.25, 0.1, 1.0, 0.5, 0.2, 1.0]  # reward_weights
    assert rewards["cosine"]["params"] == {
        "min_value_wrong": -1.0,
        "max_value_wrong": -0.25,
        "min_value_correct": 0.5,
        "max_value_correct": 1.0,
        "max_len": 800,
    }
    assert rewards["repetition_penalty"]["params"] == {"ngram_size": 4, "max_penalty": -0.5}
    assert rewards["soft_overlong_punishment"]["params"] == {"max_completion_len": 1024, "soft_punish_cache": 256}
    trainer = grpo["trainer"]
    assert trainer["warmup_steps"] == 0.1  # warmup_ratio
    for gone in ("torch_dtype", "bf16", "max_prompt_length", "warmup_ratio", "overwrite_output_dir", "vllm_device"):
        assert gone not in trainer
    for gone in ("evaluation_strategy", "output_dir", "hub_model_id", "push_to_hub", "seed", "reward_weights"):
        assert gone not in trainer
    assert trainer["use_vllm"] is True and trainer["temperature"] == 0.7
    assert recipe["push"] == {
        "repo_id": "my-org/Qwen2.5-1.5B-Open-R1-GRPO",
        "revision": "main",  # open-r1 pushed the final model to main; v00.01 named its checkpoint branches
        "push_checkpoints": True,  # open-r1's push_to_hub_revision callback
    }
    assert "hub_model_revision" in keys_of(translation, "meaning")
    assert {"vllm_device", "benchmarks", "wandb_entity"} <= keys_of(translation, "dropped")
    assert trainer["project"] == "open-r1"  # recipe sets WANDB_PROJECT from it (recipe_cli.trackers)
    assert "evaluation_strategy" in keys_of(translation, "translated")


def test_trls_hub_revision_is_where_the_final_model_goes():
    hub = {"push_to_hub": True, "hub_model_id": "me/model", "hub_revision": "v2"}
    translation = translate({**read("trl-grpo.yaml"), **hub})
    assert translation.recipe["push"]["revision"] == "v2"
    assert "hub_revision" not in translation.recipe["grpo"]["trainer"]


def test_open_r1_defaults_that_changed_are_named_and_can_be_kept():
    new = translate(read("open-r1-grpo.yaml"))
    changed = {note.key: (note.old, note.new) for note in new.of_kind("default")}
    assert changed == {
        "beta": (0.04, 0.0),
        "use_bias_correction_kl": (False, True),
        "loss_type": ("bnpo", "dapo"),
        "vllm_mode": ("server", "colocate"),  # the file uses vLLM
        "vllm_importance_sampling_correction": (False, True),
        "gradient_checkpointing": (False, True),
        "push.private": (False, True),
    }  # max_completion_length, report_to, precision and cosine's parameters are set in the file
    assert "beta" not in new.recipe["grpo"]["trainer"]
    old = translate(read("open-r1-grpo.yaml"), ForeignOptions(old_defaults=True))
    trainer = old.recipe["grpo"]["trainer"]
    assert (trainer["beta"], trainer["loss_type"], trainer["vllm_mode"]) == (0.04, "bnpo", "server")
    assert trainer["use_bias_correction_kl"] is False and trainer["vllm_importance_sampling_correction"] is False
    assert trainer["gradient_checkpointing"] is False
    assert old.recipe["push"]["private"] is False


OPEN_R1_GRPO = {  # an open-r1 GRPO file that leaves every setting with a changed default unset
    "model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct",
    "dataset_name": "open-r1/OpenR1-Math-220k",
    "dataset_prompt_column": "problem",
    "reward_funcs": ["cosine", "soft_overlong_punishment"],
    "use_vllm": True,
}
OLD_SFT = {  # a `trl sft --config` file of TRL 0.18 (max_seq_length) that packs
    "model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct",
    "dataset_name": "trl-lib/Capybara",
    "max_seq_length": 512,
    "packing": True,
}
# key -> (TRL 0.18 / open-r1 value, value now, where --old-defaults puts the old value, the value there)
CHANGED_GRPO = {
    "beta": (0.04, 0.0, "grpo.trainer.beta", 0.04),
    "use_bias_correction_kl": (False, True, "grpo.trainer.use_bias_correction_kl", False),
    "loss_type": ("bnpo", "dapo", "grpo.trainer.loss_type", "bnpo"),
    "max_completion_length": (256, 512, "grpo.trainer.max_completion_length", 256),
    "vllm_mode": ("server", "colocate", "grpo.trainer.vllm_mode", "server"),
    "vllm_importance_sampling_correction": (False, True, "grpo.trainer.vllm_importance_sampling_correction", False),
    "max_prompt_length": (512, "none cut", "grpo.dataset.max_prompt_tokens", 512),
    "bf16": (False, True, "model.dtype", "float32"),
    "gradient_checkpointing": (False, True, "grpo.trainer.gradient_checkpointing", False),
    "report_to": ("all", "none", "grpo.trainer.report_to", "all"),
    "cosine.min_value_wrong": (0.0, -1.0, "grpo.rewards.0.params.min_value_wrong", 0.0),
    "soft_overlong_punishment.max_completion_len": (
        16384,
        "max_completion_length",
        "grpo.rewards.1.params.max_completion_len",
        16384,
    ),
    "soft_overlong_punishment.soft_punish_cache": (
        4096,
        "a quarter of it",
        "grpo.rewards.1.params.soft_punish_cache",
        4096,
    ),
}
CHANGED_SFT = {
    "average_tokens_across_devices": (False, True, "sft.trainer.average_tokens_across_devices", False),
    "packing_strategy": ("wrapped", "bfd", "sft.trainer.packing_strategy", "wrapped"),
    "bf16": (False, True, "model.dtype", "float32"),
    "gradient_checkpointing": (False, True, "sft.trainer.gradient_checkpointing", False),
    "report_to": ("all", "none", "sft.trainer.report_to", "all"),
}


def _at(recipe: dict, dotted: str):
    """The value at a dotted path of a recipe mapping (list items by index), None where there is none."""
    node = recipe
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


@pytest.mark.parametrize(("data", "table"), [(OPEN_R1_GRPO, CHANGED_GRPO), (OLD_SFT, CHANGED_SFT)])
def test_every_changed_default_is_named_with_both_values_and_kept_by_old_defaults(data, table):
    import copy

    from recipe_cli.config import validate_recipe
    from recipe_cli.foreign import converted_text

    new = translate(data)
    assert {note.key: (note.old, note.new) for note in new.of_kind("default")} == {
        key: (old, now) for key, (old, now, _, _) in table.items()
    }
    header = converted_text(new, "f.yaml", "f.recipe.yaml")
    for key, (old, now, where, _) in table.items():
        assert f"#   {key}: {old!r} -> {now!r} (" in header  # the printed list: the key, was, now
        assert _at(new.recipe, where) is None, key  # left unset: the current default holds
    old = translate(data, ForeignOptions(old_defaults=True))
    for key, (_, _, where, kept) in table.items():
        assert _at(old.recipe, where) == kept, key
    validate_recipe(copy.deepcopy(old.recipe), source="old")  # TRL's config and the rewards take the old values


@pytest.mark.parametrize(("beta", "listed"), [(0.01, True), (0.0, False)])
def test_the_kl_weighting_is_listed_where_a_kl_term_exists(beta, listed):
    assert ("use_bias_correction_kl" in keys_of(translate({**OPEN_R1_GRPO, "beta": beta}), "default")) is listed
    kept = translate({**OPEN_R1_GRPO, "beta": beta}, ForeignOptions(old_defaults=True)).recipe["grpo"]["trainer"]
    assert kept.get("use_bias_correction_kl") is (False if listed else None)


def test_vllm_device_is_dropped_saying_what_does_its_job_now():
    translation = translate(read("open-r1-grpo.yaml"))
    (note,) = [note for note in translation.of_kind("dropped") if note.key == "vllm_device"]
    assert "TRL 0.16" in note.becomes and "trl vllm-serve" in note.becomes
    assert "vllm_mode: server" in note.becomes and "`recipe serve`" in note.becomes and "colocate" in note.becomes
    assert "vllm_mode" not in translation.recipe["grpo"]["trainer"]  # TRL's colocate, listed as a changed default


@pytest.mark.parametrize("old_defaults", [False, True])
def test_a_server_era_vllm_memory_share_is_not_given_to_colocated_vllm(old_defaults):
    # as in open-r1's recipes/qwen/Qwen2.5-1.5B-Instruct/grpo/config_full.yaml (January 2025):
    # use_vllm: true, vllm_device: auto, vllm_gpu_memory_utilization: 0.7 (vLLM's share of a GPU of its own)
    data = {**OPEN_R1_GRPO, "vllm_device": "auto", "vllm_gpu_memory_utilization": 0.7}
    translation = translate(data, ForeignOptions(old_defaults=old_defaults))
    assert "vllm_gpu_memory_utilization" not in translation.recipe["grpo"]["trainer"]
    (note,) = [note for note in translation.of_kind("dropped") if note.key.startswith("vllm_gpu_memory_utilization")]
    assert (
        "0.7" in note.key and "colocate" in note.becomes and "launch.vllm_server.gpu_memory_utilization" in note.becomes
    )
    assert not any("vllm_gpu_memory_utilization" in note.key for note in translation.of_kind("translated"))
    # a file that names its vLLM mode, or one for current TRL, means the share it gives
    current = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/DeepMath-103K"}
    current |= {"reward_funcs": ["accuracy_reward"], "use_vllm": True, "vllm_gpu_memory_utilization": 0.7}
    for kept in ({**data, "vllm_mode": "colocate"}, current):
        assert translate(kept).recipe["grpo"]["trainer"]["vllm_gpu_memory_utilization"] == 0.7


def test_the_alignment_handbook_data_keys_no_script_read_are_dropped_saying_which_keys_do_their_job():
    import copy

    from recipe_cli.config import validate_recipe

    # the head of open-r1's recipes/qwen/Qwen2.5-1.5B-Instruct/sft/config_full.yaml (January 2025)
    data = {
        "model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct",
        "model_revision": "main",
        "torch_dtype": "bfloat16",
        "dataset_name": "HuggingFaceH4/Bespoke-Stratos-17k",
        "dataset_configs": ["all"],
        "preprocessing_num_workers": 8,
        "bf16": True,
        "max_seq_length": 4096,
    }
    translation = translate(data)
    assert not {"dataset_configs", "preprocessing_num_workers"} & set(translation.recipe["sft"]["trainer"])
    assert "config" not in translation.recipe["sft"]["dataset"]  # open-r1 loaded the dataset's default config
    dropped = {note.key: note.becomes for note in translation.of_kind("dropped")}
    assert "dataset_config" in dropped["dataset_configs"] and "dataset_num_proc" in dropped["preprocessing_num_workers"]
    validate_recipe(copy.deepcopy(translation.recipe), source="converted")


@pytest.mark.parametrize(
    ("data", "stage"),
    [
        # open-r1's recipes/OpenR1-Qwen-7B/sft/config.yaml era (TRL 0.17 pinned; use_liger removed in 0.18)
        ({"dataset_name": "open-r1/OpenR1-Math-220k", "max_seq_length": 4096, "use_liger": True}, "sft"),
        # open-r1's recipes/Qwen2.5-1.5B-Instruct/grpo/config_demo1.yaml (use_liger_loss removed in TRL 0.28)
        ({"dataset_name": "open-r1/OpenR1-Math-220k", "reward_funcs": ["accuracy"], "use_liger_loss": True}, "grpo"),
    ],
)
def test_the_liger_switches_trl_renamed_become_use_liger_kernel(data, stage):
    import copy

    from recipe_cli.config import validate_recipe

    translation = translate({"model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", **data})
    trainer = translation.recipe[stage]["trainer"]
    assert trainer["use_liger_kernel"] is True and not {"use_liger", "use_liger_loss"} & set(trainer)
    (note,) = [note for note in translation.of_kind("translated") if note.key.startswith("use_liger")]
    assert f"{stage}.trainer.use_liger_kernel" in note.becomes
    validate_recipe(copy.deepcopy(translation.recipe), source="converted")


# open-r1's recipes/dataset_filtering/filter_dapo.yaml, for scripts/pass_rate_filtering/compute_pass_rate.py
FILTER_DAPO = {
    "model_name_or_path": "open-r1/R1-Distill-Qwen-Math-7B",
    "dataset_name": "open-r1/DAPO-Math-17k-Processed",
    "dataset_config": "all",
    "dataset_split": "train",
    "max_completion_length": 32000,
    "num_generations": 8,
    "temperature": 1.0,
    "reward_funcs": ["accuracy"],
    "pass_rate_min": 0.1,
    "pass_rate_max": 0.6,
}


@pytest.mark.parametrize(
    ("given", "bounds"),
    [
        ({}, (0.1, 0.6)),
        ({"pass_rate_max": None}, (0.1, 0.9)),  # compute_pass_rate.py's PassRateScriptArguments defaults
        ({"pass_rate_min": None}, (0.1, 0.6)),
        ({"pass_rate_min": 0.2, "pass_rate_max": None}, (0.2, 0.9)),
    ],
)
def test_open_r1_pass_rate_filter_keeps_its_bounds(given, bounds):
    data = {key: value for key, value in {**FILTER_DAPO, **given}.items() if value is not None}
    difficulty = translate(data).recipe["grpo"]["dataset"]["difficulty"]
    assert (difficulty["min_pass_rate"], difficulty["max_pass_rate"]) == bounds
    assert (difficulty["samples"], difficulty["temperature"]) == (8, 1.0)


def test_a_current_trl_file_has_no_changed_defaults_and_refuses_old_ones(here):
    translation = translate(read("trl-sft.yaml"))
    assert translation.written_for is None and not translation.of_kind("default")
    with pytest.raises(RecipeError, match="--old-defaults: the file reads as current TRL"):
        translate(read("trl-sft.yaml"), ForeignOptions(old_defaults=True))
    for command in (["validate", "trl-sft.yaml"], ["convert", "trl-sft.yaml"], ["sft", "trl-sft.yaml", "--dry-run"]):
        result = runner.invoke(app, [*command, "--old-defaults"])
        assert result.exit_code == 2, result.output
        assert "reads as current TRL" in result.output and "Traceback" not in result.output
    assert not Path("trl-sft.recipe.yaml").exists()
    native = runner.invoke(app, ["validate", str(REPO / "recipes" / "demo.yaml"), "--old-defaults"])
    assert native.exit_code == 2 and "is a recipe: --old-defaults" in native.output


def test_open_r1_sft_mixture_lora_and_renamed_keys():
    translation = translate(read("open-r1-sft.yaml"))
    recipe = translation.recipe
    assert translation.stage == "sft" and recipe["name"] == "tiny-open-r1-sft"
    assert recipe["model"]["dtype"] == "float32"
    assert recipe["model"]["lora"] == {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    dataset = recipe["sft"]["dataset"]
    assert dataset["mixture"] == [
        {"path": "conversations.jsonl", "adapter": "trl", "weight": 1.0},
        {"path": "pairs.jsonl", "adapter": "trl", "weight": 0.5},  # weight: the share of the dataset kept
    ]
    assert dataset["shuffle"] is True  # open-r1 shuffles the concatenated mixture
    trainer = recipe["sft"]["trainer"]
    assert trainer["max_length"] == 256 and "max_seq_length" not in trainer  # renamed in TRL
    assert "eos_token" not in trainer and "dataset_mixture" not in trainer
    assert {"dataset_mixture.test_split_size", "eos_token"} <= keys_of(translation, "dropped")
    held_out = next(n for n in translation.notes if n.key == "dataset_mixture.test_split_size")
    assert "held that share of the mixture out of training" in held_out.becomes  # open-r1 trained on the rest


def test_an_accelerate_config_without_a_process_count_says_recipe_trains_in_one_process():
    """TRL's docs (clis.md): `accelerate_config: zero2` alone; `trl` launched the 8 processes TRL's zero2.yaml names."""
    data = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "stanfordnlp/imdb", "accelerate_config": "zero2"}
    translation = translate(data)
    assert translation.recipe["launch"] == {"accelerate_config": "zero2"}
    note = next(n for n in translation.notes if n.key.startswith("accelerate_config"))
    assert (
        note.kind == "meaning" and "recipe trains in one process" in note.becomes and "--num-processes" in note.becomes
    )


def test_trl_sft_text_field_launch_and_env():
    translation = translate(read("trl-sft.yaml"))
    recipe = translation.recipe
    assert recipe["sft"]["dataset"] == {"path": "texts.jsonl", "adapter": "trl", "columns": {"text": "content"}}
    assert recipe["launch"] == {"accelerate_config": "multi_gpu", "num_processes": 2}
    assert recipe["model"]["dtype"] == "float32" and recipe["name"] == "texts"
    assert recipe["prompt"]["system"] is None  # TRL adds no system prompt
    assert "env" in keys_of(translation, "dropped") and "env" not in recipe["sft"]["trainer"]


def test_trl_grpo_reward_names_and_datasets_list():
    translation = translate(read("trl-grpo.yaml"))
    grpo = translation.recipe["grpo"]
    assert translation.written_for == "TRL 0.18 / transformers 4.52"  # it uses torch_dtype and max_prompt_length
    assert grpo["dataset"] == {"path": "prompts.jsonl", "adapter": "prompt_completion", "max_prompt_tokens": 256}
    assert grpo["rewards"] == [
        {"name": "accuracy", "weight": 1.0},
        {"name": "think_format", "weight": 0.2},
        {"name": "accuracy", "weight": 0.5, "params": {"answer_after": "</think>"}},
        {
            "name": "soft_overlong_punishment",
            "weight": 1.0,
            "params": {"max_completion_len": 1280, "soft_punish_cache": 256},
        },
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reward_funcs": ["my_lib.rewards.short"]}, None),
        ({"reward_funcs": ["nonsense_reward"]}, "unknown reward 'nonsense_reward'"),
        ({"reward_funcs": ["accuracy_reward", "format_reward"], "reward_weights": [1.0]}, "one weight per reward"),
        ({"reward_model_name_or_path": "org/rm", "reward_funcs": ["accuracy_reward"]}, "not a reward model"),
        ({"datasets": [{"path": "a/b", "fraction": 0.5}], "reward_funcs": ["accuracy_reward"]}, "fraction"),
        ({"use_peft": True, "use_dora": True, "max_length": 64}, "use_dora: recipe trains plain LoRA"),
        ({"max_length": 64, "num_generations": 4}, "holds GRPO keys (num_generations) and SFT keys (max_length)"),
        ({"model_init_kwargs": {"device_map": "auto"}, "max_length": 64}, "model_init_kwargs.device_map"),
        ({"torch_dtype": "int8", "max_length": 64}, "torch_dtype: 'int8' is not one of"),
        # TRL's instruction-tuning example (docs/source/sft_trainer.md): the template of another model's tokenizer
        ({"chat_template_path": "HuggingFaceTB/SmolLM3-3B"}, "chat_template_path: 'HuggingFaceTB/SmolLM3-3B' names a"),
        # TRL hands it to load_dataset(name=...): a config's name
        ({"dataset_config": {"name": "main"}, "max_length": 64}, "dataset_config: {'name': 'main'}; give the name"),
    ],
)
def test_what_cannot_be_carried_over_is_refused_by_name(data, message):
    data = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/DeepMath-103K", **data}
    if message is None:
        rewards = translate(data).recipe["grpo"]["rewards"]
        assert rewards == [{"name": "my_lib.rewards:short", "weight": 1.0}]  # TRL's dotted path, our module:function
        return
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        translate(data)


def test_a_chat_template_file_is_the_template():
    data = {"model_name_or_path": "Qwen/Qwen3-0.6B-Base", "dataset_name": "trl-lib/Capybara"}
    recipe = translate({**data, "chat_template_path": "templates/chatml.jinja"}).recipe
    assert recipe["model"]["chat_template"] == "templates/chatml.jinja"  # read as a file, as TRL reads it


def test_code_rewards_are_refused_one_line_each(here):
    result = runner.invoke(app, ["validate", "refused.yaml"])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    for name in ("code", "ioi_code", "cf_code", "binary_code", "code_format"):
        assert sum(f"'{name}'" in line for line in lines) == 1, name
    assert "load_in_4bit" in result.output and "reward_model_name_or_path" in result.output
    assert "7 keys cannot be carried over" in result.output and "Traceback" not in result.output


def test_the_command_gives_the_stage_and_a_file_of_the_other_stage_is_named(tmp_path):
    flat = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/Capybara", "learning_rate": 1.0e-5}
    assert translate(flat).stage == "sft"  # as `trl sft --config`
    with pytest.raises(RecipeError, match=r"f.yaml \(a `trl grpo --config` file\): reward_funcs: missing"):
        translate(flat, ForeignOptions(stage="grpo"), "f.yaml")
    open_r1 = translate({**flat, "system_prompt": "Be brief."}, ForeignOptions(stage="grpo"))
    assert open_r1.stage == "grpo"  # open-r1's default rewards: accuracy, format, tag_count
    assert [r["name"] for r in open_r1.recipe["grpo"]["rewards"]] == ["accuracy", "format", "tag_count"]
    with pytest.raises(RecipeError, match="is a GRPO config .*run `recipe grpo`"):
        translate(read("trl-grpo.yaml"), ForeignOptions(stage="sft"))


@pytest.mark.parametrize("name", ["open-r1-grpo.yaml", "open-r1-sft.yaml", "trl-sft.yaml", "trl-grpo.yaml"])
def test_validate_prints_the_translation(here, name):
    result = runner.invoke(app, ["validate", name])
    assert result.exit_code == 0, result.output
    assert f"{name} is a" in result.output and "model_name_or_path" in result.output and "model.path" in result.output
    if name == "open-r1-grpo.yaml":  # the SFT file sets report_to, the one default that changed under it
        assert "defaults that changed since TRL 0.18 / transformers 4.52" in result.output


def test_old_defaults_option(here):
    result = runner.invoke(app, ["validate", "open-r1-grpo.yaml", "--old-defaults"])
    assert result.exit_code == 0, result.output
    assert "(kept: --old-defaults)" in result.output and "'bnpo'" in result.output


@pytest.mark.parametrize(
    ("name", "old_defaults"),
    [
        *((name, False) for name in ("open-r1-grpo.yaml", "open-r1-sft.yaml", "trl-sft.yaml", "trl-grpo.yaml")),
        *((name, True) for name in ("open-r1-grpo.yaml", "open-r1-sft.yaml", "trl-grpo.yaml")),  # trl-sft is current
    ],
)
def test_convert_round_trip(here, name, old_defaults):
    """The converted recipe validates as written and is the same recipe as the file it came from."""
    options = ForeignOptions(old_defaults=old_defaults)
    translation, written = convert_file(name, None, options)
    assert written == Path(name).with_name(Path(name).stem + ".recipe.yaml")
    text = written.read_text()
    assert text.startswith(f"# {translation.recipe['name']}: converted by `recipe convert` from {name}")
    for note in translation.notes:
        assert note.key in text  # every translation, changed default and dropped key is in the header
    converted = load_recipe(written)
    original = load_recipe(name, foreign=options)
    assert converted.model_dump() == original.model_dump()


def test_convert_command(here):
    result = runner.invoke(app, ["convert", "trl-grpo.yaml", "-o", "out/grpo.yaml", "--set", "seed=5"])
    assert result.exit_code == 0, result.output
    assert "wrote out/grpo.yaml" in result.output
    assert load_recipe("out/grpo.yaml").seed == 5
    again = runner.invoke(app, ["convert", "trl-grpo.yaml", "-o", "out/grpo.yaml"])
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    native = runner.invoke(app, ["convert", "out/grpo.yaml"])
    assert native.exit_code == 2 and "is a recipe already" in native.output


def test_convert_to_a_folder_or_an_unwritable_path_is_one_line(here):
    Path("out").mkdir()
    Path("a-file").write_text("")
    for args, expected in (
        (
            ["-o", "out"],
            "--output out is a folder; give the recipe file's path, e.g. --output out/trl-grpo.recipe.yaml",
        ),
        (["-o", "out", "--overwrite"], "--output out is a folder"),  # --overwrite replaces a file, never a folder
        (["-o", "a-file/grpo.yaml"], "cannot write a-file/grpo.yaml (a-file is a file, not a folder); give --output"),
        (["-o", "/proc/no-such/grpo.yaml"], "cannot write /proc/no-such/grpo.yaml (No such file or directory)"),
        (["-o", f"new/sub/{'x' * 300}.yaml"], "(File name too long); give --output a path in a writable folder"),
    ):
        result = runner.invoke(app, ["convert", "trl-grpo.yaml", *args])
        assert result.exit_code == 2, result.output + repr(result.exception)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert sorted(p.name for p in Path("out").iterdir()) == []
    assert not Path("new").exists()  # nor the folders made for a file that could not be written


def test_convert_writes_nothing_when_the_recipe_is_invalid(here):
    data = read("trl-sft.yaml") | {"report_to": "no-such-tracker"}
    Path("bad.yaml").write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["convert", "bad.yaml"])
    assert result.exit_code == 2 and "no-such-tracker" in result.output
    assert not Path("bad.recipe.yaml").exists()


def test_convert_does_not_ask_this_machine_for_the_training_machines_packages(here, monkeypatch):
    """A file for a cluster converts on a laptop: a tracker or optimizer package missing here is for the training
    commands to stop on, where the model trains."""
    from recipe_cli.trackers import is_installed as installed

    monkeypatch.setattr("recipe_cli.trackers.is_installed", lambda name: name != "wandb" and installed(name))
    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda name: name != "bitsandbytes" and installed(name))
    Path("cluster.yaml").write_text(
        yaml.safe_dump(read("trl-sft.yaml") | {"report_to": "wandb", "optim": "adamw_8bit"})
    )
    result = runner.invoke(app, ["convert", "cluster.yaml"])
    assert result.exit_code == 0, result.output
    recipe = load_recipe("cluster.recipe.yaml")
    assert recipe.sft.trainer["report_to"] == "wandb" and recipe.sft.trainer["optim"] == "adamw_8bit"


def _rows(adapter: str, rows: list[dict], **columns):
    from recipe_cli.config import SourceSettings
    from recipe_cli.data.adapters import ADAPTERS, RawRows
    from recipe_cli.data.sources import iter_source  # noqa: F401  (registers the adapters)

    names = list(dict.fromkeys(key for row in rows for key in row))
    settings = SourceSettings(path="x.jsonl", adapter=adapter, columns=columns)
    return list(ADAPTERS[adapter](RawRows(rows, names, "x.jsonl"), settings))


def test_messages_rows_train_on_the_last_assistant_turn():
    conversation = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "6"},
    ]
    (row,) = _rows("messages", [{"messages": conversation, "solution": "6"}])
    assert row["prompt"] == conversation[:3] and row["completion"] == "6"
    assert row["question"] == "and 3+3?" and row["answer"] == "6"  # the gold from TRL's `solution` column


def test_prompt_completion_and_text_rows():
    pairs = _rows(
        "prompt_completion",
        [
            {"prompt": "Q: 1+1?\nA:", "completion": " 2"},
            {"prompt": [{"role": "user", "content": "1+2?"}], "completion": [{"role": "assistant", "content": "3"}]},
        ],
    )
    assert pairs[0]["prompt"] == "Q: 1+1?\nA:" and pairs[0]["completion"] == " 2"
    assert pairs[1]["question"] == "1+2?" and pairs[1]["completion"] == "3"
    (text,) = _rows("text", [{"content": "one two"}], text="content")
    assert text["text"] == "one two"
    assert _rows("trl", [{"content": "x"}], text="content")[0]["text"] == "x"  # the format read off the columns
    with pytest.raises(RecipeError, match="in none of TRL's formats"):
        _rows("trl", [{"question": "x"}])
    with pytest.raises(RecipeError, match="not a conversation"):
        _rows("messages", [{"messages": "hello"}])


def test_local_files_in_trl_formats_are_recognised(tmp_path):
    from recipe_cli.config import SourceSettings

    for name in ("conversations.jsonl", "pairs.jsonl"):
        shutil.copy(FILES / name, tmp_path / name)
    assert SourceSettings(path=str(tmp_path / "conversations.jsonl")).adapter == "messages"
    assert SourceSettings(path=str(tmp_path / "pairs.jsonl")).adapter == "prompt_completion"


def test_grpo_refuses_plain_text(recipe_dict, write_recipe):
    recipe_dict["grpo"]["dataset"] = {"path": "texts.jsonl", "adapter": "text"}
    with pytest.raises(RecipeError, match="adapter: text` is plain text for SFT"):
        load_recipe(write_recipe(recipe_dict))


def test_sft_examples_of_each_format(here):
    """Conversations and pairs: prompt masked, completion + end of turn trained; text: every token trained."""
    from recipe_cli.data import prepare_sft
    from recipe_cli.models import load_tokenizer

    tokenizer = load_tokenizer("tiny-model", load_recipe("open-r1-sft.yaml").model)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for name in ("open-r1-sft.yaml", "trl-sft.yaml"):
        recipe = load_recipe(name, ["sft.dataset.decontaminate=false"])
        prepared = prepare_sft(recipe, tokenizer)
        for row, record in zip(prepared.rows, prepared.records, strict=True):
            ids, mask = row["input_ids"], row["completion_mask"]
            trained = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
            if name == "trl-sft.yaml":
                assert all(mask) and trained == record["completion"] + "<|im_end|>"  # eos appended, as TRL
            else:
                assert mask[0] == 0 and ids[-1] == end
                assert trained == record["completion"] + "<|im_end|>"
                assert "<|im_start|>assistant" in tokenizer.decode(ids[: mask.index(1)])
    sft = prepare_sft(load_recipe("open-r1-sft.yaml", ["sft.dataset.decontaminate=false"]), tokenizer)
    assert len(sft.rows) == 4 + 2  # every conversation, half of the pairs (weight 0.5)
    second_turn = next(r for r in sft.records if r["question"] == "And 8 + 1?")
    assert second_turn["completion"].endswith("<answer>9</answer>")


@pytest.mark.slow
def test_foreign_files_train_unchanged(here):
    """`recipe sft|grpo FILE` on the files as written: each trains and saves its checkpoint."""
    for command, name, run in (
        ("sft", "open-r1-sft.yaml", "tiny-open-r1-sft"),
        ("sft", "trl-sft.yaml", "texts"),
        ("grpo", "trl-grpo.yaml", "prompts"),
    ):
        extra = ["--num-processes", "1"] if name == "trl-sft.yaml" else []
        result = runner.invoke(app, [command, name, *extra])
        assert result.exit_code == 0, result.output
        state = json.loads((here / "runs" / run / command / "trainer_state.json").read_text())
        assert state["global_step"] >= 1
    logged = state["log_history"][0]  # GRPO: accuracy_reward and reasoning_accuracy_reward are both accuracy
    assert "rewards/accuracy/mean" in logged and "rewards/accuracy_2/mean" in logged


def test_precision_keys_of_either_release():
    base = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/Capybara", "max_length": 64}
    assert translate({**base, "model_init_kwargs": {"torch_dtype": "bfloat16"}}).recipe["model"]["dtype"] == "bfloat16"
    assert translate({**base, "dtype": "float16"}).recipe["model"]["dtype"] == "float16"
    assert translate({**base, "fp16": True}).recipe["model"]["dtype"] == "float16"
    assert translate({**base, "bf16": False}).recipe["model"]["dtype"] == "float32"
    assert "dtype" not in translate(base).recipe["model"]  # model.dtype's own default (auto)


def test_bracketed_text_is_shown_as_written(tmp_path, monkeypatch):
    """Errors and translation tables are plain text: rich markup would swallow `[accuracy_reward]`, `[cosine]`."""
    monkeypatch.chdir(tmp_path)
    flat = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/DeepMath-103K", "report_to": "none"}
    Path("no-rewards.yaml").write_text(yaml.safe_dump({**flat, "num_generations": 4}))
    result = runner.invoke(app, ["validate", "no-rewards.yaml"])
    assert result.exit_code == 2 and "name the rewards (e.g. [accuracy_reward])" in result.stderr, result.stderr
    Path("cosine.yaml").write_text(
        yaml.safe_dump({**flat, "reward_funcs": ["accuracy", "cosine"], "cosine_max_len": 500})
    )
    result = runner.invoke(app, ["validate", "cosine.yaml"])
    assert result.exit_code == 0, result.output
    assert "grpo.rewards[cosine].params.max_len" in result.output


def test_sharegpt_conversations_are_read_as_messages_as_trl_does(tmp_path):
    """OpenThoughts-114k's rows: a `system` column and `conversations` of from/value turns, which `trl sft` trains on
    as `messages`; `adapter: trl`, `adapter: messages` and a local file's inferred adapter read them the same."""
    from recipe_cli.config import SourceSettings

    turns = [{"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "<think>add</think> 4"}]
    rows = [{"system": "Think first.", "conversations": turns}]
    for adapter in ("trl", "messages"):
        (row,) = _rows(adapter, rows)
        assert row["prompt"] == [{"role": "user", "content": "2+2?"}] and row["completion"] == "<think>add</think> 4"
    path = tmp_path / "ot.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n")
    assert SourceSettings(path=str(path)).adapter == "messages"


def test_conversational_prompt_only_rows_are_read_as_trl_grpo_reads_them(tmp_path):
    """TRL's GRPO format: a `prompt` of turns and the gold in `solution`, no completion; the columns adapter could
    not read a conversation as a question."""
    from recipe_cli.config import DatasetSettings
    from recipe_cli.data import load_examples

    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": [{"role": "user", "content": "2+2?"}], "solution": "4"}) + "\n")
    settings = DatasetSettings(path=str(path))
    assert settings.adapter == "prompt_completion"
    (row,) = load_examples(settings, seed=0)
    assert row["prompt"] == [{"role": "user", "content": "2+2?"}] and row["answer"] == "4" and row["completion"] is None


def test_sharegpt_conversations_win_over_messages_as_in_trl():
    """open-r1/OpenThoughts-114k-math: `messages` holds NuminaMath's solution, `conversations` R1's trace in ShareGPT
    turns; `trl sft` replaces the first with the second, and trains on the trace."""
    row = {
        "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "Numina: 4"}],
        "conversations": [{"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "<think>R1</think> 4"}],
    }
    assert _rows("trl", [row])[0]["completion"] == "<think>R1</think> 4"
    assert _rows("messages", [row], messages="messages")[0]["completion"] == "Numina: 4"  # as mapped
    chatml = {**row, "conversations": [{"role": "user", "content": "2+2?"}]}  # TRL converts only ShareGPT turns
    assert _rows("trl", [chatml])[0]["completion"] == "Numina: 4"


def test_a_key_given_twice_counts_once_as_trl_reads_it_and_the_translation_says_so(here):
    """TRL's and open-r1's parsers read a file with yaml.safe_load, which keeps the last of a repeated key."""
    text = Path("trl-grpo.yaml").read_text()
    Path("twice.yaml").write_text(
        text.replace("learning_rate: 1.0e-03", "learning_rate: 1.0e-03\nlearning_rate: 5.0e-4")
    )
    result = runner.invoke(app, ["convert", "twice.yaml", "-o", "twice.recipe.yaml"])
    assert result.exit_code == 0, result.output
    assert load_recipe("twice.recipe.yaml").grpo.trainer["learning_rate"] == 5.0e-4
    line = text.splitlines().index("learning_rate: 1.0e-03") + 1
    note = f"learning_rate at line {line}: given again at line {line + 1}; that one counts, as in TRL and open-r1"
    assert note in Path("twice.recipe.yaml").read_text()
    Path("recipe-twice.yaml").write_text(Path("twice.recipe.yaml").read_text() + "name: other\n")
    refused = runner.invoke(app, ["validate", "recipe-twice.yaml"])  # a recipe's own keys stay refused
    assert refused.exit_code == 2 and "gives `name` again (first at line" in refused.output


def test_an_early_open_r1_grpo_file_without_rewards_reads_as_its_first_script_did():
    """open-r1's recipes of January-February 2025 named no rewards and no open-r1 key: its first grpo.py gave every
    prompt a fixed system prompt and the `problem` column, and rewarded accuracy and format."""
    early = {
        "model_name_or_path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "torch_dtype": "bfloat16",
        "dataset_name": "AI-MO/NuminaMath-TIR",
        "dataset_configs": ["all"],
        "bf16": True,
        "use_vllm": True,
        "vllm_device": "auto",
        "max_prompt_length": 512,
        "max_completion_length": 1024,
        "output_dir": "data/Qwen2.5-1.5B-Open-R1-GRPO",
    }
    translation = translate(early)
    assert (translation.source, translation.stage) == ("open-r1", "grpo")
    grpo = translation.recipe["grpo"]
    assert [(r["name"], r["weight"]) for r in grpo["rewards"]] == [("accuracy", 1.0), ("format", 1.0)]
    assert grpo["dataset"]["columns"] == {"question": "problem", "answer": "solution"}
    assert translation.recipe["prompt"]["system"].startswith("A conversation between User and Assistant.")
    assert (
        "<think> reasoning process here </think><answer> answer here </answer>"
        in (translation.recipe["prompt"]["system"])
    )
    format_note = next(note.becomes for note in translation.notes if note.key == "reward format")
    assert "without re.DOTALL, scored every completion with a line break 0" in format_note
    current = {key: value for key, value in early.items() if key not in ("torch_dtype", "max_prompt_length")}
    current.pop("vllm_device")
    with pytest.raises(RecipeError, match="reward_funcs: missing"):  # a current TRL file must name its rewards
        translate(current)


@pytest.mark.parametrize("callbacks", ["push_to_hub_revision", ["push_to_hub_revision"]])
def test_one_callback_given_as_a_name_is_a_list_of_one(callbacks):
    data = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/DeepMath-103K"}
    data |= {"reward_funcs": ["accuracy"], "push_to_hub": True, "hub_model_id": "me/model", "callbacks": callbacks}
    translation = translate(data)
    assert translation.recipe["push"]["push_checkpoints"] is True
    assert not [note for note in translation.of_kind("dropped") if note.key.startswith("callbacks")]


@pytest.mark.parametrize(
    "mixture",
    [{"dataset_mixture": {"datasets": [{"id": "c/d", "config": "x"}]}}, {"datasets": [{"path": "c/d", "name": "x"}]}],
)
def test_the_single_dataset_keys_a_dataset_list_overrides_are_named_as_dropped(mixture):
    data = {"model_name_or_path": "Qwen/Qwen2.5-0.5B", "reward_funcs": ["accuracy"], **mixture}
    data |= {"dataset_name": "a/b", "dataset_config": "main", "dataset_train_split": "validation"}
    translation = translate(data)
    assert {"dataset_name", "dataset_config", "dataset_train_split"} <= keys_of(translation, "dropped")
    assert "main" not in str(translation.recipe["grpo"]["dataset"])
