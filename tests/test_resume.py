"""Runs that survive: a run killed mid-way (even mid-save) and resumed ends exactly where an uninterrupted one does.

The interrupted runs are real processes (``python -m recipe_cli``) killed with real signals. Two
test hooks slow them down so that a signal lands where the test wants it: a pause before each
checkpoint's completion marker (a kill then leaves a checkpoint that was never marked complete)
and a pause at the end of each step.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from recipe_cli.checkpoints import MARKER, SAVE_PAUSE_ENV, SAVE_PAUSE_STEP_ENV
from recipe_cli.cli import app
from recipe_cli.preemption import STEP_PAUSE_ENV
from tests.conftest import GSM8K_DIR
from tests.test_pipeline import weights

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def sft_recipe(recipe_dict: dict, runs_dir: Path) -> dict:
    recipe_dict["runs_dir"] = str(runs_dir)
    recipe_dict["sft"]["trainer"].update(max_steps=12, save_strategy="steps", save_steps=4, logging_steps=1)
    return recipe_dict


def grpo_recipe(recipe_dict: dict, runs_dir: Path) -> dict:
    recipe_dict["runs_dir"] = str(runs_dir)
    del recipe_dict["sft"]  # GRPO straight from the base model: no SFT run needed first
    recipe_dict["grpo"]["trainer"].update(max_steps=6, save_strategy="steps", save_steps=100, logging_steps=1)
    return recipe_dict


def invoke(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def start_process(*args, env: dict[str, str]) -> subprocess.Popen:
    child_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "recipe_cli", *map(str, args)],
        cwd=REPO,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(
                f"the training process ended (code {process.returncode}) before the test could signal it:\n{err}"
            )
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the training process")
        time.sleep(0.05)


def step_logs(stage_dir: Path) -> list[dict]:
    """The per-step training logs of the newest checkpoint (each checkpoint holds the history up to it)."""
    newest = max(stage_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((newest / "trainer_state.json").read_text())["log_history"]

    def measured(key: str) -> bool:  # wall-clock and memory of the process, not training state
        return key.startswith(("step_time", "memory/")) or key.endswith("tokens_per_second")

    return [{k: v for k, v in entry.items() if not measured(k)} for entry in history if "loss" in entry]


def kill_during_save(recipe_path: Path, stage: str, stage_dir: Path, complete: str, unmarked: str) -> None:
    """Run a stage in a real process and SIGKILL it while ``unmarked`` is being saved, ``complete`` being done."""
    step = unmarked.split("-")[1]
    process = start_process(stage, recipe_path, env={SAVE_PAUSE_ENV: "120", SAVE_PAUSE_STEP_ENV: step})
    wait_for(
        lambda: (stage_dir / complete / MARKER).is_file() and (stage_dir / unmarked / "trainer_state.json").is_file(),
        process,
    )
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert not (stage_dir / unmarked / MARKER).exists()


@pytest.mark.slow
def test_sft_killed_mid_save_resumes_to_the_same_losses_and_weights(recipe_dict, write_recipe, tmp_path, caplog):
    reference = write_recipe(sft_recipe(copy.deepcopy(recipe_dict), tmp_path / "straight"), "straight.yaml")
    invoke("sft", reference)
    interrupted = write_recipe(sft_recipe(recipe_dict, tmp_path / "killed"), "killed.yaml")
    stage_dir = tmp_path / "killed" / "tiny" / "sft"

    kill_during_save(interrupted, "sft", stage_dir, complete="checkpoint-4", unmarked="checkpoint-8")
    refused = runner.invoke(app, ["sft", str(interrupted)])
    assert refused.exit_code == 2 and "--resume" in refused.output and "--overwrite" in refused.output

    started = time.perf_counter()
    output = invoke("sft", interrupted, "--resume")
    resume_seconds = time.perf_counter() - started
    assert "skipping" in caplog.text and "checkpoint-8" in caplog.text  # the unmarked checkpoint is not trusted
    assert "resuming checkpoint-4" in output

    straight_dir = tmp_path / "straight" / "tiny" / "sft"
    assert step_logs(stage_dir) == step_logs(straight_dir)  # loss, grad norm and learning rate of all 12 steps
    assert len(step_logs(stage_dir)) == 12
    resumed, uninterrupted = weights(stage_dir), weights(straight_dir)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed)  # bitwise
    record = json.loads((tmp_path / "killed" / "tiny" / "run.json").read_text())["stages"]["sft"]
    assert record["status"] == "finished" and record["resumed_from"].endswith("checkpoint-4")
    print(f"sft resume (load + 8 steps) took {resume_seconds:.1f} s")


@pytest.mark.slow
def test_logged_token_counts_resume_exactly_between_logging_steps(recipe_dict, write_recipe, tmp_path):
    """A checkpoint at a step that was not logged still continues the logged `num_tokens` exactly."""
    settings = {"logging_steps": 5, "save_steps": 3}
    reference = sft_recipe(copy.deepcopy(recipe_dict), tmp_path / "straight")
    reference["sft"]["trainer"].update(settings)
    invoke("sft", write_recipe(reference, "straight.yaml"))
    interrupted = sft_recipe(recipe_dict, tmp_path / "killed")
    interrupted["sft"]["trainer"].update(settings)
    path = write_recipe(interrupted, "killed.yaml")
    stage_dir = tmp_path / "killed" / "tiny" / "sft"
    kill_during_save(path, "sft", stage_dir, complete="checkpoint-6", unmarked="checkpoint-9")  # logged at 5 only
    invoke("sft", path, "--resume")
    straight_dir = tmp_path / "straight" / "tiny" / "sft"
    resumed, uninterrupted = step_logs(stage_dir), step_logs(straight_dir)
    assert [e["step"] for e in resumed] == [e["step"] for e in uninterrupted] == [5, 10]
    assert resumed[1]["num_tokens"] == uninterrupted[1]["num_tokens"]
    assert resumed == uninterrupted


@pytest.mark.slow
def test_grpo_stopped_by_sigterm_resumes_with_the_same_steps(recipe_dict, write_recipe, tmp_path):
    """SIGTERM: the step finishes, a marked checkpoint is saved, exit 143 with a resume hint; the resumed
    run then logs what the uninterrupted run logged (same step counter, learning rate, generations) and ends
    with bitwise the same weights."""
    reference = write_recipe(grpo_recipe(copy.deepcopy(recipe_dict), tmp_path / "straight"), "straight.yaml")
    invoke("grpo", reference)
    interrupted = write_recipe(grpo_recipe(recipe_dict, tmp_path / "stopped"), "stopped.yaml")
    stage_dir = tmp_path / "stopped" / "tiny" / "grpo"

    process = start_process("grpo", interrupted, env={STEP_PAUSE_ENV: "0.3"})
    wait_for(lambda: (tmp_path / "stopped" / "tiny" / "run.json").is_file(), process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err and f"recipe grpo {interrupted} --resume" in err and "Traceback" not in err
    checkpoints = list(stage_dir.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / MARKER).is_file()
    step = int(checkpoints[0].name.split("-")[1])
    assert 0 < step < 6

    output = invoke("grpo", interrupted, "--resume")
    assert f"resuming checkpoint-{step}" in output
    resumed, straight = step_logs(stage_dir), step_logs(tmp_path / "straight" / "tiny" / "grpo")
    assert [e["step"] for e in resumed] == [e["step"] for e in straight] == list(range(1, 7))
    for mine, theirs in zip(resumed, straight, strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:  # loss, learning rate, rewards, completion lengths: same generations, same update
            assert mine[key] == theirs[key], (mine["step"], key)
    resumed_weights, straight_weights = weights(stage_dir), weights(tmp_path / "straight" / "tiny" / "grpo")
    assert all(torch.equal(resumed_weights[name], straight_weights[name]) for name in resumed_weights)


@pytest.mark.slow
def test_a_signal_in_the_last_step_stops_run_before_the_next_stage(recipe_dict, write_recipe, tmp_path):
    """The stage finishes and is recorded; `run` stops there with the signal's code and a hint that keeps --set."""
    del recipe_dict["eval"]
    path = write_recipe(recipe_dict)
    process = start_process("run", path, "--set", "sft.trainer.max_steps=1", env={STEP_PAUSE_ENV: "3"})
    wait_for(lambda: (tmp_path / "runs" / "tiny" / "run.json").is_file(), process)
    time.sleep(0.5)  # in step 1 of 1, or in the pause at its end
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "finished its last step (1) as SIGTERM arrived" in err and "Traceback" not in err
    assert "SIGTERM received: saving a checkpoint after step 1" in err  # said by the step, not the handler
    assert f"recipe run {path} --set sft.trainer.max_steps=1 --resume" in err
    stages = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())["stages"]
    assert stages["sft"]["status"] == "finished" and "grpo" not in stages

    output = invoke("run", path, "--set", "sft.trainer.max_steps=1", "--resume")
    assert "sft already finished with these settings" in output and "grpo done" in output


