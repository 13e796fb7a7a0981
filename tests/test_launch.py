"""Beyond one process: `recipe run --num-processes 2` on CPU (gloo), for real.

The command relaunches itself under `accelerate launch`: both ranks train (the global batch is
twice the per-device one), the main process alone writes run.json, evaluates and pushes, and a
SIGTERM to `recipe` stops both ranks after the same step with one complete checkpoint that
`--resume` continues on the same number of processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from recipe_cli.checkpoints import MARKER
from recipe_cli.preemption import STEP_PAUSE_ENV
from recipe_cli.runs import RECORD_WRITERS_ENV

REPO = Path(__file__).resolve().parent.parent


def recipe_file(recipe_dict: dict, tmp_path: Path) -> Path:
    recipe_dict["eval"]["dataset"]["max_samples"] = 4
    recipe_dict["grpo"]["trainer"].update(logging_steps=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict, sort_keys=False))
    return path


def start(*args, env: dict | None = None) -> subprocess.Popen:
    child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):  # a launch of its own, whatever runs the tests
        child_env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "recipe_cli", *map(str, args)],
        cwd=REPO,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.mark.slow
def test_two_processes_train_together_and_the_main_one_writes(recipe_dict, tmp_path, fake_hub):
    recipe_dict["push"] = {"repo_id": "someone/two-ranks"}
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    path = recipe_file(recipe_dict, tmp_path)
    writers = tmp_path / "writers.txt"
    hub_env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": fake_hub.token}
    code, out, err = finish(
        start("run", path, "--num-processes", "2", env={RECORD_WRITERS_ENV: str(writers), **hub_env})
    )
    assert code == 0, out + err
    run_dir = tmp_path / "runs" / "tiny"
    record = json.loads((run_dir / "run.json").read_text())["stages"]
    assert {stage: entry["world_size"] for stage, entry in record.items()} == {"sft": 2, "grpo": 2}
    assert all(entry["status"] == "finished" for entry in record.values())
    # both ranks take part: the global batch is 2 x per-device, so an epoch takes half the steps
    sft_state = json.loads((run_dir / "sft" / "trainer_state.json").read_text())
    assert sft_state["global_step"] == 4 and sft_state["epoch"] == 2.0  # 32 examples, 2 x 8 per step
    grpo_state = json.loads((run_dir / "grpo" / "trainer_state.json").read_text())
    assert grpo_state["global_step"] == 2 and grpo_state["epoch"] == 0.25  # 2 steps x (2 x 8 / 4) prompts of 32
    for checkpoint in ("checkpoint-2", "checkpoint-4"):
        folder = run_dir / "sft" / checkpoint
        assert (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()
        assert sorted(p.name for p in folder.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    # the main process alone wrote run.json, evaluated and pushed
    lines = writers.read_text().split("\n")
    assert {line.split()[1] for line in lines if line} == {"0"}
    assert sorted(p.name for p in (run_dir / "eval").glob("*.json")) == ["base.json", "grpo.json", "sft.json"]
    for stage in ("base", "sft", "grpo"):
        assert out.count(f"eval {stage}: accuracy") == 1
    assert out.count("run tiny finished") == 1 and "on 2 processes" in out
    # the main process alone kept completions (each logged step's once) and wrote the report
    samples = [json.loads(line) for line in (run_dir / "grpo" / "samples.jsonl").read_text().splitlines()]
    assert sorted(record["step"] for record in samples) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert (run_dir / "report" / "report.md").is_file() and out.count("report written") == 1
    assert len(fake_hub.commits("someone/two-ranks", "grpo")) == 2  # the branch's creation and one push


@pytest.mark.slow
def test_sigterm_stops_every_rank_after_one_step_and_resume_continues(recipe_dict, tmp_path):
    del recipe_dict["sft"]
    recipe_dict["grpo"]["trainer"].update(max_steps=6, save_strategy="steps", save_steps=100)
    path = recipe_file(recipe_dict, tmp_path)
    process = start("grpo", path, "--num-processes", "2", env={STEP_PAUSE_ENV: "1"})
    log = tmp_path / "runs" / "tiny" / "run.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not log.is_file():
        time.sleep(0.5)
    assert log.is_file(), "grpo never started"
    time.sleep(3)  # a step or two in
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == 143, out + err
    grpo = tmp_path / "runs" / "tiny" / "grpo"
    checkpoints = sorted(grpo.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / MARKER).is_file(), [p.name for p in checkpoints]
    assert sorted(p.name for p in checkpoints[0].glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    step = int(checkpoints[0].name.split("-")[1])
    assert 0 < step < 6
    assert f"after step {step} of 6" in err and "--num-processes 2 --resume" in err

    code, out, err = finish(start("grpo", path, "--num-processes", "2", "--resume"))
    assert code == 0, out + err
    entry = json.loads(log.read_text())["stages"]["grpo"]
    assert entry["status"] == "finished" and entry["world_size"] == 2 and entry["resumed_from"] == str(checkpoints[0])
    assert json.loads((grpo / "trainer_state.json").read_text())["global_step"] == 6

    code, out, err = finish(start("grpo", path, "--resume"))  # one process would change the global batch
    assert code == 2 and "world_size: 2 -> 1" in err


# Two gloo ranks, started as a launcher starts them, running `on_every` on an action that fails on one rank
AGREEING_RANK = """
import os, sys
import torch.distributed as dist
from recipe_cli.errors import RecipeError
from recipe_cli.ranks import OtherRankStopped, is_shared, on_every

def load():
    if os.environ["RANK"] == sys.argv[1]:
        raise RecipeError("cannot load the tokenizer of 'org/model': not in this machine's cache")
    return "rows"

try:
    print("loaded", on_every(load))
except (RecipeError, OtherRankStopped) as error:
    print(type(error).__name__, is_shared(error), error)
