"""Publishing: the model card, the dry run, and real pushes through huggingface_hub to a local fake Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
import yaml
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from recipe_cli import hub, push
from recipe_cli.card import render_model_card
from recipe_cli.checkpoints import mark_complete
from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.errors import RecipeError
from recipe_cli.generation import Generation
from recipe_cli.push import list_upload_files, plan_push, push_checkpoint
from recipe_cli.runs import RunFolder, sft_identity
from tests.conftest import REPO

runner = CliRunner()
REPO_ID = "someone/tiny-r1"
# What a finished GRPO stage leaves in its folder: the model, the log, and state that only resumes training.
CHECKPOINT_FILES = {
    "config.json": b"{}",
    "model.safetensors": safetensors.torch.save({"w": torch.randn(750)}),  # LFS by its suffix, as on the Hub
    "tokenizer.json": b'{"vocab": "' + b"x" * 2000 + b'"}',  # LFS by its size (the fake's threshold is 1 KB)
    "generation_config.json": b"{}",
}
TRAINING_STATE = {"optimizer.pt": b"adam", "scheduler.pt": b"s", "rng_state.pth": b"r", "training_args.bin": b"a"}
LOG_HISTORY = [{"step": s, "reward": s / 10, "rewards/accuracy/mean": s / 20, "loss": 0.1} for s in range(1, 21)]


def summary(recipe, label: str, accuracy: float, model, limit: int | None = None) -> dict:
    """An eval summary in the shape ``evaluate_model`` writes, its sampled metrics scored by evaluate itself."""
    from recipe_cli.evaluate import ANSWER_CHECKER, _add_samples

    right, wrong = "<think>x</think><answer>12</answer>", "<think>x</think><answer>13</answer>"
    records = [{"gold": "12"}, {"gold": "12"}]
    drawn = Generation(
        completions=[[right, right, wrong, wrong], [wrong] * 4], truncated=[[False] * 4] * 2, tokens=[[5] * 4] * 2
    )
    dataset = recipe.eval.dataset
    return {
        "label": label,
        "model": str(model),
        "lora": False,
        "dataset": dataset.path or dataset.adapter,
        "split": dataset.split,
        "dataset_settings": dataset.model_dump(mode="json"),
        "limit": limit,
        "seed": recipe.seed,
        "n": 8,
        "answer_checker": ANSWER_CHECKER,
        "accuracy": accuracy,
        "format_rate": 1.0,
        "truncation_rate": 0.0,
        "mean_completion_tokens": 5.0,
        "unscorable": 0,
        "backend": "transformers",
        "device": "cpu",
        "dtype": "float32",
        "decoding": {
            "greedy": {"max_new_tokens": 16, "batch_size": 8},
            "sampling": {"num_samples": 4, "temperature": 1.0, "top_p": 1.0, "top_k": None, "seed": recipe.seed},
            "stop_token_ids": [0],
        },
        "sampled": _add_samples(records, drawn, [1, 2, 4]),
        "prompt": recipe.prompt.model_dump(mode="json"),
    }


def write_summary(recipe, label: str, accuracy: float, model, limit: int | None = None) -> None:
    eval_dir = RunFolder(recipe).eval_dir
    eval_dir.mkdir(exist_ok=True)
    (eval_dir / f"{label}.json").write_text(json.dumps(summary(recipe, label, accuracy, model, limit)))


def make_run(recipe_dict, **push) -> tuple:
    """A run folder recording finished SFT and GRPO stages, with eval summaries and an intermediate checkpoint."""
    recipe_dict["push"] = {"repo_id": REPO_ID, **push}
    recipe = validate_recipe(recipe_dict)
    run = RunFolder(recipe)
    grpo = run.stage_dir("grpo")
    for name, data in {**CHECKPOINT_FILES, **TRAINING_STATE, "README.md": b"TRL's card"}.items():
        (grpo / name).parent.mkdir(parents=True, exist_ok=True)
        (grpo / name).write_bytes(data)
    (grpo / "trainer_state.json").write_text(json.dumps({"log_history": LOG_HISTORY}))
    (grpo / "samples.jsonl").write_text('{"step": 1, "prompt": "a training question"}\n')  # kept for the report
    (grpo / "checkpoint-2").mkdir()
    for name, data in {**CHECKPOINT_FILES, **TRAINING_STATE}.items():
        (grpo / "checkpoint-2" / name).write_bytes(data)
    mark_complete(grpo / "checkpoint-2")  # as training marks a fully saved checkpoint
    sft = run.stage_dir("sft")
    sft.mkdir(parents=True)
    (sft / "config.json").write_text("{}")
    base = recipe_dict["model"].get("path") or str(run.stage_dir("base"))
    run.record_stage("sft", sft, lora=False, base=base, started_from=base)
    run.record_stage("grpo", grpo, lora=False, base=base, started_from=str(sft))
    for label, accuracy in (("grpo", 0.625), ("base", 0.0), ("sft", 0.5)):
        write_summary(recipe, label, accuracy, base if label == "base" else run.stage_dir(label))
    return recipe, grpo


@pytest.fixture(autouse=True)
def card_without_plots(request, monkeypatch):
    """Cards without their PNGs (about 2 s of matplotlib each), except in the tests marked ``card_plots``."""
    if request.node.get_closest_marker("card_plots") is None:
        monkeypatch.setattr(push, "card_plots", lambda *args: {})


@pytest.fixture
def trained_run(recipe_dict):
    return make_run(recipe_dict)[0]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_model_card_of_a_tiny_run_is_honest(trained_run):
    card = render_model_card(trained_run, "grpo", str(RunFolder(trained_run).stage_dir("base")), revision="grpo")
    front = yaml.safe_load(card.split("---")[1])
    assert {"recipe", "grpo", "reasoning"} <= set(front["tags"])
    assert "base_model" not in front and "None" not in card  # a tiny model built locally has no Hub base
    assert "no pretrained model: a tiny Llama-type model built from seed 7" in card
    table = [line for line in card.splitlines() if line.startswith("| ") and "arithmetic" in line]
    assert [line.split("|")[1].strip() for line in table] == ["base", "sft", "**grpo** (this checkpoint)"]
    assert (
        "| base | arithmetic | test | 8 | 0.000 | 1.000 | 0.000 | 0.250 | 0.417 | 0.500 | 0.500 | 0.500 | 0.500 |"
        in card
    )
    assert "| model | dataset | split | n | accuracy | format | truncated | pass@1 | pass@2 | pass@4 | maj@1 |" in card
    assert "| **grpo** (this checkpoint) | arithmetic | test | 8 | 0.625 |" in card
    assert "| 20 | 2.000 |" in card  # the GRPO reward curve, last logged step kept
    assert 'revision="grpo"' in card
    assert "name: tiny" in card and "closeness_to_length" in card  # the full recipe
    assert "- trl " in card and "- huggingface_hub " in card  # package versions
    assert "push.license" in card


def test_model_card_metadata_has_base_model_datasets_and_model_index(recipe_dict):
    recipe_dict["model"] = {"path": "Qwen/Qwen2.5-0.5B-Instruct"}
    recipe_dict["eval"] = {"dataset": {"path": "openai/gsm8k", "split": "test"}}
    recipe, _ = make_run(recipe_dict, license="apache-2.0")
    card = ModelCard(render_model_card(recipe, "grpo", "Qwen/Qwen2.5-0.5B-Instruct"))
    assert card.data.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["openai/gsm8k"]
    result = card.data.eval_results[0]
    assert (result.dataset_type, result.dataset_name, result.dataset_split) == ("openai/gsm8k", "GSM8K", "test")
    assert (result.metric_type, result.metric_value) == ("accuracy", 0.625)
    assert "[Qwen/Qwen2.5-0.5B-Instruct](https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct)" in card.text


def gsm8k_run(recipe_dict) -> tuple:
    recipe_dict["model"] = {"path": "Qwen/Qwen2.5-0.5B-Instruct"}
    recipe_dict["eval"] = {"dataset": {"path": "openai/gsm8k", "config": "main", "split": "test"}}
    return make_run(recipe_dict)


def model_index(recipe, checkpoint=None) -> list:
    card = ModelCard(plan_push(recipe, checkpoint).card_path.read_text())
    return card.data.eval_results or []


def test_an_intermediate_checkpoint_does_not_publish_the_final_accuracy(recipe_dict):
    recipe, grpo = gsm8k_run(recipe_dict)
    assert [r.metric_value for r in model_index(recipe)] == [0.625]
    assert model_index(recipe, grpo / "checkpoint-2") == []
    card = plan_push(recipe, grpo / "checkpoint-2").card_path.read_text()
    assert "| grpo | openai/gsm8k | test |" in card and "this checkpoint" not in card
    assert "No row is an evaluation of this exact checkpoint" in card


def test_an_eval_with_a_limit_is_not_published(recipe_dict):
    recipe, grpo = gsm8k_run(recipe_dict)
    write_summary(recipe, "grpo", 0.987, grpo, limit=10)  # an older layout: a --limit result under the stage's label
    write_summary(recipe, "grpo-limit10", 0.987, grpo, limit=10)  # recipe eval --limit 10 today
    assert model_index(recipe) == []
    card = plan_push(recipe).card_path.read_text()
    assert "0.987" not in card and "--limit" not in card
    assert "No row is an evaluation of this exact checkpoint" in card


def test_an_eval_of_another_folder_is_not_published(recipe_dict, tmp_path):
    recipe, _ = gsm8k_run(recipe_dict)
    write_summary(recipe, "grpo", 0.987, tmp_path / "elsewhere")
    write_summary(recipe, "elsewhere-sft", 0.986, tmp_path / "elsewhere")
    assert model_index(recipe) == []
    card = plan_push(recipe).card_path.read_text()
    assert "0.987" not in card and "elsewhere" not in card and "0.986" not in card


def test_an_eval_of_the_model_its_stage_replaced_since_is_not_published(recipe_dict):
    """`recipe grpo --resume` to more steps keeps eval/grpo.json of the shorter run: not this checkpoint's score."""
    recipe, _ = gsm8k_run(recipe_dict)
    run = RunFolder(recipe)
    evaluated = run.eval_dir / "grpo.json"
    os.utime(evaluated, (evaluated.stat().st_mtime - 3600,) * 2)
    record = run.read()
    record["stages"]["grpo"]["started_at"] = "2099-01-01T00:00:00+0000"  # GRPO trained further after that eval
    run.record_path.write_text(json.dumps(record))
    assert model_index(recipe) == []
    card = plan_push(recipe).card_path.read_text()
    assert "0.625" not in card and "No row is an evaluation of this exact checkpoint" in card
    assert "| sft | openai/gsm8k | test | 8 | 0.500 |" in card  # the SFT model is still the one evaluated