def test_a_signal_during_the_final_save_stops_run_before_the_next_stage(recipe_dict, write_recipe, monkeypatch):
    """After the last step the stage still saves its final model (a minute for a large one) and is recorded; a
    signal then was taken by the handler and forgotten, so `run` went on through the next stage's evaluation and
    training until the scheduler's SIGKILL. It now stops the command after the stage, as one in the last step does."""
    from recipe_cli import training

    del recipe_dict["eval"]
    path = write_recipe(recipe_dict)
    save_final = training.save_final

    def signalled_while_saving(trainer, output_dir):
        os.kill(os.getpid(), signal.SIGTERM)
        save_final(trainer, output_dir)

    monkeypatch.setattr(training, "save_final", signalled_while_saving)
    result = runner.invoke(app, ["run", str(path), "--set", "sft.trainer.max_steps=1"])
    assert result.exit_code == 143, result.output + repr(result.exception)
    assert "sft finished its last step (1) as SIGTERM arrived" in result.stderr
    assert f"recipe run {path} --set sft.trainer.max_steps=1 --resume" in result.stderr
    stages = json.loads((Path(recipe_dict["runs_dir"]) / "tiny" / "run.json").read_text())["stages"]
    assert stages["sft"]["status"] == "finished" and "grpo" not in stages