dist.destroy_process_group()
"""


@pytest.mark.parametrize("failing", [0, 1])
def test_a_mistake_one_rank_finds_stops_every_rank_with_its_message(failing):
    """A rank reads its data and tokenizer on its own machine before its trainer's collectives: a mistake only
    one rank finds (the model missing from one machine's cache) ended that rank alone, its message printed
    nowhere, while the others failed at their next collective with tracebacks. Every rank now stops with the
    mistake, shared (the main process prints it, naming the rank)."""
    from recipe_cli.launch import _free_port

    port = str(_free_port())
    ranks = []
    for rank in ("0", "1"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "ACCELERATE_USE_CPU": "1", "WORLD_SIZE": "2", "RANK": rank}
        env.update(LOCAL_RANK=rank, MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        command = [sys.executable, "-c", AGREEING_RANK, str(failing)]
        ranks.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [finish(process, timeout=120) for process in ranks]
    message = "cannot load the tokenizer of 'org/model': not in this machine's cache"
    told = message if failing == 0 else f"rank 1: {message}"  # as the main process prints it
    for rank, (code, out, err) in enumerate(outputs):
        assert code == 0, err
        assert out.strip() == f"RecipeError True {message if rank == failing else told}"


def test_launch_settings_are_checked_with_the_world_size(recipe_dict, write_recipe):
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    runner = CliRunner()
    path = write_recipe(recipe_dict)
    result = runner.invoke(app, ["validate", str(path), "--num-processes", "3"])  # 3 x 8 completions, 4 per prompt
    assert result.exit_code == 0, result.output
    assert "24 completions per generation (per_device_train_batch_size 8 x gradient_accumulation_steps 1 x 3" in (
        result.output
    )
    recipe_dict["grpo"]["trainer"]["num_generations"] = 16  # 16 does not divide 8, but does divide 2 x 8
    path = write_recipe(recipe_dict)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 2
    assert runner.invoke(app, ["validate", str(path), "--num-processes", "2"]).exit_code == 0
    for launch, expected in (
        ({"num_processes": 3, "num_machines": 2, "main_process_ip": "a"}, "does not split over 2 machines"),
        ({"num_processes": 4, "num_machines": 2}, "needs main_process_ip"),
        ({"num_processes": 4, "num_machines": 2, "machine_rank": 2, "main_process_ip": "a"}, "not one of the 2"),
        ({"accelerate_config": "zero9"}, "neither a file nor one of TRL's configs"),
    ):
        recipe_dict["launch"] = launch
        result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
        assert result.exit_code == 2 and expected in result.output, result.output


def test_lora_is_refused_under_shardings_that_need_one_dtype(recipe_dict, write_recipe, tmp_path):
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    runner = CliRunner()
    recipe_dict["model"].update(lora={"r": 4, "alpha": 8}, dtype="bfloat16")
    (tmp_path / "broken.yaml").write_text("distributed_type: [FSDP\n")
    for config, expected in (
        ("fsdp1", "(FSDP1) with model.lora: FSDP1 flattens each layer's weights into one tensor of one dtype"),
        ("zero3", "(ZeRO-3) with model.lora: ZeRO-3 needs one dtype across the weights"),
        (str(tmp_path / "broken.yaml"), "launch.accelerate_config: cannot read"),
    ):
        recipe_dict["launch"] = {"num_processes": 8, "accelerate_config": config}
        result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "Traceback" not in result.output
    for config in ("fsdp2", "zero2"):  # each weight sharded on its own, or the weights kept whole
        recipe_dict["launch"] = {"num_processes": 8, "accelerate_config": config}
        result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
        assert result.exit_code == 0, result.output


def test_the_launch_command_reuses_trls_configs_and_the_precision_plan():
    from recipe_cli.config import LaunchSettings, accelerate_config_path
    from recipe_cli.launch import launch_arguments, sharding
    from recipe_cli.precision import Machine

    arguments = launch_arguments(LaunchSettings(num_processes=8, accelerate_config="zero3"), "bf16", Machine(gpu=True))
    config = arguments[arguments.index("--config_file") + 1]
    assert Path(config) == accelerate_config_path("zero3") and "trl/accelerate_configs" in config
    assert arguments[arguments.index("--mixed_precision") + 1] == "bf16"
    two = LaunchSettings(num_processes=16, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1")
    arguments = launch_arguments(two, None, Machine(gpu=True))
    assert arguments[arguments.index("--main_process_ip") + 1] == "10.0.0.1"
    assert arguments[arguments.index("--main_process_port") + 1] == "29500"
    assert arguments[arguments.index("--machine_rank") + 1] == "1" and "--multi_gpu" in arguments
    assert sharding(LaunchSettings(num_processes=8, accelerate_config="zero3"))[1] >= {"weights", "optimizer"}
    assert sharding(LaunchSettings(num_processes=8, accelerate_config="fsdp2"))[0] == "FSDP"


def test_deepspeed_takes_gradient_accumulation_from_each_stage(tmp_path):
    """TRL's zero1 fixes gradient_accumulation_steps at 1, which transformers refuses beside a stage's 8."""
    import yaml
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    from recipe_cli.config import LaunchSettings, accelerate_config_path
    from recipe_cli.launch import launch_arguments, launch_config_file
    from recipe_cli.precision import Machine

    zero2 = LaunchSettings(num_processes=8, accelerate_config="zero2")
    assert launch_config_file(zero2, tmp_path) == accelerate_config_path("zero2")  # nothing to leave out
    zero1 = LaunchSettings(num_processes=8, accelerate_config="zero1")
    copy = launch_config_file(zero1, tmp_path)
    assert copy.parent == tmp_path
    shipped = yaml.safe_load(accelerate_config_path("zero1").read_text())
    assert shipped["deepspeed_config"]["gradient_accumulation_steps"] == 1
    written = yaml.safe_load(copy.read_text())
    assert written["deepspeed_config"] == {
        key: value for key, value in shipped["deepspeed_config"].items() if key != "gradient_accumulation_steps"
    }
    # what accelerate launch hands the ranks: no fixed value, so DeepSpeed's "auto" takes the stage's
    for config, expected in ((accelerate_config_path("zero1"), "1"), (copy, None)):
        options = launch_arguments(zero1, "bf16", Machine(gpu=True), config)
        args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args([*options, "-m", "x"]))
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
        assert env.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS") == expected


def deepspeed_json_launch(tmp_path, recipe_dict, deepspeed: dict, **inline) -> dict:
    """recipe_dict launched on 8 ranks through an accelerate config naming a DeepSpeed JSON written from ``deepspeed``."""
    (tmp_path / "ds.json").write_text(json.dumps(deepspeed))
    accelerate = {
        "distributed_type": "DEEPSPEED",
        "deepspeed_config": {"deepspeed_config_file": str(tmp_path / "ds.json"), **inline},
        "num_processes": 8,
    }
    (tmp_path / "accelerate.yaml").write_text(yaml.safe_dump(accelerate))
    recipe_dict["launch"] = {"num_processes": 8, "accelerate_config": str(tmp_path / "accelerate.yaml")}
    return recipe_dict


def validation_problems(recipe_dict) -> str:
    from recipe_cli.config import validate_recipe
    from recipe_cli.errors import RecipeError

    try:
        validate_recipe(recipe_dict)
    except RecipeError as error:
        return str(error)
    return ""


def test_a_deepspeed_json_is_checked_like_an_accelerate_config(tmp_path, recipe_dict):
    """Its ZeRO stage, its 16-bit save and the values transformers compares with each stage come from the JSON."""
    from recipe_cli.config import LaunchSettings
    from recipe_cli.launch import sharding

    zero3 = {"zero_optimization": {"stage": 3}, "optimizer": {"type": "AdamW", "params": {"lr": 3.0e-5}}}
    problems = validation_problems(deepspeed_json_launch(tmp_path, recipe_dict, zero3, zero_stage=3))
    assert "set stage3_gather_16bit_weights_on_model_save: true under zero_optimization in" in problems
    assert "sets optimizer.params.lr 3e-05 but sft trains with 0.001 (sft.trainer.learning_rate)" in problems
    assert 'set it to "auto" in' in problems
    assert "deepspeed_config sets zero_stage beside deepspeed_config_file" in problems
    launch = LaunchSettings(**recipe_dict["launch"])
    assert sharding(launch) == ("DeepSpeed ZeRO-3", {"optimizer", "gradients", "weights", "reference model"})

    fixed = {"zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True}}
    fixed["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "weight_decay": 0.0}}
    assert validation_problems(deepspeed_json_launch(tmp_path, recipe_dict, fixed)) == ""
    (tmp_path / "ds.json").unlink()
    assert "its deepspeed_config_file" in validation_problems(recipe_dict) and "does not exist" in validation_problems(
        recipe_dict
    )
    (tmp_path / "ds.json").write_text('{"train_batch_size": 64}')
    assert "has no zero_optimization section" in validation_problems(recipe_dict)


def test_a_deepspeed_json_leaves_batch_sizes_and_precision_to_each_stage(tmp_path, recipe_dict, monkeypatch):
    """transformers compares a number in the JSON with each stage's trainer settings and refuses the launch; the
    launch's copy says "auto" there, and for a missing gradient_accumulation_steps (accelerate would write 1)."""
    import accelerate.utils.deepspeed
    import transformers.integrations.deepspeed as hf_deepspeed
    from accelerate.utils import DeepSpeedPlugin

    from recipe_cli.config import LaunchSettings
    from recipe_cli.launch import launch_config_file

    given = {
        "zero_optimization": {"stage": 2},
        "train_micro_batch_size_per_gpu": 4,
        "gradient_clipping": 1.0,
        "bf16": {"enabled": True},
        "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
    }
    deepspeed_json_launch(tmp_path, recipe_dict, given)
    (tmp_path / "launch").mkdir()
    written = yaml.safe_load(
        launch_config_file(LaunchSettings(**recipe_dict["launch"]), tmp_path / "launch").read_text()
    )
    copy = Path(written["deepspeed_config"]["deepspeed_config_file"])
    assert copy.parent == tmp_path / "launch"

    class TrainerChecks(accelerate.utils.deepspeed.HfDeepSpeedConfig):  # transformers' checks, without deepspeed
        fill_match = hf_deepspeed.HfTrainerDeepSpeedConfig.fill_match
        fill_only = hf_deepspeed.HfTrainerDeepSpeedConfig.fill_only
        trainer_config_process = hf_deepspeed.HfTrainerDeepSpeedConfig.trainer_config_process

    def mismatches(path: Path) -> list[str]:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # model.dtype float32, as the tiny recipe
        plugin = DeepSpeedPlugin(hf_ds_config=str(path))
        plugin.set_mixed_precision("no")
        checks = TrainerChecks(plugin.deepspeed_config)
        checks.mismatches = []
        args = {"world_size": 8, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8}
        args |= {"max_grad_norm": 0.5, "learning_rate": 1e-5, "adam_beta1": 0.9, "adam_beta2": 0.999}
        args |= {"adam_epsilon": 1e-8, "weight_decay": 0.0, "save_on_each_node": False, "fp16": False}
        checks.trainer_config_process(
            types.SimpleNamespace(**args, fp16_full_eval=False, bf16=False, bf16_full_eval=False)
        )
        return checks.mismatches

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    from recipe_cli.launch import launch_arguments
    from recipe_cli.precision import Machine

    launch = LaunchSettings(**recipe_dict["launch"])
    options = launch_arguments(launch, None, Machine(gpu=True), tmp_path / "launch" / "accelerate-accelerate.yaml")
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args([*options, "-m", "x"]))
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)  # what accelerate launch hands the ranks
    assert env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == str(copy)
    monkeypatch.setenv("ACCELERATE_CONFIG_DS_FIELDS", env["ACCELERATE_CONFIG_DS_FIELDS"])  # accelerate's own check
    refused = " ".join(mismatches(tmp_path / "ds.json"))
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps=1", "gradient_clipping", "bf16"):
        assert key in refused
    assert mismatches(copy) == []
    kept = json.loads(copy.read_text())
    assert kept["zero_optimization"] == {"stage": 2} and kept["optimizer"] == given["optimizer"]


