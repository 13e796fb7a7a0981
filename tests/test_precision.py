"""Real models train right: float32 master weights whatever `model.dtype` says, bf16 files when pushed,
and the reference model at the pinned revision.

A bf16 weight near 0.02 moves in steps of ~1.2e-4, so updates of ~1e-6 round back to the old value:
loaded in bf16 and trained in place, 3 steps at lr 1e-6 change ~2% of the weights with loss and
grad_norm looking just the same. These tests fail on that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.precision import Machine, plan_precision
from tests.test_pipeline import weights

runner = CliRunner()


def run_ok(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def changed_share(before: dict, after: dict) -> float:
    """The share of the elements of the weight matrices (2-D tensors) that an update changed."""
    names = [name for name in before.keys() & after.keys() if before[name].dim() == 2]
    assert names, "no weight matrices in common"
    changed = sum(int((before[n].float() != after[n].float()).sum()) for n in names)
    return changed / sum(before[n].numel() for n in names)


def bf16_recipe(recipe_dict: dict, stage: str) -> dict:
    """One stage of the tiny recipe, 3 steps at lr 1e-6, with `model.dtype: bfloat16`."""
    recipe_dict["model"]["dtype"] = "bfloat16"
    for other in ("sft", "grpo", "eval"):
        if other != stage:
            del recipe_dict[other]
    recipe_dict[stage]["trainer"].update(max_steps=3, learning_rate=1.0e-6)
    return recipe_dict


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_bf16_recipes_train_float32_master_weights(stage, recipe_dict, write_recipe, tmp_path):
    run_ok(stage, write_recipe(bf16_recipe(recipe_dict, stage)))
    run_dir = tmp_path / "runs" / "tiny"
    base, trained = weights(run_dir / "base"), weights(run_dir / stage)
    assert {t.dtype for t in trained.values()} == {torch.float32}  # the checkpoint keeps the master weights
    assert changed_share(base, trained) >= 0.9  # in bf16, ~2% of the weights would move
    precision = json.loads((run_dir / "run.json").read_text())["stages"][stage]["precision"]
    assert precision["master"] == "float32" and precision["model_dtype"] == "bfloat16"


@pytest.mark.slow
def test_a_bf16_lora_run_keeps_a_float32_adapter_on_a_bf16_base(recipe_dict, write_recipe, tmp_path):
    recipe_dict["model"].update(dtype="bfloat16", lora={"r": 4, "alpha": 8, "dropout": 0.0})
    del recipe_dict["eval"]
    for stage in ("sft", "grpo"):
        recipe_dict[stage]["trainer"].update(max_steps=2, learning_rate=1.0e-2)
    path = write_recipe(recipe_dict)
    run_ok("sft", path)
    run_ok("grpo", path)
    run_dir = tmp_path / "runs" / "tiny"
    sft, grpo = weights(run_dir / "sft"), weights(run_dir / "grpo")
    assert {t.dtype for t in grpo.values()} == {torch.float32}
    assert changed_share(sft, grpo) > 0.5
    record = json.loads((run_dir / "run.json").read_text())["stages"]["grpo"]["precision"]
    assert record["base"] == "bfloat16" and record["master"] == "float32"


def test_precision_plan_on_a_gpu_and_without_one():
    gpu = plan_precision("bfloat16", lora=False, machine=Machine(gpu=True))
    assert (gpu.master, gpu.compute, gpu.saved, gpu.generation, gpu.pushed) == (
        "float32",
        "bfloat16",
        "float32",
        "bfloat16",
        "bfloat16",
    )
    assert gpu.mixed_precision == "bf16"
    fp16 = plan_precision("float16", lora=False, machine=Machine(gpu=True))
    assert fp16.mixed_precision == "fp16" and fp16.master == "float32"
    cpu = plan_precision("bfloat16", lora=False, machine=Machine(gpu=False))
    assert cpu.mixed_precision is None and cpu.compute == "float32" and "no GPU" in cpu.note
    auto_old_gpu = plan_precision("auto", lora=False, machine=Machine(gpu=True, bf16=False))
    assert auto_old_gpu.requested == "float32" and auto_old_gpu.mixed_precision is None
    assert auto_old_gpu.note is None
    bf16_old_gpu = plan_precision("bfloat16", lora=False, machine=Machine(gpu=True, bf16=False))
    assert "no bfloat16 units" in bf16_old_gpu.note and "model.dtype: float16" in bf16_old_gpu.note
    lora = plan_precision("bfloat16", lora=True, machine=Machine(gpu=True), push_dtype="float32")
    assert (lora.master, lora.base, lora.pushed) == ("float32", "bfloat16", "float32")


def test_a_gpu_that_only_emulates_bf16_has_none(monkeypatch):
    """torch counts emulated bf16 (V100, T4) as supported unless asked not to; auto must not pick it there."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert Machine.here() == Machine(gpu=True, bf16=False)