def test_a_second_signal_exits_at_once(monkeypatch):
    """The first SIGTERM only sets the flag (the step finishes); the second ends the process without saving."""
    from recipe_cli import preemption

    exits = []
    monkeypatch.setattr(preemption.os, "_exit", lambda code: exits.append(code))
    flag = preemption.PreemptionFlag()
    before = signal.getsignal(signal.SIGTERM)
    with preemption.stop_on_signals(flag):
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.name == "SIGTERM" and exits == []
        os.kill(os.getpid(), signal.SIGTERM)
        assert exits == [143]
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers of the caller are back


def test_a_rank_of_recipes_launch_saves_however_often_the_stop_reaches_it(monkeypatch, tmp_path):
    """One stop request reaches a rank several times (from `recipe`, from accelerate's launcher, and directly when
    systemd or Slurm signal every process of the job): the rank saves all the same, and the `recipe` process,
    which counts the signals sent to the command, ends the ranks on a second one."""
    from recipe_cli import preemption
    from recipe_cli.launch import STATUS_ENV

    monkeypatch.setenv(STATUS_ENV, str(tmp_path / "status.json"))
    exits = []
    monkeypatch.setattr(preemption.os, "_exit", lambda code: exits.append(code))
    flag = preemption.PreemptionFlag()
    with preemption.stop_on_signals(flag):
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGTERM)
        assert flag.name == "SIGTERM" and exits == []


def test_a_malformed_test_hook_fails_before_training(monkeypatch):
    from recipe_cli.checkpoints import completion_marker_callback
    from recipe_cli.errors import RecipeError
    from recipe_cli.preemption import PreemptionFlag, preemption_callback

    monkeypatch.setenv(SAVE_PAUSE_STEP_ENV, "eight")
    with pytest.raises(RecipeError, match=SAVE_PAUSE_STEP_ENV):
        completion_marker_callback()
    monkeypatch.setenv(STEP_PAUSE_ENV, "1s")
    with pytest.raises(RecipeError, match=STEP_PAUSE_ENV):
        preemption_callback(PreemptionFlag())