def test_the_model_index_dataset_is_what_the_summary_measured(recipe_dict):
    recipe, grpo = make_run(recipe_dict)  # the recipe's eval set today: generated arithmetic problems
    measured = recipe.model_copy(deep=True)
    measured.eval.dataset = measured.eval.dataset.model_copy(
        update={"path": "openai/gsm8k", "adapter": "gsm8k", "config": "main", "split": "test"}
    )
    write_summary(measured, "grpo", 0.375, grpo)
    [result] = model_index(recipe)
    assert (result.dataset_type, result.dataset_name, result.dataset_config) == ("openai/gsm8k", "GSM8K", "main")
    assert (result.dataset_split, result.metric_value) == ("test", 0.375)


def test_upload_leaves_out_training_state_checkpoints_and_the_old_readme(recipe_dict):
    _, grpo = make_run(recipe_dict)
    assert [f.path_in_repo for f in list_upload_files(grpo)] == sorted([*CHECKPOINT_FILES, "trainer_state.json"])
    with_state = {f.path_in_repo for f in list_upload_files(grpo, include_training_state=True)}
    assert set(TRAINING_STATE) <= with_state and not any(p.startswith("checkpoint-") for p in with_state)


def test_upload_of_a_lora_grpo_stage_leaves_out_trls_frozen_reference_adapter(tmp_path):
    """With beta > 0, TRL keeps a frozen copy of the starting adapter named "ref", and peft saves it in ref/."""
    grpo = tmp_path / "grpo"
    for name in ("adapter_config.json", "adapter_model.safetensors", "ref/adapter_config.json", "ref/x.safetensors"):
        (grpo / name).parent.mkdir(parents=True, exist_ok=True)
        (grpo / name).write_bytes(b"{}")
    assert [f.path_in_repo for f in list_upload_files(grpo)] == ["adapter_config.json", "adapter_model.safetensors"]
    with_state = [f.path_in_repo for f in list_upload_files(grpo, include_training_state=True)]
    assert "ref/adapter_config.json" in with_state