def test_a_deepspeed_schedulers_length_and_warmup_are_left_to_each_stage(tmp_path, recipe_dict):
    """transformers fills a DeepSpeed scheduler's total_num_steps and warmup_num_steps once the model has loaded, and
    refuses another number: SFT and GRPO train for different lengths, so the launch's copy says "auto" there."""
    import accelerate.utils.deepspeed
    import transformers.integrations.deepspeed as hf_deepspeed

    from recipe_cli.config import LaunchSettings
    from recipe_cli.launch import launch_config_file

    class TrainerChecks(accelerate.utils.deepspeed.HfDeepSpeedConfig):  # transformers' checks, without deepspeed
        fill_match = hf_deepspeed.HfTrainerDeepSpeedConfig.fill_match
        fill_only = hf_deepspeed.HfTrainerDeepSpeedConfig.fill_only
        is_auto = hf_deepspeed.HfTrainerDeepSpeedConfig.is_auto
        trainer_config_finalize = hf_deepspeed.HfTrainerDeepSpeedConfig.trainer_config_finalize

    def finalize(config: dict) -> str:
        """transformers' refusal once the model has loaded (a stage of 500 steps, 25 of warmup), else ''."""
        checks = TrainerChecks(config)
        checks.mismatches = []
        args = types.SimpleNamespace(get_warmup_steps=lambda steps: 25)
        model = types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=8))
        try:
            checks.trainer_config_finalize(args, model, 500)
        except ValueError as error:
            return str(error)
        return ""

    def launch_copy(scheduler: dict) -> dict:
        deepspeed_json_launch(tmp_path, recipe_dict, {"zero_optimization": {"stage": 2}, "scheduler": scheduler})
        assert validation_problems(recipe_dict) == ""
        folder = tmp_path / scheduler["type"]
        folder.mkdir()
        written = yaml.safe_load(launch_config_file(LaunchSettings(**recipe_dict["launch"]), folder).read_text())
        return json.loads(Path(written["deepspeed_config"]["deepspeed_config_file"]).read_text())

    decay = {"type": "WarmupDecayLR", "params": {"warmup_min_lr": 0, "warmup_num_steps": 10, "total_num_steps": 1000}}
    refused = finalize({"zero_optimization": {"stage": 2}, "scheduler": json.loads(json.dumps(decay))})
    assert "total_num_steps=1000" in refused and "warmup_num_steps=10" in refused  # the file as given
    copy = launch_copy(decay)
    assert copy["scheduler"]["params"] == {"warmup_min_lr": 0, "warmup_num_steps": "auto", "total_num_steps": "auto"}
    assert finalize(copy) == ""
    warmup_only = launch_copy({"type": "WarmupLR", "params": {"warmup_num_steps": 10}})
    assert warmup_only["scheduler"]["params"] == {"warmup_num_steps": "auto"}  # WarmupLR takes no total_num_steps