def test_an_earlier_run_is_never_overwritten_silently(recipe_dict, write_recipe, tmp_path):
    del recipe_dict["eval"]
    path = write_recipe(recipe_dict)
    invoke("sft", path)
    sft_dir = tmp_path / "runs" / "tiny" / "sft"
    before = {p: p.stat().st_mtime_ns for p in sft_dir.rglob("*")}

    again = runner.invoke(app, ["sft", str(path)])
    assert again.exit_code == 2
    assert "already holds a finished sft run; pass --resume to continue it or --overwrite" in again.stderr
    changed = runner.invoke(app, ["sft", str(path), "--resume", "--set", "sft.trainer.learning_rate=0.002"])
    assert changed.exit_code == 2
    assert "(sft.trainer.learning_rate: 0.001 -> 0.002)" in changed.stderr and "--force" in changed.stderr
    assert {p: p.stat().st_mtime_ns for p in sft_dir.rglob("*")} == before  # nothing touched

    assert "sft already finished" in invoke("sft", path, "--resume", "--set", "sft.trainer.logging_steps=2")
    forced = invoke("sft", path, "--resume", "--force", "--set", "sft.trainer.learning_rate=0.002")
    assert "sft already finished" in forced and "kept by --force" in forced
    assert "with these settings" not in forced  # they are not: the learning rate changed
    kept = invoke("sft", path, "--resume", "--set", "seed=8")  # shared by the run's stages: the run's is used, said
    assert "differs from the run in seed: 7 -> 8" in kept and "already finished with these settings" in kept
    refused = runner.invoke(app, ["sft", str(path), "--resume", "--force", "--set", "seed=8"])  # not silently kept
    assert refused.exit_code == 2 and "--force: the command line's model, prompt and seed" in refused.stderr
    assert "seed: 7 -> 8" in refused.stderr and "`recipe run --overwrite`" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    output = invoke("run", path, "--resume")  # sft is done: run goes on with grpo
    assert "sft already finished" in output and "grpo done" in output
    assert "sft done" in invoke("sft", path, "--overwrite")


def test_grpo_is_not_resumed_from_another_sft_model(recipe_dict, write_recipe, tmp_path):
    """SFT's length is not in the settings hash, so GRPO also records which finished SFT run it started from."""
    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    path = write_recipe(recipe_dict)
    invoke("run", path)
    record = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())["stages"]
    assert record["grpo"]["sft"]["finished_at"] == record["sft"]["finished_at"]

    longer = ["--resume", "--set", "sft.trainer.max_steps=6"]
    refused = runner.invoke(app, ["run", str(path), *longer])
    assert refused.exit_code == 2 and "sft trains again first" in refused.stderr, refused.output
    assert "sft done" not in refused.output  # refused before anything trained

    assert "resuming checkpoint-4" in invoke("sft", path, *longer)
    again = runner.invoke(app, ["grpo", str(path), "--resume"])
    assert again.exit_code == 2 and "sft run it started from changed" in again.stderr and "--overwrite" in again.stderr
    forced = invoke("grpo", path, "--resume", "--force")
    assert "grpo already finished" in forced and "with these settings" not in forced
    assert "grpo done" in invoke("grpo", path, "--overwrite")
    output = invoke("run", path, *longer)
    assert "sft already finished with these settings" in output
    assert "grpo already finished with these settings" in output


def test_settings_that_change_learning_change_the_hash(recipe_dict):
    from recipe_cli.config import validate_recipe
    from recipe_cli.runs import settings_hash, training_settings

    def grpo_hash(change):
        data = copy.deepcopy(recipe_dict)
        change(data)
        return settings_hash(training_settings(validate_recipe(data), "grpo"))

    same = grpo_hash(lambda d: None)
    assert grpo_hash(lambda d: d["grpo"]["trainer"].update(logging_steps=5, save_steps=3, max_steps=9)) == same
    assert grpo_hash(lambda d: d["eval"].update(max_new_tokens=4)) == same
    assert grpo_hash(lambda d: d.update(runs_dir="elsewhere")) == same
    assert grpo_hash(lambda d: d["grpo"]["rewards"][1].update(weight=0.7)) != same
    assert grpo_hash(lambda d: d["sft"]["trainer"].update(learning_rate=0.5)) != same  # GRPO starts from SFT's model
    assert grpo_hash(lambda d: d.update(seed=8)) != same

    def two_sets(name, max_samples=8):  # decontamination removes the questions of every eval set
        headline = {"name": "arithmetic", **recipe_dict["eval"]["dataset"]}
        other = {"name": name, "adapter": "arithmetic", "split": "test", "max_samples": max_samples}
        return lambda d: d["eval"].update(dataset=None, datasets=[headline, other])

    assert grpo_hash(two_sets("more")) == grpo_hash(two_sets("renamed"))  # the same questions removed
    assert grpo_hash(two_sets("more")) != grpo_hash(two_sets("more", max_samples=16))