def test_dry_run_lists_the_files_and_writes_the_card_without_network(recipe_dict, write_recipe, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    recipe, grpo = make_run(recipe_dict)
    del recipe_dict["push"]  # like recipes/demo.yaml: the repo comes from the command line
    result = invoke("push", write_recipe(recipe_dict), "--repo-id", "user/demo", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "user/demo @ grpo" in result.output
    size = (grpo / "model.safetensors").stat().st_size
    assert "model.safetensors" in result.output and f"{size:,}" in result.output
    assert "optimizer.pt" not in result.output
    card = RunFolder(recipe).root / "push" / "grpo" / "README.md"
    assert card.is_file() and "user/demo" in card.read_text()


def test_the_push_plan_fits_80_columns_without_cropping(recipe_dict, write_recipe):
    _, grpo = make_run(recipe_dict)
    long_name = "tokenizer/special_tokens_map_of_the_chat_template_this_model_was_trained_with.json"
    (grpo / long_name).parent.mkdir()
    (grpo / long_name).write_text("{}")
    result = invoke("push", write_recipe(recipe_dict), "--dry-run")  # the runner's console is 80 columns wide
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert long_name in "".join(line.strip("│ ").split(" │")[0] for line in result.output.splitlines())


def test_push_without_a_repo_id_says_how_to_give_one(recipe_dict, write_recipe):
    result = invoke("push", write_recipe(recipe_dict), "--dry-run")
    assert result.exit_code == 2
    assert "no `push:` section" in result.output and "--repo-id" in result.output


def test_push_with_an_invalid_repo_id_writes_nothing(recipe_dict, write_recipe, tmp_path):
    make_run(recipe_dict)
    result = invoke("push", write_recipe(recipe_dict), "--repo-id", "not a repo", "--dry-run")
    assert result.exit_code == 2
    assert "push.repo_id: 'not a repo' is not a Hub repo id; write it as 'user-or-org/model-name'" in result.output
    assert not (tmp_path / "runs" / "tiny" / "push").exists()


@pytest.mark.parametrize(
    ("push", "expected"),
    [
        ({"revision": "a b"}, "is not a branch name"),
        ({"merge_lora": True}, "nothing to merge"),
        ({"repo_id": "no-slash"}, "is not a Hub repo id"),
        ({"push_checkpoints": True}, "no stage saves checkpoints"),
        ({"license": "Apache 2.0"}, "'Apache 2.0' is not a Hub license id.*repositories-licenses"),
        ({"license": "MIT"}, "is not a Hub license id"),
    ],
)
def test_push_settings_are_checked(recipe_dict, push, expected):
    recipe_dict["push"] = {"repo_id": REPO_ID, **push}
    with pytest.raises(RecipeError, match=expected):
        validate_recipe(recipe_dict)


@pytest.mark.parametrize("license_id", ["apache-2.0", "cc-by-nc-4.0", "llama3.1", "bsd-3-clause", "other"])
def test_hub_license_ids_are_accepted(recipe_dict, license_id):
    recipe_dict["push"] = {"repo_id": REPO_ID, "license": license_id}
    assert validate_recipe(recipe_dict).push.license == license_id


@pytest.mark.card_plots
def test_push_round_trip_the_hub_holds_the_checkpoint(recipe_dict, write_recipe, fake_hub):
    recipe, grpo = make_run(recipe_dict)
    result = invoke("push", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    assert "pushed" in result.output and f"{REPO_ID} @ grpo" in result.output
    held = fake_hub.files(REPO_ID, "grpo")
    expected = {f.path_in_repo: f.local.read_bytes() for f in list_upload_files(grpo)}
    plots = {k: v for k, v in held.items() if k.startswith("plots/")}
    assert {k: v for k, v in held.items() if k not in (".gitattributes", "README.md", *plots)} == expected
    staging = RunFolder(recipe).root / "push" / "grpo"
    assert held["README.md"] == (staging / "README.md").read_bytes()
    assert {"plots/eval.png", "plots/grpo_rewards.png"} <= set(plots)  # the card's images, beside it in the repo
    assert all(data == (staging / path).read_bytes() and data.startswith(b"\x89PNG") for path, data in plots.items())
    assert "](plots/grpo_rewards.png)" in held["README.md"].decode()
    lfs = list(fake_hub.lfs_objects.values())  # large files went through the LFS batch API and upload
    assert held["model.safetensors"] in lfs and held["tokenizer.json"] in lfs and held["config.json"] not in lfs
    assert fake_hub.repos[REPO_ID].private
    assert list(fake_hub.files(REPO_ID, "main")) == [".gitattributes"]  # the stage went to its own branch


def test_push_refuses_an_existing_revision_unless_told_to_overwrite(recipe_dict, fake_hub):
    recipe, grpo = make_run(recipe_dict)
    fake_hub.add_repo(REPO_ID, {"stale.bin": b"old weights"}, branch="grpo")
    with pytest.raises(RecipeError, match="already has a revision 'grpo'.*--overwrite"):
        push_checkpoint(recipe)
    assert len(fake_hub.commits(REPO_ID, "grpo")) == 2  # untouched
    recipe_dict["push"]["overwrite"] = True
    pushed = push_checkpoint(validate_recipe(recipe_dict))
    held = fake_hub.files(REPO_ID, "grpo")
    assert "stale.bin" not in held and held["model.safetensors"] == (grpo / "model.safetensors").read_bytes()
    assert pushed.commit_oid == fake_hub.commits(REPO_ID, "grpo")[-1].oid


def test_a_new_branch_holds_exactly_the_checkpoint_not_what_main_held(recipe_dict, fake_hub):
    recipe, grpo = make_run(recipe_dict)
    earlier_lora = {"adapter_config.json": b"{}", "adapter_model.safetensors": b"lora", "model.safetensors": b"old"}
    fake_hub.add_repo(REPO_ID, earlier_lora)  # main holds an earlier LoRA push; the new branch starts from it
    push_checkpoint(recipe)
    held = fake_hub.files(REPO_ID, "grpo")
    assert set(held) - {".gitattributes"} == {f.path_in_repo for f in plan_push(recipe).files}
    assert held["model.safetensors"] == (grpo / "model.safetensors").read_bytes()
    assert set(earlier_lora) <= set(fake_hub.files(REPO_ID, "main"))  # main itself is untouched


def test_an_intermediate_checkpoint_goes_to_its_step_branch(recipe_dict, fake_hub):
    recipe, grpo = make_run(recipe_dict)
    pushed = push_checkpoint(recipe, grpo / "checkpoint-2")
    assert pushed.revision == "grpo-step-2"
    assert "**grpo** (step 2) checkpoint" in fake_hub.files(REPO_ID, "grpo-step-2")["README.md"].decode()
    held = fake_hub.files(REPO_ID, "grpo-step-2")
    assert held["model.safetensors"] == (grpo / "checkpoint-2" / "model.safetensors").read_bytes()
    assert not set(TRAINING_STATE) & set(held)


def test_an_intermediate_checkpoint_is_labelled_with_the_stage_folder_it_lives_in(recipe_dict, fake_hub):
    recipe, grpo = make_run(recipe_dict, stage="sft")  # push.stage picks the finished stage pushed by default
    assert plan_push(recipe, grpo / "checkpoint-2").stage == "grpo"
    state = SimpleNamespace(is_world_process_zero=True, global_step=2)
    push.checkpoint_pusher(recipe).on_save(SimpleNamespace(output_dir=str(grpo)), state, control=None)
    card = fake_hub.files(REPO_ID, "grpo-step-2")["README.md"].decode()
    assert "**grpo** (step 2) checkpoint" in card and "sft**" not in card


def test_a_failed_commit_is_retried_then_leaves_no_commit_and_a_clear_error(trained_run, fake_hub):
    fake_hub.fail("commit", status=500, times=10)
    with pytest.raises(RecipeError, match=r"cannot upload the files on the Hub for someone/tiny-r1 after 4 attempts"):
        push_checkpoint(trained_run)
    assert fake_hub.calls("commit") == 4
    assert len(fake_hub.commits(REPO_ID, "grpo")) == 1  # only the head it was branched from


def test_a_transient_failure_is_retried_and_the_push_succeeds(trained_run, fake_hub):
    fake_hub.fail("create", status=503)
    fake_hub.fail("commit", status=502)
    pushed = push_checkpoint(trained_run)
    assert fake_hub.calls("commit") == 2 and fake_hub.calls("create") == 2
    assert fake_hub.commits(REPO_ID, "grpo")[-1].oid == pushed.commit_oid


def test_a_commit_that_landed_before_a_5xx_is_confirmed_not_retried(trained_run, fake_hub):
    fake_hub.fail_after("commit", status=500)  # the Hub applies the commit, then the answer is a 500
    pushed = push_checkpoint(trained_run)
    assert fake_hub.calls("commit") == 1
    commits = fake_hub.commits(REPO_ID, "grpo")
    assert len(commits) == 2 and pushed.commit_oid == commits[-1].oid  # the branch's start, then the push
    assert REPO_ID in pushed.commit_url and pushed.commit_oid in pushed.commit_url


def test_a_refused_large_file_upload_midway_leaves_no_commit(trained_run, fake_hub):
    fake_hub.fail("lfs-upload", status=403)
    with pytest.raises(RecipeError, match="may not write to someone/tiny-r1"):
        push_checkpoint(trained_run)
    assert fake_hub.calls("commit") == 0
    assert len(fake_hub.commits(REPO_ID, "grpo")) == 1


def test_a_commit_the_hub_does_not_keep_is_not_reported_as_pushed(trained_run, fake_hub, write_recipe):
    fake_hub.confirm_commits = False
    with pytest.raises(RecipeError, match="push is not confirmed"):
        push_checkpoint(trained_run)


def test_a_rejected_token_names_the_fix(trained_run, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(RecipeError, match="rejected the token.*hf auth login"):
        push_checkpoint(trained_run)
    assert REPO_ID not in fake_hub.repos


def test_push_without_a_token_names_the_fix_and_writes_nothing(trained_run, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RecipeError, match="not logged in.*hf auth login"):
        push_checkpoint(trained_run)
    assert not (RunFolder(trained_run).root / "push").exists()  # no card, plots or converted weights staged


def test_push_to_an_unreachable_hub_is_retried_then_a_clear_error(trained_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(hub, "RETRY_DELAYS", (0.01,))
    with pytest.raises(RecipeError, match="after 2 attempts.*check your network"):
        push_checkpoint(trained_run)


def test_offline_mode_ends_the_push_at_once_naming_hf_hub_offline(trained_run, fake_hub, monkeypatch, caplog):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(RecipeError, match="offline mode.*unset HF_HUB_OFFLINE") as raised:
        push_checkpoint(trained_run)
    assert "network" not in str(raised.value) and "trying again" not in caplog.text
    assert fake_hub.requests == []
    assert not (RunFolder(trained_run).root / "push").exists()


def test_run_in_offline_mode_stops_before_any_model_loads_not_at_the_push(
    recipe_dict, write_recipe, fake_hub, monkeypatch
):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    recipe_dict["push"] = {"repo_id": REPO_ID}
    result = invoke("run", write_recipe(recipe_dict))
    assert result.exit_code == 2 and "offline mode" in result.stderr and "unset HF_HUB_OFFLINE" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    root = RunFolder(validate_recipe(recipe_dict)).root
    assert not (root / "base").exists() and not (root / "sft").exists() and not (root / "eval").exists()
    assert fake_hub.requests == []


def test_an_unreadable_local_file_ends_the_push_at_once_naming_it(trained_run, fake_hub, monkeypatch, caplog):
    from huggingface_hub.lfs import UploadInfo

    read = UploadInfo.from_path

    def denied(path):  # what reading a file without permission raises (the tests run as root, so chmod cannot)
        if path.endswith("model.safetensors"):
            raise PermissionError(13, "Permission denied", path)
        return read(path)

    monkeypatch.setattr(UploadInfo, "from_path", staticmethod(denied))
    with pytest.raises(RecipeError, match=r"cannot read '.*grpo/model.safetensors' to upload it \(Permission denied\)"):
        push_checkpoint(trained_run)
    assert "trying again" not in caplog.text and fake_hub.calls("commit") == 0


def test_plan_push_without_a_trained_stage_says_what_to_run(recipe_dict):
    recipe_dict["push"] = {"repo_id": REPO_ID}
    with pytest.raises(RecipeError, match="no finished training checkpoint.*--checkpoint"):
        plan_push(validate_recipe(recipe_dict))


def test_a_checkpoint_with_a_cut_off_weights_file_is_not_pushed(recipe_dict, fake_hub):
    recipe, grpo = make_run(recipe_dict)
    weights = grpo / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # a copy or a save cut short
    with pytest.raises(RecipeError, match=r"model.safetensors is .* bytes where its header says .*copy it again"):
        push_checkpoint(recipe)
    assert fake_hub.calls("commit") == 0 and not fake_hub.repos


def test_a_stage_folder_without_its_weights_is_not_pushed(recipe_dict, fake_hub):
    """A trainer's folder keeps training_args.bin and, in a checkpoint, optimizer.pt: they match the weights'
    patterns (*.bin, *.pt) but are no model, so a folder left with them alone is refused, not published."""
    recipe, grpo = make_run(recipe_dict)
    (grpo / "model.safetensors").unlink()
    with pytest.raises(RecipeError, match=r"the checkpoint '.*grpo' holds no weights"):
        push_checkpoint(recipe)
    (grpo / "checkpoint-2" / "model.safetensors").unlink()
    with pytest.raises(RecipeError, match=r"checkpoint-2' holds no weights"):
        push_checkpoint(recipe, grpo / "checkpoint-2")
    assert fake_hub.calls("commit") == 0 and not fake_hub.repos


def test_grpo_trained_from_an_sft_model_trained_again_since_is_not_pushed_by_default(recipe_dict, caplog):
    from recipe_cli.pipeline import eval_targets

    recipe, grpo = make_run(recipe_dict)
    run = RunFolder(recipe)
    record = run.read()
    record["stages"]["grpo"]["sft"] = sft_identity(record)  # as record_training keeps it
    run._write(record)
    assert plan_push(recipe).stage == "grpo"
    record["stages"]["sft"]["finished_at"] = "later"  # `recipe sft --overwrite` finished again since
    run._write(record)
    with pytest.raises(
        RecipeError, match=r"trained again or further since; train grpo again .*--stage sft.*--checkpoint"
    ):
        plan_push(recipe)
    assert plan_push(recipe, grpo).stage == "grpo"  # named explicitly: pushed as it is
    assert "grpo" in dict(eval_targets(recipe, None, None, False))  # evaluated, with a warning
    assert "grpo: it was trained from an sft model that has been trained again" in caplog.text


def test_run_pushes_the_grpo_model_force_kept_over_a_changed_sft(recipe_dict, write_recipe, fake_hub, caplog):
    """`recipe run --resume` refuses a GRPO model trained from an SFT model trained further since, and says --force
    keeps it; the run's push then took it as it is rather than refusing it after the evals with exit code 2."""
    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    recipe_dict["push"] = {"repo_id": REPO_ID, "overwrite": True}  # each run pushes to the grpo branch
    path = write_recipe(recipe_dict)
    assert invoke("run", path).exit_code == 0
    first = fake_hub.files(REPO_ID, "grpo")["model.safetensors"]
    longer = ["--resume", "--set", "sft.trainer.max_steps=6"]
    assert invoke("sft", path, *longer).exit_code == 0  # grpo's sft model is trained further
    kept = invoke("run", path, *longer, "--force")
    assert kept.exit_code == 0, kept.output
    assert "grpo already finished" in kept.output and "pushed" in kept.output
    assert "pushing grpo as --force kept it: it was trained from an sft model" in caplog.text
    assert fake_hub.files(REPO_ID, "grpo")["model.safetensors"] == first  # the kept model, as it is
    refused = invoke("push", path)  # without --force, the push alone still refuses it
    assert refused.exit_code == 2 and "--checkpoint" in refused.stderr, refused.output


def test_push_to_main_when_asked(trained_run, fake_hub):
    recipe = trained_run.model_copy(update={"push": trained_run.push.model_copy(update={"revision": "main"})})
    push_checkpoint(recipe)
    assert "model.safetensors" in fake_hub.files(REPO_ID, "main")
    assert set(fake_hub.repos[REPO_ID].branches) == {"main"}


@pytest.mark.slow
@pytest.mark.parametrize("targets", [["q_proj"], ["q_proj", "embed_tokens"]])  # the tiny model ties its embeddings
def test_merge_lora_pushes_full_weights_with_the_adapter_merged_in(recipe_dict, targets):
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipe_cli.training import prepare_base_model

    recipe_dict["model"]["lora"] = {"r": 2, "alpha": 4, "dropout": 0.0}
    recipe_dict["push"] = {"repo_id": REPO_ID, "merge_lora": True}
    recipe = validate_recipe(recipe_dict)
    run = RunFolder(recipe)
    base = prepare_base_model(recipe, run)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=targets))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name and not parameter.any():
                parameter.fill_(0.5)  # one factor starts at zero (B, or A for embeddings); make the adapter count
    model.save_pretrained(run.stage_dir("sft"))
    AutoTokenizer.from_pretrained(base).save_pretrained(run.stage_dir("sft"))  # as the SFT stage saves it
    precision = {"master": "float32", "base": "bfloat16", "compute": "bfloat16"}  # a bf16 LoRA run on a GPU
    # the card reads the adapter it merged: alpha 8 (peft's default above), not the recipe's 4
    run.record_stage("sft", run.stage_dir("sft"), lora=True, base=base, started_from=base, precision=precision)

    plan = plan_push(recipe)
    names = {f.path_in_repo for f in plan.files}
    assert "model.safetensors" in names and "adapter_config.json" not in names and not plan.lora
    merged, original = load_file(plan.checkpoint / "model.safetensors"), load_file(f"{base}/model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[key], original[key])
    ids = torch.arange(12).unsqueeze(0)
    with torch.no_grad():  # the merged model computes what the base with its adapter computes
        expected = model.eval()(ids).logits
        assert torch.allclose(AutoModelForCausalLM.from_pretrained(plan.checkpoint)(ids).logits, expected, atol=1e-5)
    card = " ".join(plan.card_path.read_text().split())
    assert "library_name: transformers" in card
    assert "full weights: the base model with the LoRA adapter the run trained (r 2, alpha 8) merged in" in card
    assert "Training kept float32 master weights for the adapter only, on a frozen bfloat16 base model" in card


def test_push_in_a_fresh_process_pointed_at_the_hub_by_hf_endpoint(recipe_dict, write_recipe, fake_hub):
    """HF_ENDPOINT is read when huggingface_hub is imported: a new process checks the documented switch."""
    _, grpo = make_run(recipe_dict)
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "recipe_cli", "push", str(write_recipe(recipe_dict)), "--revision", "v1"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pushed 10 files" in result.stdout  # 5 of the checkpoint, 4 plots, the card
    assert fake_hub.files(REPO_ID, "v1")["model.safetensors"] == (grpo / "model.safetensors").read_bytes()
    assert "HTTP Request" not in result.stderr


@pytest.mark.slow
def test_checkpoints_saved_while_training_go_to_their_step_branches(recipe_dict, write_recipe, fake_hub, tmp_path):
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    recipe_dict["push"] = {"repo_id": REPO_ID, "push_checkpoints": True}
    fake_hub.fail("commit", status=403)  # the first checkpoint's push fails: logged, training goes on
    result = invoke("sft", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    branches = fake_hub.repos[REPO_ID].branches
    assert len(branches["sft-step-2"]) == 1  # branched from main, no commit
    held = fake_hub.files(REPO_ID, "sft-step-4")
    checkpoint = tmp_path / "runs" / "tiny" / "sft" / "checkpoint-4"
    assert held["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()
    assert (checkpoint / "optimizer.pt").is_file() and "optimizer.pt" not in held
    assert "sft-step-4" in held["README.md"].decode()


def card_code(card: str, folder, **replace: str) -> str:
    """The card's code blocks, in order, pointed at a local folder instead of the Hub, with ``replace``'s lines
    swapped in."""
    code = "".join(block.split("```")[0] for block in card.split("```python\n")[1:])
    code = code.replace(f'"{REPO_ID}"', repr(str(folder)))
    for start, line in replace.items():
        code = "\n".join(line if row.startswith(start) else row for row in code.splitlines())
    return code.replace(', revision="grpo"', "")


def run_card_code(code: str) -> str:
    """Run the card's code as a user would, in a fresh Python process; the completion it decoded."""
    script = code + "\nimport json\nprint(json.dumps(completion))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_the_cards_code_gives_the_completion_the_eval_scored(recipe_dict, tmp_path):
    """The card's code prompts and decodes as the eval did, whatever the checkpoint's generation_config.json
    suggests: Qwen2.5's instruct models ship sampling defaults and a repetition penalty."""
    import shutil

    from transformers import AutoModelForCausalLM

    from recipe_cli.evaluate import eval_rows, evaluate_model
    from recipe_cli.training import prepare_base_model

    recipe_dict["push"] = {"repo_id": REPO_ID}
    recipe_dict["prompt"]["user"] = "Problem: {question}"
    recipe_dict["eval"]["dataset"]["max_samples"] = 2
    recipe = validate_recipe(recipe_dict)
    run = RunFolder(recipe)
    base = prepare_base_model(recipe, run)
    grpo = run.stage_dir("grpo")
    shutil.copytree(base, grpo)
    model = AutoModelForCausalLM.from_pretrained(grpo)
    torch.manual_seed(0)
    with torch.no_grad():  # weights far from the small init: a varied completion that a penalty would change
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    model.save_pretrained(grpo)
    config = json.loads((grpo / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.3)
    (grpo / "generation_config.json").write_text(json.dumps(config))
    run.record_stage("grpo", grpo, lora=False, base=base, started_from=base)
    evaluate_model(recipe, str(grpo), "grpo")
    scored = json.loads((run.eval_dir / "grpo.jsonl").read_text().splitlines()[0])["completion"]
    question = eval_rows(recipe, recipe.eval.sets[0], None)[0]["question"]

    card = plan_push(recipe).card_path.read_text()
    assert run_card_code(card_code(card, grpo, question=f"question = {question!r}")) == scored


def test_the_card_says_which_accuracy_it_publishes_and_shows_the_other(recipe_dict):
    recipe_dict["model"] = {"path": "Qwen/Qwen2.5-0.5B-Instruct"}
    recipe_dict["eval"] = {"dataset": {"path": "openai/gsm8k", "config": "main", "split": "test"}}
    recipe, grpo = make_run(recipe_dict)
    for path in RunFolder(recipe).eval_dir.glob("*.json"):  # as evaluate writes them: both modes, the headline's name
        measured = json.loads(path.read_text())
        measured.update(accuracy_mode="strict", accuracy_strict=measured["accuracy"], accuracy_flexible=0.75)
        path.write_text(json.dumps(measured))
    card = ModelCard(plan_push(recipe).card_path.read_text())
    assert "| n | accuracy (strict) | flexible | format |" in card.text
    assert "| **grpo** (this checkpoint) | openai/gsm8k | test | 8 | 0.625 | 0.750 |" in card.text
    assert card.data.eval_results[0].metric_name == "accuracy (greedy, strict, 8 problems)"


def test_the_card_gives_each_rows_token_budget_as_its_eval_recorded_it(trained_run):
    eval_dir = RunFolder(trained_run).eval_dir
    for path in eval_dir.glob("*.json"):
        measured = json.loads(path.read_text())
        measured.update(accuracy_mode="flexible", accuracy_strict=0.0, accuracy_flexible=measured["accuracy"])
        measured["sampled"] = measured["decoding"]["sampling"] = None
        if path.stem == "grpo":  # evaluated again with `--set eval.max_new_tokens=20`
            measured["decoding"]["greedy"]["max_new_tokens"] = 20
        path.write_text(json.dumps(measured))
    card = plan_push(trained_run).card_path.read_text()
    assert "Greedy decoding, at most 16 new tokens (base, sft), 20 (grpo);" in card
    assert "pass@k" not in card  # no sampling pass measured any
    assert "max_new_tokens=20," in card  # the card's code decodes as the eval of the pushed checkpoint did


def test_an_adapter_of_a_base_model_not_on_the_hub_says_it_loads_only_beside_that_base(recipe_dict, tmp_path, caplog):
    recipe_dict["model"]["lora"] = {"r": 2}
    recipe_dict["push"] = {"repo_id": REPO_ID}
    recipe = validate_recipe(recipe_dict)
    run = RunFolder(recipe)
    base, grpo = str(run.stage_dir("base")), run.stage_dir("grpo")
    grpo.mkdir(parents=True)
    (grpo / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"}))
    safetensors.torch.save_file({"lora_A": torch.zeros(2, 2)}, grpo / "adapter_model.safetensors")
    run.record_stage("grpo", grpo, lora=True, base=base, started_from=base)
    card = plan_push(recipe).card_path.read_text()
    assert f"not on the Hub (`{base}`" in card and "`push.merge_lora: true`" in card
    assert "merge_lora" in caplog.text


def test_the_card_names_the_compute_dtype_the_stage_trained_in(recipe_dict):
    recipe, grpo = make_run(recipe_dict)
    run = RunFolder(recipe)
    precision = {"model_dtype": "bfloat16", "master": "float32", "compute": "bfloat16", "saved": "float32"}
    run.record_stage(
        "grpo", grpo, lora=False, base=str(run.stage_dir("base")), started_from=str(grpo), precision=precision
    )
    card = plan_push(recipe).card_path.read_text()
    assert "Training kept float32 master weights and computed in bfloat16." in card