def test_the_trainer_gets_mixed_precision_flags_from_model_dtype(recipe_dict):
    from trl import SFTConfig

    from recipe_cli.config import validate_recipe
    from recipe_cli.training import device_defaults, recipe_settings, stage_precision

    recipe_dict["model"]["dtype"] = "bfloat16"
    recipe = validate_recipe(recipe_dict)
    gpu = Machine(gpu=True)
    flags = device_defaults(recipe_settings(recipe, "sft"), stage_precision(recipe, gpu), gpu)
    assert flags["bf16"] is True and flags["fp16"] is False
    cpu = Machine(gpu=False)
    flags = device_defaults(recipe_settings(recipe, "sft"), stage_precision(recipe, cpu), cpu)
    assert flags["bf16"] is False and flags["fp16"] is False
    if not torch.cuda.is_available():
        from recipe_cli.training import trainer_config

        assert trainer_config(SFTConfig, recipe, "sft").bf16 is False  # TRL's default True raises on CPU


def test_validate_and_dry_run_print_the_precision_plan(recipe_dict, write_recipe):
    recipe_dict["model"]["dtype"] = "bfloat16"
    path = write_recipe(recipe_dict)
    out = run_ok("validate", path)
    assert "precision: master float32, compute bfloat16 (bf16 mixed precision), checkpoints float32" in out
    assert "pushed bfloat16" in out
    out = run_ok("sft", path, "--dry-run")
    assert "precision here: master float32" in out
    assert "master weights float32" in out  # the memory table counts float32 master weights


def test_memory_estimate_counts_float32_master_weights():
    from recipe_cli.plan import memory_estimate

    gpu = Machine(gpu=True)
    full = memory_estimate(1000, 1000, plan_precision("bfloat16", lora=False, machine=gpu), lora=False, reference=True)
    assert full["weights"] == 4000 and full["gradients"] == 4000 and full["optimizer"] == 8000
    assert full["reference model"] == 2000  # frozen: loaded in the compute dtype
    lora = memory_estimate(1000, 10, plan_precision("bfloat16", lora=True, machine=gpu), lora=True)
    assert lora["weights"] == 990 * 2 + 10 * 4 and lora["gradients"] == 40 and lora["optimizer"] == 80