def test_a_finished_run_can_be_extended_from_its_last_checkpoint(recipe_dict, write_recipe, tmp_path):
    del recipe_dict["grpo"], recipe_dict["eval"]
    path = write_recipe(recipe_dict)
    invoke("sft", path)  # save_strategy: no, so there is nothing to continue from
    refused = runner.invoke(app, ["sft", str(path), "--resume", "--set", "sft.trainer.max_steps=6"])
    assert refused.exit_code == 2 and "kept no checkpoint to continue from" in refused.stderr

    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    path = write_recipe(recipe_dict)
    invoke("sft", path, "--overwrite")
    output = invoke("sft", path, "--resume", "--set", "sft.trainer.max_steps=6")
    assert "resuming checkpoint-4" in output
    state = json.loads((tmp_path / "runs" / "tiny" / "sft" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6

    # shorter than what was trained: resuming would train nothing and record a length the model does not have
    shorter = runner.invoke(app, ["sft", str(path), "--resume", "--set", "sft.trainer.max_steps=4"])
    assert shorter.exit_code == 2 and "checkpoint-6 is at step 6" in shorter.stderr, shorter.output
    assert "--overwrite" in shorter.stderr and "--model" in shorter.stderr


def test_an_extended_run_trains_its_first_new_step_at_the_new_schedules_rate(recipe_dict, write_recipe, tmp_path):
    """transformers loads the optimizer's rate from the checkpoint: after a finished cosine decay that is 0, and the
    first new step trained at it, the schedule for the new length only from the step after (measured)."""
    del recipe_dict["grpo"], recipe_dict["eval"]
    recipe_dict["sft"]["trainer"].update(
        lr_scheduler_type="cosine", save_strategy="steps", save_steps=2, logging_steps=1
    )
    path = write_recipe(recipe_dict)
    invoke("sft", path)
    invoke("sft", path, "--resume", "--set", "sft.trainer.max_steps=8")
    history = json.loads((tmp_path / "runs" / "tiny" / "sft" / "trainer_state.json").read_text())["log_history"]
    rates = {entry["step"]: entry["learning_rate"] for entry in history if "learning_rate" in entry}
    assert rates[4] == pytest.approx(1.0e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))  # step 4 of 4 trains at lr(3)
    for step in (5, 6):  # cosine over 8 steps from here on
        assert rates[step] == pytest.approx(1.0e-3 * 0.5 * (1 + math.cos(math.pi * (step - 1) / 8)))


def test_a_checkpoint_is_on_disk_before_its_marker(tmp_path, monkeypatch):
    from recipe_cli import checkpoints

    checkpoint = tmp_path / "checkpoint-3"
    (checkpoint / "sub").mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "sub/rng.pth"):
        (checkpoint / name).write_text(name)
    synced = []
    real_fsync = os.fsync

    def fsync(descriptor):
        synced.append((os.readlink(f"/proc/self/fd/{descriptor}"), (checkpoint / MARKER).exists()))
        real_fsync(descriptor)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync)
    checkpoints.mark_complete(checkpoint)
    before_marker = {path for path, marked in synced if not marked}
    assert {str(checkpoint / n) for n in ("model.safetensors", "optimizer.pt", "sub/rng.pth")} <= before_marker
    assert {str(checkpoint), str(checkpoint / "sub")} <= before_marker
    assert synced[-1] == (str(checkpoint), True)  # the marker's rename, after