def test_machine_checks_name_the_fix(recipe_dict, monkeypatch):
    from recipe_cli.config import validate_recipe
    from recipe_cli.errors import RecipeError
    from recipe_cli.launch import check_launch, check_vllm
    from recipe_cli.precision import Machine

    recipe_dict["launch"] = {"num_processes": 8, "accelerate_config": "zero2"}
    with pytest.raises(RecipeError, match="uses DeepSpeed, which needs GPUs"):
        check_launch(validate_recipe(recipe_dict), Machine(gpu=False))
    recipe_dict["launch"] = {"num_processes": 1}
    monkeypatch.setattr("torch.cuda.device_count", lambda: 4)
    with pytest.raises(RecipeError, match="4 GPUs are visible to one process.*CUDA_VISIBLE_DEVICES=0"):
        check_launch(validate_recipe(recipe_dict), Machine(gpu=True))
    check_launch(validate_recipe(recipe_dict), Machine(gpu=True), trains=False)  # `recipe run` that only evaluates
    recipe_dict["launch"] = {"num_processes": 4}
    check_launch(validate_recipe(recipe_dict), Machine(gpu=True))  # one process a GPU
    recipe_dict["launch"] = {"num_processes": 8}
    with pytest.raises(RecipeError, match="8 processes per machine but 4 GPU"):
        check_launch(validate_recipe(recipe_dict), Machine(gpu=True))
    recipe_dict["grpo"]["trainer"]["use_vllm"] = True
    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda package: False)
    with pytest.raises(RecipeError, match="vLLM is not installed here"):
        check_vllm(validate_recipe(recipe_dict), Machine(gpu=True), visible_gpus=8)
    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda package: True)
    with pytest.raises(RecipeError, match="none is visible"):
        check_vllm(validate_recipe(recipe_dict), Machine(gpu=False), visible_gpus=0)
    recipe_dict["grpo"]["trainer"]["vllm_mode"] = "server"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(RecipeError, match=r"CUDA_VISIBLE_DEVICES=7 recipe serve RECIPE.*--num-processes 7"):
        check_vllm(validate_recipe(recipe_dict), Machine(gpu=True), visible_gpus=8)
    recipe_dict["launch"] = {"num_processes": 7}
    check_vllm(validate_recipe(recipe_dict), Machine(gpu=True), visible_gpus=8)  # 7 + 1 fit