@pytest.mark.slow
def test_a_pushed_bf16_recipe_uploads_bf16_safetensors(recipe_dict, write_recipe, tmp_path, fake_hub):
    recipe_dict = bf16_recipe(recipe_dict, "sft")
    recipe_dict["push"] = {"repo_id": "someone/tiny-bf16"}
    path = write_recipe(recipe_dict)
    run_ok("sft", path)
    out = run_ok("push", path)
    assert "pushed" in out
    held = fake_hub.files("someone/tiny-bf16", "sft")
    local = tmp_path / "runs" / "tiny" / "sft"
    pushed = tmp_path / "pushed.safetensors"
    pushed.write_bytes(held["model.safetensors"])
    tensors, master = load_file(str(pushed)), load_file(str(local / "model.safetensors"))
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert {t.dtype for t in master.values()} == {torch.float32}  # the run keeps its float32 checkpoint
    assert all(torch.equal(tensors[n], master[n].to(torch.bfloat16)) for n in master)
    assert json.loads(held["config.json"])["dtype"] == "bfloat16"
    assert "stored in bfloat16" in held["README.md"].decode()

    recipe_dict["push"].update(dtype="float32", revision="sft-fp32")
    run_ok("push", write_recipe(recipe_dict))
    pushed.write_bytes(fake_hub.files("someone/tiny-bf16", "sft-fp32")["model.safetensors"])
    assert {t.dtype for t in load_file(str(pushed)).values()} == {torch.float32}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A local Hugging Face cache holding `local-org/tiny` at two revisions (main and v1, other weights), offline."""
    from recipe_cli.tiny_model import build_tiny_model

    repo = tmp_path / "hub" / "models--local-org--tiny"
    for seed, revision in ((1, "main"), (2, "v1")):
        commit = str(seed) * 40
        built = build_tiny_model(
            tmp_path / f"build-{revision}",
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            vocab_size=400,
            max_length=256,
            seed=seed,
        )
        shutil.copytree(built, repo / "snapshots" / commit)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return repo


@pytest.mark.slow
def test_the_reference_model_loads_the_pinned_revision(recipe_dict, write_recipe, hub_cache, monkeypatch):
    """With beta > 0 TRL reloads the reference by name; without the revision it would take the default branch."""
    import trl.trainer.grpo_trainer as grpo_trainer

    loaded = []
    original = grpo_trainer.create_model_from_path

    def record(model_id, *args, **kwargs):
        model = original(model_id, *args, **kwargs)
        loaded.append((model_id, kwargs, model))
        return model

    monkeypatch.setattr(grpo_trainer, "create_model_from_path", record)
    recipe_dict["model"] = {"path": "local-org/tiny", "revision": "v1", "dtype": "bfloat16"}
    del recipe_dict["sft"], recipe_dict["eval"]
    recipe_dict["grpo"]["trainer"].update(max_steps=1, beta=0.04)
    run_ok("grpo", write_recipe(recipe_dict))
    [(model_id, kwargs, reference)] = loaded
    assert model_id == "local-org/tiny" and kwargs["revision"] == "v1"
    pinned = load_file(str(hub_cache / "snapshots" / ("2" * 40) / "model.safetensors"))
    for name, tensor in reference.state_dict().items():
        if name in pinned:
            assert torch.equal(tensor, pinned[name].to(tensor.dtype)), name
    expected = torch.bfloat16 if torch.cuda.is_available() else torch.float32  # the compute dtype
    assert reference.dtype == expected


def test_deepspeed_plans_the_16bit_model_it_saves(recipe_dict, write_recipe, tmp_path):
    """DeepSpeed casts the weights it computes with to 16 bits under mixed precision and keeps the float32 masters in
    its optimizer state: every ZeRO stage saves the model in the compute dtype, while the resume checkpoints keep
    float32. The plan, the printed line and run.json say so; a config that would save no model is refused."""
    import yaml

    from recipe_cli.config import LaunchSettings, accelerate_config_path, validate_recipe
    from recipe_cli.launch import saves_16bit_weights
    from recipe_cli.training import stage_precision

    shipped = accelerate_config_path("zero3")
    for config, saves in (("zero1", True), ("zero2", True), (str(shipped), True), ("fsdp2", False), (None, False)):
        assert saves_16bit_weights(LaunchSettings(num_processes=8, accelerate_config=config)) == saves, config

    recipe_dict["model"]["dtype"] = "bfloat16"
    for config in ("zero2", str(shipped)):
        recipe_dict["launch"] = {"num_processes": 8, "accelerate_config": config}
        plan = stage_precision(validate_recipe(recipe_dict), Machine(gpu=True))
        assert (plan.master, plan.compute, plan.saved, plan.resume) == ("float32", "bfloat16", "bfloat16", "float32")
        assert plan.record()["saved"] == "bfloat16" and plan.record()["resume"] == "float32"  # run.json's precision
        assert "DeepSpeed saves each stage's model in bfloat16" in plan.note
        out = run_ok("validate", write_recipe(recipe_dict)).replace("\n", " ")
        assert "saved model bfloat16, resume checkpoints float32" in out
    recipe_dict["launch"]["accelerate_config"] = "multi_gpu"  # DDP saves the float32 master weights
    assert stage_precision(validate_recipe(recipe_dict), Machine(gpu=True)).saved == "float32"
    assert "checkpoints float32, eval bfloat16" in run_ok("validate", write_recipe(recipe_dict))

    own = yaml.safe_load(shipped.read_text())
    own["deepspeed_config"]["zero3_save_16bit_model"] = False
    fsdp2 = yaml.safe_load(accelerate_config_path("fsdp2").read_text())
    del fsdp2["fsdp_config"]["fsdp_state_dict_type"]  # accelerate's default for FSDP2: sharded
    for name, config, expected in (
        ("zero3-full.yaml", own, "ZeRO-3 without zero3_save_16bit_model saves no model file"),
        ("fsdp2-sharded.yaml", fsdp2, "fsdp_state_dict_type SHARDED_STATE_DICT saves no model file"),
    ):
        (tmp_path / name).write_text(yaml.safe_dump(config))
        recipe_dict["launch"]["accelerate_config"] = str(tmp_path / name)
        result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
        assert result.exit_code == 2 and expected in result.output, result.output


def test_grpo_does_not_claim_the_reference_models_settings_are_ignored(recipe_dict, caplog, monkeypatch):
    """TRL warns that `model_init_kwargs` "will be ignored" for a policy passed as an object, yet loads the
    reference model (beta > 0) with them: the revision and dtype recipe pins there are used, so no warning."""
    import contextlib

    from recipe_cli import grpo
    from recipe_cli.config import validate_recipe
    from recipe_cli.resume import StageStart
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model

    del recipe_dict["sft"]
    recipe_dict["grpo"]["trainer"]["beta"] = 0.04
    recipe = validate_recipe(recipe_dict)
    prepare_base_model(recipe, RunFolder(recipe))
    with caplog.at_level("WARNING"):
        built = grpo.build_grpo_trainer(recipe, StageStart("grpo"))
    assert set(built.trainer.args.model_init_kwargs) == {"dtype"}  # set for the reference model
    assert built.trainer.ref_model is not None
    assert "will be ignored" not in caplog.text
    caplog.clear()
    monkeypatch.setattr(grpo, "without_log_message", lambda *names: contextlib.nullcontext())
    with caplog.at_level("WARNING"):
        grpo.build_grpo_trainer(recipe, StageStart("grpo"))
    assert "will be ignored" in caplog.text  # TRL still says it: the filter, not a quiet TRL, kept it out


def test_the_plan_counts_the_adapter_of_a_regex_target_as_peft_adapts_it(recipe_dict):
    """The memory estimate's trainable parameters: a target_modules string is peft's regular expression, not a
    module name's end (it counted no parameter at all)."""
    from recipe_cli.config import validate_recipe
    from recipe_cli.plan import _model_config, _parameter_counts

    recipe_dict["model"]["lora"] = {"r": 4, "target_modules": ["q_proj", "v_proj"]}
    listed = validate_recipe(recipe_dict)
    recipe_dict["model"]["lora"]["target_modules"] = r".*\.(q|v)_proj"
    pattern = validate_recipe(recipe_dict)
    config = _model_config(listed)
    counted = _parameter_counts(config, listed)[1]
    assert counted > 0 and _parameter_counts(config, pattern)[1] == counted