def test_the_newest_marked_checkpoint_is_resumed_by_step_number(tmp_path, caplog):
    from recipe_cli.checkpoints import last_complete_checkpoint, mark_complete

    for step in (2, 9, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-9-partial").mkdir()  # not a checkpoint name
    mark_complete(tmp_path / "checkpoint-2")
    mark_complete(tmp_path / "checkpoint-9")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-9"  # 10 > 9 > 2, numerically
    assert "skipping" in caplog.text and "checkpoint-10" in caplog.text
    assert last_complete_checkpoint(tmp_path / "absent") is None


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_nothing_beside_it(tmp_path, monkeypatch):
    from recipe_cli import atomic

    record = tmp_path / "run.json"
    atomic.write_atomic(record, '{"old": true}\n', durable=True)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic.write_atomic(record, '{"new": true}\n', durable=True)
    assert record.read_text() == '{"old": true}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["run.json"]


DAMAGES = {  # what goes wrong with a file of a marked checkpoint -> what the refusal names
    "model.safetensors cut off": (lambda c: os.truncate(c / "model.safetensors", 1000), "model.safetensors is 1000"),
    "no weights": (lambda c: (c / "model.safetensors").unlink(), "holds no model weights"),
    "trainer state garbage": (lambda c: (c / "trainer_state.json").write_text("{"), "trainer_state.json cannot"),
    "trainer state without a step": (lambda c: (c / "trainer_state.json").write_text("{}"), "trainer_state.json is"),
    "optimizer cut off": (lambda c: os.truncate(c / "optimizer.pt", 100), "optimizer.pt is cut off"),
    "no optimizer": (lambda c: (c / "optimizer.pt").unlink(), "fresh optimizer"),
    "no scheduler": (lambda c: (c / "scheduler.pt").unlink(), "learning-rate schedule would start again"),
    "rng garbage": (lambda c: (c / "rng_state.pth").write_text("x"), "rng_state.pth is cut off"),
    "log state garbage": (lambda c: (c / "log-state-0.json").write_text("x"), "log-state-0.json cannot"),
}


def test_a_damaged_checkpoint_is_refused_naming_the_one_before_it(recipe_dict, write_recipe, tmp_path, caplog):
    from recipe_cli.checkpoints import resume_problem

    del recipe_dict["grpo"], recipe_dict["eval"]
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2)
    path = write_recipe(recipe_dict)
    invoke("sft", path)
    sft_dir = tmp_path / "runs" / "tiny" / "sft"
    sound = sft_dir / "checkpoint-4"
    assert resume_problem(sound) is None
    for what, (damage, named) in DAMAGES.items():
        copy_of = tmp_path / what / "checkpoint-4"
        shutil.copytree(sound, copy_of)
        damage(copy_of)
        assert named in (resume_problem(copy_of) or ""), what
    only_model = tmp_path / "no optimizer" / "checkpoint-4"
    assert resume_problem(only_model, saves_optimizer=False) is None  # save_only_model saves none

    os.truncate(sound / "optimizer.pt", 100)  # e.g. a disk that filled up after the marker
    record = (tmp_path / "runs" / "tiny" / "run.json").read_bytes()
    refused = runner.invoke(app, ["sft", str(path), "--resume", "--set", "sft.trainer.max_steps=6"])
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
    assert f"cannot resume sft from {sound}: optimizer.pt is cut off" in refused.stderr
    assert "delete that folder to resume from checkpoint-2" in refused.stderr and "--overwrite" in refused.stderr
    assert (tmp_path / "runs" / "tiny" / "run.json").read_bytes() == record  # nothing started

    shutil.rmtree(sound)
    (sft_dir / "checkpoint-2" / "rng_state.pth").unlink()
    assert "resuming checkpoint-2" in invoke("sft", path, "--resume", "--set", "sft.trainer.max_steps=6")
    assert "holds no rng_state.pth" in caplog.text  # resumed, not exactly as the run it continues


def test_resuming_on_other_rows_than_the_stage_trained_on_is_refused(recipe_dict, write_recipe, tmp_path, caplog):
    """The settings hash names the data file, not what it holds: an edited file (or an updated Hub dataset) would
    otherwise go on training the run on other rows, and replace the record of the rows it trained on."""
    problems = (GSM8K_DIR / "train.jsonl").read_text().splitlines()
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(problems[:24]) + "\n")
    del recipe_dict["grpo"], recipe_dict["eval"]
    recipe_dict["sft"]["dataset"] = {"path": str(data), "adapter": "gsm8k", "split": "train"}
    recipe_dict["sft"]["trainer"].update(save_strategy="steps", save_steps=2, max_length=1024)
    path = write_recipe(recipe_dict)
    invoke("sft", path)
    longer = ["--resume", "--set", "sft.trainer.max_steps=6"]
    assert "resuming checkpoint-4" in invoke("sft", path, *longer)  # the same rows

    data.write_text("\n".join(problems[:23] + problems[30:31]) + "\n")  # one row edited
    rows = tmp_path / "runs" / "tiny" / "data" / "sft.jsonl"
    trained_on = rows.read_bytes()
    refused = runner.invoke(app, ["sft", str(path), "--resume", "--set", "sft.trainer.max_steps=8"])
    assert refused.exit_code == 2, refused.output
    assert f"cannot resume sft: its data changed since it started (the rows it trained on are in {rows})" in (
        refused.stderr
    )
    assert "--force" in refused.stderr and "--overwrite" in refused.stderr
    assert rows.read_bytes() == trained_on and not (tmp_path / "runs" / "tiny" / "sft" / "checkpoint-8").exists()
    assert "resuming checkpoint-6" in invoke("sft", path, "--resume", "--force", "--set", "sft.trainer.max_steps=8")
    assert "on other data than it trained on (--force)" in caplog.text