def test_serve_starts_trls_server_with_grpos_starting_model(recipe_dict, write_recipe, tmp_path):
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    recipe_dict["model"] = {"path": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "abc123", "dtype": "bfloat16"}
    del recipe_dict["sft"]
    recipe_dict["launch"] = {"vllm_server": {"port": 8123, "tensor_parallel_size": 2}}
    recipe_dict["grpo"]["trainer"].update(use_vllm=True, vllm_mode="server", vllm_server_port=8123)
    result = CliRunner().invoke(app, ["serve", str(write_recipe(recipe_dict)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "trl vllm-serve --model Qwen/Qwen2.5-0.5B-Instruct --revision abc123" in result.output
    assert "--tensor_parallel_size 2" in result.output and "--port 8123" in result.output
    recipe_dict["grpo"]["trainer"]["vllm_server_port"] = 8000
    result = CliRunner().invoke(app, ["validate", str(write_recipe(recipe_dict))])
    assert result.exit_code == 2 and "is not launch.vllm_server.port 8123" in result.output


@pytest.mark.parametrize("machine_rank", [0, 1])
def test_only_machine_0_takes_the_run_lock_and_checks_the_token(
    recipe_dict, write_recipe, tmp_path, monkeypatch, machine_rank
):
    """Every machine of a multi-node run starts the same command on one shared run folder: the others must not be
    refused by machine 0's lock, write or delete nothing there, and need no Hub token (machine 0 pushes)."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.lock import RunLock

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    launched = []
    monkeypatch.setattr("recipe_cli.launch.relaunch", lambda recipe, argv, lock=None: launched.append(argv) or 0)
    recipe_dict["push"] = {"repo_id": "someone/two-machines"}
    recipe_dict["launch"] = {"num_processes": 4, "num_machines": 2, "main_process_ip": "10.0.0.1"}
    path = write_recipe(recipe_dict)
    run_dir = tmp_path / "runs" / "tiny"
    command = ["run", str(path), "--machine-rank", str(machine_rank), "--overwrite"]
    result = CliRunner().invoke(app, command)  # machine 1 starts its ranks on a run folder nobody created yet
    assert not run_dir.exists()
    if machine_rank == 0:
        assert result.exit_code == 2 and "not logged in" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert "--machine-rank" in launched[-1] and launched[-1][launched[-1].index("--machine-rank") + 1] == "1"
    (run_dir / "sft").mkdir(parents=True)
    (run_dir / "sft" / "kept.txt").write_text("machine 0 trains here")
    with RunLock(run_dir, "recipe run r.yaml --machine-rank 0"):  # machine 0's recipe process, training
        result = CliRunner().invoke(app, command)
    if machine_rank == 0:  # a second machine-0 command on the same run is refused, as on one machine
        assert result.exit_code == 2 and f"in use by pid {os.getpid()}" in result.stderr, result.output
    else:
        assert result.exit_code == 0, result.output
        assert len(launched) == 2
    assert (run_dir / "sft" / "kept.txt").is_file()


def test_the_plan_warns_once_from_the_main_rank_not_also_from_the_recipe_process(
    recipe_dict, write_recipe, tmp_path, monkeypatch, caplog
):
    """`recipe` plans the stages to refuse a wrong start before launching; the main rank plans them again and says
    what it decided (resuming with changed settings, starting again for want of a checkpoint), so each warning
    was printed twice."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    monkeypatch.setattr("recipe_cli.launch.relaunch", lambda recipe, argv, lock: 0)
    (tmp_path / "runs" / "tiny" / "sft").mkdir(parents=True)
    (tmp_path / "runs" / "tiny" / "sft" / "left.txt").write_text("an attempt that saved no checkpoint")
    path = str(write_recipe(recipe_dict))
    result = CliRunner().invoke(app, ["sft", path, "--num-processes", "2", "--resume", "--force"])
    assert result.exit_code == 0, result.output
    assert "holds no complete checkpoint" not in caplog.text + result.output
    result = CliRunner().invoke(app, ["sft", path, "--num-processes", "2", "--resume"])  # a refusal still stops
    assert result.exit_code == 2 and "has no record of the settings" in result.output


def test_the_machine_rank_matters_only_to_commands_that_launch_ranks(recipe_dict, write_recipe, tmp_path, monkeypatch):
    """`launch.machine_rank: 1` says where `recipe run` starts its ranks; `eval` and `push` launch none and write
    the run folder from this machine, so they take its lock; machine 1 never evaluates, so it needs no eval backend."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.lock import RunLock

    monkeypatch.setattr("recipe_cli.launch.relaunch", lambda recipe, argv, lock=None: 0)
    recipe_dict["launch"] = {"num_processes": 4, "num_machines": 2, "main_process_ip": "10.0.0.1", "machine_rank": 1}
    recipe_dict["eval"]["backend"] = "vllm"  # not installed here
    recipe_dict["push"] = {"repo_id": "someone/two-machines"}
    path = str(write_recipe(recipe_dict))
    run_dir = tmp_path / "runs" / "tiny"
    with RunLock(run_dir, "recipe run r.yaml --machine-rank 0"):
        for command in (["eval", path], ["push", path, "--dry-run"]):
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 2 and f"in use by pid {os.getpid()}" in result.stderr, result.output
    for machine_rank, code in (("1", 0), ("0", 2)):
        result = CliRunner().invoke(app, ["run", path, "--machine-rank", machine_rank, "--overwrite"])
        assert result.exit_code == code, result.output
        assert ("eval.backend: vllm is requested" in result.output) == (code == 2), result.output


# A stand-in for `accelerate launch`: one rank that runs its first argument, then sleeps; the launcher exits 1
# when its rank failed, as torchrun does.
FAKE_LAUNCHER = """
import subprocess, sys
# a rank's own signal handling, whatever the test process passes on (a blocked or ignored SIGINT is inherited)
reset = "import signal; signal.pthread_sigmask(signal.SIG_UNBLOCK, {2, 15}); signal.signal(2, signal.default_int_handler)"
rank_code = reset + "; " + sys.argv[1] + "; import time; print(flush=True); time.sleep(30)"
rank = subprocess.Popen([sys.executable, "-c", rank_code], stdout=subprocess.PIPE)
rank.stdout.readline()
print(rank.pid, flush=True)
sys.exit(1 if rank.wait() else 0)
"""
IN_A_STEP = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"  # a rank takes a signal at the step's end


def start_fake_launcher(rank_code: str = "pass") -> tuple[subprocess.Popen, int]:
    """The fake launcher, started as `recipe` starts accelerate's, and its rank's pid once the rank runs
    (``rank_code`` first: the signal dispositions of a rank outside a step by default)."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", FAKE_LAUNCHER, rank_code], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    return launcher, int(launcher.stdout.readline())


def signal_once_waiting(*signums: int) -> None:
    """Send this process the signals, in turn, once `wait_for_ranks` handles them (from another thread)."""
    import threading

    original = {signum: signal.getsignal(signum) for signum in signums}

    def send():
        deadline = time.monotonic() + 10
        while any(signal.getsignal(n) is handler for n, handler in original.items()) and time.monotonic() < deadline:
            time.sleep(0.01)
        for signum in signums:
            os.kill(os.getpid(), signum)
            time.sleep(0.2)

    threading.Thread(target=send, daemon=True).start()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_ranks_ended_by_a_signal_outside_a_step_exit_as_one_process_would(tmp_path, signum, code):
    """A signal while the main rank evaluates (no step to finish) ends the ranks before they report an outcome:
    `recipe` exits 128 + the signal, as one process ended by it does, which scripts/slurm/recipe.slurm requeues
    on, rather than with the launcher's 1."""
    from recipe_cli.launch import wait_for_ranks

    launcher, _ = start_fake_launcher()
    signal_once_waiting(signum)
    assert wait_for_ranks(launcher, tmp_path / "status.json") == code
    assert launcher.returncode == 1


def test_a_launcher_killed_outright_exits_as_a_shell_says_it(tmp_path):
    """The OOM killer's SIGKILL to the launcher: Popen says -9, which as an exit status would read 247."""
    import subprocess

    from recipe_cli.launch import wait_for_ranks

    launcher = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert wait_for_ranks(launcher, tmp_path / "status.json") == 128 + signal.SIGKILL


def test_recipe_counts_the_signals_and_ends_its_ranks_on_the_second(tmp_path, capfd):
    """The ranks take every signal after the first as the same stop request (it reaches them several times); the
    `recipe` process, signalled once per request, ends them and their launcher on the second, as one process
    ends itself."""
    import psutil

    from recipe_cli.launch import wait_for_ranks

    launcher, rank = start_fake_launcher(IN_A_STEP)
    signal_once_waiting(signal.SIGTERM, signal.SIGTERM)
    assert wait_for_ranks(launcher, tmp_path / "status.json") == 143
    assert (
        launcher.returncode == -signal.SIGKILL
        and "SIGTERM again: exiting now, without saving" in capfd.readouterr().err
    )
    deadline = time.monotonic() + 10
    while psutil.pid_exists(rank) and psutil.Process(rank).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the rank outlived its launcher"
        time.sleep(0.05)


# A stand-in for `recipe`: it takes the run folder's lock and starts a launcher that says it runs, and on SIGTERM
# says so, takes a second to save as ranks do and exits
KILLED_RECIPE = """
import os, sys, time
from pathlib import Path
from recipe_cli.launch import start_launcher
from recipe_cli.lock import RunLock

launcher_code = (
    "import signal, sys, time\\n"
    "def stop(signum, frame):\\n"
    "    open(sys.argv[1], 'w').write('SIGTERM')\\n"
    "    time.sleep(1)\\n"
    "    sys.exit(143)\\n"
    "signal.signal(signal.SIGTERM, stop)\\n"
    "open(sys.argv[1], 'w').write('running')\\n"
    "time.sleep(30)\\n"
)
with RunLock(Path(sys.argv[1]), "recipe run r.yaml") as lock:
    command = [sys.executable, "-c", launcher_code, sys.argv[2]]
    print(start_launcher(command, dict(os.environ), (lock.handle.fileno(),)).pid, flush=True)
    time.sleep(30)
"""


def test_a_killed_recipe_process_stops_its_ranks_and_the_run_stays_locked_until_they_end(tmp_path):
    """`recipe` killed outright (SIGKILL, the OOM killer) used to leave accelerate's launcher and the ranks training
    on, unseen, in a run folder whose lock had gone with it: the launcher now gets SIGTERM, which it passes to the
    ranks (they save and stop), and it holds the run's lock until it ends."""
    import psutil

    from recipe_cli.errors import RecipeError
    from recipe_cli.lock import RunLock

    run_dir, told = tmp_path / "runs" / "r", tmp_path / "launcher-told.txt"
    recipe = subprocess.Popen(
        [sys.executable, "-c", KILLED_RECIPE, str(run_dir), str(told)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    launcher = psutil.Process(int(recipe.stdout.readline()))
    deadline = time.monotonic() + 10
    while not (told.is_file() and told.read_text() == "running"):
        assert time.monotonic() < deadline, "the launcher never ran"
        time.sleep(0.05)
    recipe.kill()
    recipe.wait()
    with pytest.raises(RecipeError, match="in use by"):
        RunLock(run_dir, "recipe run r.yaml --overwrite").__enter__()
    deadline = time.monotonic() + 10
    while launcher.is_running() and launcher.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the launcher outlived recipe"
        time.sleep(0.05)
    assert told.read_text() == "SIGTERM"
    with RunLock(run_dir, "recipe run r.yaml --overwrite"):
        pass


def test_a_ranks_own_mistake_is_printed_though_its_console_is_quiet(monkeypatch, capsys):
    """Only the main process prints; a user mistake another rank found alone (not shared with the others) would
    end that rank with its reason printed nowhere."""
    import typer

    from recipe_cli.cli import _guard
    from recipe_cli.console import err_console
    from recipe_cli.errors import RecipeError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(err_console, "quiet", True)  # as on every rank but the main one

    def fails():
        raise RecipeError("data.jsonl does not exist on this machine")

    with pytest.raises(typer.Exit) as ended:
        _guard(fails)
    assert ended.value.exit_code == 2
    assert capsys.readouterr().err == "error: rank 1: data.jsonl does not exist on this machine\n"


def test_each_machine_hears_the_outcome_from_its_first_rank(tmp_path, monkeypatch):
    """The `recipe` process of machine 1 waits for its own ranks (8-15 of 16): its first rank reports the exit
    code, or the process would exit 1 after every successful run."""
    from recipe_cli.cli import _guard
    from recipe_cli.launch import STATUS_ENV
    from recipe_cli.ranks import OtherRankStopped

    status = tmp_path / "status.json"
    monkeypatch.setenv(STATUS_ENV, str(status))
    for rank, local_rank, reports in (("8", "0", True), ("9", "1", False), ("0", "0", True)):
        monkeypatch.setenv("WORLD_SIZE", "16")
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        status.unlink(missing_ok=True)
        _guard(lambda: None)
        assert status.is_file() == reports
        if reports:
            assert json.loads(status.read_text()) == {"exit_code": 0}

    def stopped_by_the_main_process():
        raise OtherRankStopped(2)

    monkeypatch.setenv("RANK", "8")
    monkeypatch.setenv("LOCAL_RANK", "0")
    _guard(stopped_by_the_main_process)  # ends quietly: the parent exits with the shared code
    assert json.loads(status.read_text()) == {"exit_code": 2}


@pytest.mark.parametrize(
    ("trainer", "launch", "expected"),
    [
        ({"vllm_mode": "foo"}, {}, "grpo.trainer.vllm_mode: 'foo' is not a vLLM mode; use colocate or server"),
        ({"vllm_gpu_memory_utilization": 1.5}, {}, "vllm_gpu_memory_utilization: 1.5 is not a fraction"),
        ({"vllm_gpu_memory_utilization": 0.0}, {}, "give a number in (0, 1]"),
        ({"vllm_tensor_parallel_size": 3}, {"num_processes": 4}, "vllm_tensor_parallel_size 3 does not divide the 4"),
        (
            {"vllm_tensor_parallel_size": 4},
            {"num_processes": 8, "num_machines": 4, "main_process_ip": "a"},
            "does not divide the 2 processes per machine",
        ),
    ],
)
def test_vllm_settings_are_checked_at_validate_time(recipe_dict, write_recipe, trainer, launch, expected):
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    recipe_dict["grpo"]["trainer"].update(use_vllm=True, **trainer)
    recipe_dict["launch"] = launch
    result = CliRunner().invoke(app, ["validate", str(write_recipe(recipe_dict))])
    assert result.exit_code == 2 and expected in result.output, result.output
    assert "Traceback" not in result.output


def test_vllm_tensor_parallel_size_waits_for_the_process_count(recipe_dict, write_recipe):
    """Validated on a laptop without launch settings, a recipe is trained with --num-processes on the cluster."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    recipe_dict["grpo"]["trainer"].update(use_vllm=True, vllm_tensor_parallel_size=2, vllm_gpu_memory_utilization=1)
    path = str(write_recipe(recipe_dict))
    assert CliRunner().invoke(app, ["validate", path]).exit_code == 0
    assert CliRunner().invoke(app, ["validate", path, "--num-processes", "4"]).exit_code == 0
    result = CliRunner().invoke(app, ["validate", path, "--num-processes", "3"])
    assert result.exit_code == 2 and "does not divide the 3 processes per machine" in result.output


def test_missing_vllm_is_a_warning_at_validate_and_a_stop_only_for_what_generates_with_it(
    recipe_dict, write_recipe, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.config import validate_recipe
    from recipe_cli.errors import RecipeError
    from recipe_cli.launch import check_machine
    from recipe_cli.precision import Machine

    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda package: False)
    monkeypatch.setattr("recipe_cli.generation.vllm_installed", lambda: False)
    runner = CliRunner()
    recipe_dict["grpo"]["trainer"]["use_vllm"] = True
    recipe_dict["eval"]["backend"] = "vllm"
    path = str(write_recipe(recipe_dict))
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    out = result.output.replace("\n", " ")
    assert "warning: grpo.trainer.use_vllm: vLLM is not installed on this machine" in out
    assert "warning: eval.backend: vllm is not installed on this machine, so `recipe eval` and `run` stop" in out
    # SFT never generates with vLLM and `recipe sft` runs no eval: this machine is fine for it
    recipe = validate_recipe(recipe_dict)
    check_machine(recipe, ["sft"], machine=Machine(gpu=False))
    with pytest.raises(RecipeError, match="grpo.trainer.use_vllm: vLLM is not installed here"):
        check_machine(recipe, ["grpo"], machine=Machine(gpu=False))
    with pytest.raises(RecipeError, match="eval.backend: vllm is requested but not installed"):
        check_machine(recipe, ["sft"], evaluates=True, machine=Machine(gpu=False))
    sft = runner.invoke(app, ["sft", path, "--dry-run"])
    assert sft.exit_code == 0 and "on this machine" not in sft.output, sft.output
    grpo = runner.invoke(app, ["grpo", path, "--dry-run"])
    assert grpo.exit_code == 0 and "on this machine: grpo.trainer.use_vllm: vLLM is not installed" in grpo.output
    result = runner.invoke(app, ["run", path])  # the training command stops before anything is written
    assert result.exit_code == 2 and "vLLM is not installed here" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_serve_after_sft_starts_from_the_sft_checkpoint(recipe_dict, write_recipe, tmp_path):
    """GRPO's server mode: the server must hold the model GRPO starts from, the finished SFT checkpoint."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    runner = CliRunner()
    recipe_dict["sft"]["trainer"]["max_steps"] = 1
    recipe_dict["grpo"]["trainer"].update(use_vllm=True, vllm_mode="server")
    path = str(write_recipe(recipe_dict))
    before = runner.invoke(app, ["serve", path, "--dry-run"])
    assert before.exit_code == 2 and "run `recipe sft` first" in before.output, before.output
    assert runner.invoke(app, ["sft", path]).exit_code == 0
    result = runner.invoke(app, ["serve", path, "--dry-run"])
    assert result.exit_code == 0, result.output
    sft = tmp_path / "runs" / "tiny" / "sft"
    assert f"trlvllm-serve--model{sft}--tensor_parallel_size1" in "".join(result.output.split())
    assert "dry run: the server was not started" in result.output


def test_serve_starts_the_model_of_the_run_as_recorded(recipe_dict, write_recipe):
    """A run whose SFT trained with --set model.dtype=... serves that model as GRPO will train it."""
    import copy

    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.config import validate_recipe
    from recipe_cli.runs import RunFolder

    recipe_dict["launch"] = {"vllm_server": {"port": 8123}}
    recipe_dict["grpo"]["trainer"].update(use_vllm=True, vllm_mode="server", vllm_server_port=8123)
    trained = copy.deepcopy(recipe_dict)
    trained["model"]["dtype"] = "float16"
    run = RunFolder(validate_recipe(trained))
    run.record_training("sft", None)
    (run.stage_dir("sft") / "config.json").parent.mkdir(parents=True)
    (run.stage_dir("sft") / "config.json").write_text("{}")
    run.record_stage("sft", run.stage_dir("sft"), lora=False, base="base", started_from="base")
    result = CliRunner().invoke(app, ["serve", str(write_recipe(recipe_dict)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"--model {run.stage_dir('sft')}" in result.output and "--dtype float16" in result.output
    assert "differs from the run in model.dtype" in result.output


def test_serve_overwrite_starts_the_model_grpo_overwrite_would(recipe_dict, write_recipe):
    """On a GRPO-only run, `recipe grpo --overwrite --set model.path=B` starts again from B: so does the server."""
    import copy

    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.config import validate_recipe
    from recipe_cli.runs import RunFolder

    del recipe_dict["sft"]
    recipe_dict["model"] = {"path": "Qwen/Qwen2.5-0.5B-Instruct"}
    recipe_dict["launch"] = {"vllm_server": {"port": 8123}}
    recipe_dict["grpo"]["trainer"].update(use_vllm=True, vllm_mode="server", vllm_server_port=8123)
    RunFolder(validate_recipe(copy.deepcopy(recipe_dict))).record_training("grpo", None)
    path = write_recipe(recipe_dict)
    other = ["--set", "model.path=Qwen/Qwen2.5-1.5B-Instruct", "--dry-run"]
    kept = CliRunner().invoke(app, ["serve", str(path), *other])
    assert kept.exit_code == 0 and "--model Qwen/Qwen2.5-0.5B-Instruct" in kept.output, kept.output
    again = CliRunner().invoke(app, ["serve", str(path), *other, "--overwrite"])
    assert again.exit_code == 0 and "--model Qwen/Qwen2.5-1.5B-Instruct" in again.output, again.output


def test_missing_gpu_kernels_are_a_warning_at_validate_and_a_stop_before_training(
    recipe_dict, write_recipe, tmp_path, monkeypatch
):
    """open-r1's recipes set attn_implementation: flash_attention_2 and use_liger_kernel; without the packages
    transformers raised once the model was loading, or once training began, with a traceback."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.config import validate_recipe
    from recipe_cli.errors import RecipeError
    from recipe_cli.launch import check_machine
    from recipe_cli.precision import Machine

    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda package: False)
    recipe_dict["model"]["attn_implementation"] = "flash_attention_2"
    recipe_dict["grpo"]["trainer"]["use_liger_kernel"] = True
    path = str(write_recipe(recipe_dict))
    runner = CliRunner()
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert (
        "warning: model.attn_implementation: flash_attention_2 needs flash-attn, which is not installed here, so "
        "`recipe sft`, `grpo`, `run`, `eval` and `rewards` stop here; `pip install flash-attn` where the model "
        "trains" in out
    )
    for command in (["eval", path], ["rewards", path]):  # they load the model too
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "flash_attention_2 needs flash-attn" in result.output, result.output
    assert "warning: grpo.trainer.use_liger_kernel: the Liger kernels need liger-kernel" in out
    assert "so `recipe grpo` and `run` stop here" in out
    recipe = validate_recipe(recipe_dict)
    with pytest.raises(RecipeError, match=r"flash-attn.*attn_implementation: sdpa$"):  # SFT's trainer has no Liger
        check_machine(recipe, ["sft"], machine=Machine(gpu=False))
    with pytest.raises(RecipeError, match=r"flash-attn.*; grpo.trainer.use_liger_kernel: .*use_liger_kernel: false$"):
        check_machine(recipe, ["grpo"], machine=Machine(gpu=False))
    result = runner.invoke(app, ["sft", path])  # stops before anything is loaded or written
    assert result.exit_code == 2 and "needs flash-attn" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda package: package == "kernels")
    check_machine(recipe, ["sft"], machine=Machine(gpu=False))  # transformers takes the kernel from the Hub


def test_data_and_a_merging_push_stop_too_when_the_attention_package_is_missing(
    recipe_dict, write_recipe, tmp_path, monkeypatch
):
    """`recipe data` samples the starting model for a difficulty step, and `push` with merge_lora loads the base
    model: both ended in transformers' ImportError traceback on a machine without flash-attn."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    monkeypatch.setattr("recipe_cli.launch.is_installed", lambda package: False)
    recipe_dict["model"]["attn_implementation"] = "flash_attention_2"
    recipe_dict["model"]["lora"] = {"r": 4, "alpha": 8}
    recipe_dict["sft"]["dataset"]["difficulty"] = {"samples": 2}
    recipe_dict["push"] = {"repo_id": "someone/tiny", "merge_lora": True}
    path = str(write_recipe(recipe_dict))
    runner = CliRunner()
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "`eval`, `rewards`, `data` (difficulty samples the model) and `push` (merge_lora) stop here" in out, out
    for command in (["data", path, "--stage", "sft"], ["push", path, "--dry-run"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "flash_attention_2 needs flash-attn" in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # stopped before the base model was built


@pytest.mark.parametrize(("code", "line"), [(1, True), (2, False), (3, False), (143, False)])
def test_a_failed_rank_ends_in_one_line_with_the_command_that_continues(
    recipe_dict, write_recipe, monkeypatch, code, line
):
    """A rank that crashed or was killed (out of memory) leaves the launcher's traceback last; recipe says what
    happened and how to go on. A user mistake (2), a stop on non-finite values (3: a plain --resume would meet
    them again) and a signal (128 + N) have said their own line in the ranks."""
    from typer.testing import CliRunner

    from recipe_cli.cli import app

    monkeypatch.setattr("recipe_cli.launch.relaunch", lambda recipe, argv, lock=None: code)
    recipe_dict["launch"] = {"num_processes": 2}
    path = write_recipe(recipe_dict)
    result = CliRunner().invoke(app, ["sft", str(path), "--set", "seed=3"])
    assert result.exit_code == code
    said = f"error: a rank failed (exit code {code};" in result.stderr
    assert said == line, result.stderr
    if line:
        last = result.stderr.strip().splitlines()[-1]
        assert last.endswith(f"continue with `recipe sft {path} --set seed=3 --resume`")


def test_an_adapter_in_model_path_counts_as_lora_in_the_checks_that_key_on_it(recipe_dict, write_recipe, tmp_path):
    """SFT and GRPO train a `model.path` adapter further on a frozen 16-bit base, as with model.lora: the LoRA
    sharding refusals apply, its sync_ref_model is TRL's refusal, and merge_lora has an adapter to merge."""
    import torch
    from safetensors.torch import save_file
    from typer.testing import CliRunner

    from recipe_cli.cli import app
    from recipe_cli.config import validate_recipe
    from recipe_cli.tiny_model import build_tokenizer
    from recipe_cli.training import stage_precision

    adapter = tmp_path / "adapter"
    build_tokenizer(400).save_pretrained(adapter)
    config = {"peft_type": "LORA", "base_model_name_or_path": str(tmp_path), "r": 4, "lora_alpha": 8}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    save_file({"base_model.model.lm.lora_A.weight": torch.zeros(4, 8)}, str(adapter / "adapter_model.safetensors"))
    recipe_dict["model"] = {"path": str(adapter), "dtype": "bfloat16"}
    assert stage_precision(validate_recipe(recipe_dict)).base == "bfloat16"  # the frozen base the checks are about
    runner = CliRunner()
    for key, value, expected in (
        ("launch", {"num_processes": 8, "accelerate_config": "fsdp1"}, "(FSDP1) with the LoRA adapter in model.path"),
        ("launch", {"num_processes": 8, "accelerate_config": "zero3"}, "(ZeRO-3) with the LoRA adapter in model.path"),
        ("grpo", {**recipe_dict["grpo"], "trainer": {"beta": 0.04, "sync_ref_model": True}}, "sync_ref_model: with"),
    ):
        result = runner.invoke(app, ["validate", str(write_recipe({**recipe_dict, key: value}))])
        assert result.exit_code == 2 and expected in result.output, result.output
    result = runner.invoke(app, ["validate", str(write_recipe({**recipe_dict, "push": {"merge_lora": True}}))])
    assert "nothing to merge" not in result.output, result.output