@pytest.mark.parametrize(("signum", "how"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "stopped by SIGTERM")])
def test_a_stop_during_runs_evaluation_says_what_was_kept_and_how_to_continue(
    recipe_dict, write_recipe, monkeypatch, signum, how
):
    """Ctrl-C while `run` evaluated the SFT model printed only "interrupted", and a scheduler's SIGTERM ended the
    process without a word; both now say that SFT is trained and saved, which evaluations were written, and the
    command that continues the run, which then goes on."""
    from recipe_cli import evaluate

    path = write_recipe(recipe_dict)
    evaluate_model = evaluate.evaluate_model

    def interrupted_at_sft(recipe, model, label, *args):
        if label == "sft":
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler interrupts this
        return evaluate_model(recipe, model, label, *args)

    monkeypatch.setattr(evaluate, "evaluate_model", interrupted_at_sft)
    before = signal.getsignal(signal.SIGTERM), signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # Ctrl-C raises KeyboardInterrupt, whatever the process running the tests passed on
        result = runner.invoke(app, ["run", str(path)])
    finally:
        signal.signal(signal.SIGINT, before[1])
    assert result.exit_code == 128 + signum, result.output + repr(result.exception)
    assert signal.getsignal(signal.SIGTERM) == before[0]  # the test process's own handling is back
    run_dir = Path(recipe_dict["runs_dir"]) / "tiny"
    said = " ".join(result.stderr.split())
    assert f"{how} while evaluating sft, whose results were not written" in said
    assert f"sft trained, in {run_dir / 'sft'}; the evaluation of base in {run_dir / 'eval'}" in said
    assert f"continue with `recipe run {path} --resume`" in said and "Traceback" not in result.output
    assert not (run_dir / "eval" / "sft.json").exists()

    monkeypatch.setattr(evaluate, "evaluate_model", evaluate_model)
    output = invoke("run", path, "--resume")
    assert "sft already finished with these settings" in output and "eval sft:" in output and "grpo done" in output


def test_run_overwrite_stopped_in_sft_leaves_no_finished_grpo_of_the_sft_it_deleted(
    recipe_dict, write_recipe, monkeypatch
):
    """`run --overwrite` cleared SFT but kept the earlier run's finished GRPO until it reached it: stopped in SFT,
    the `--resume` it suggested was refused (GRPO's SFT changed) and `--force` kept, and pushed, a GRPO trained
    from an SFT model that no longer existed. GRPO is cleared with the SFT it started from."""
    from transformers import TrainerCallback

    from recipe_cli import pipeline

    class StopInSft(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1 and Path(args.output_dir).name == "sft":
                os.kill(os.getpid(), signal.SIGTERM)  # the stage saves after the next step and stops

    del recipe_dict["eval"]
    path = write_recipe(recipe_dict)
    invoke("run", path)
    run_dir = Path(recipe_dict["runs_dir"]) / "tiny"
    monkeypatch.setattr(pipeline, "_stage_callbacks", lambda recipe: [StopInSft()])
    stopped = runner.invoke(app, ["run", str(path), "--overwrite"])
    assert stopped.exit_code == 143, stopped.output + repr(stopped.exception)
    assert "grpo" not in json.loads((run_dir / "run.json").read_text())["stages"]
    assert not (run_dir / "grpo").exists()

    monkeypatch.setattr(pipeline, "_stage_callbacks", lambda recipe: [])
    output = invoke("run", path, "--resume")  # as the stop message says
    assert "resuming checkpoint-2" in output and "grpo done" in output
