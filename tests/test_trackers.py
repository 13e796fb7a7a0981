"""Live trackers: each stage attempt is one tracker run, in the recipe's project, continued by a resume."""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

import pytest

from recipe_cli.config import validate_recipe
from recipe_cli.resume import StageStart
from recipe_cli.runs import RunFolder
from recipe_cli.trackers import TrackerEnding, TrackerRun, tracking


@pytest.mark.parametrize(
    ("earlier", "resuming", "same_id", "attempt"),
    [
        (None, False, False, 1),  # the stage's first attempt
        (None, True, False, 1),  # --resume of a stage that never started
        ({"tracker": {"id": "grpo-abc", "attempt": 2}}, True, True, 2),  # a resume continues the run
        ({"tracker": {"id": "grpo-abc", "attempt": 2}}, False, False, 3),  # started again: a new run
        ({"status": "finished"}, False, False, 2),  # an earlier attempt that reported to no tracker
        ({"status": "training"}, True, False, 2),  # ... resumed with a tracker now on
    ],
)
def test_a_stage_attempt_is_one_tracker_run(earlier, resuming, same_id, attempt):
    run = TrackerRun.after(earlier, "grpo", resuming=resuming)
    assert (run.id == "grpo-abc") is same_id and run.attempt == attempt
    assert run.id.startswith("grpo-")
    if not same_id:  # a new run's id is new each time
        assert TrackerRun.after(earlier, "grpo", resuming=resuming).id != run.id


class FakeTracker(types.ModuleType):
    """A tracker module whose run transformers leaves open (as wandb's)."""

    def __init__(self, fail: bool = False):
        super().__init__("wandb")
        self.calls, self.fail, self.seen = [], fail, {}

        self.run = types.SimpleNamespace(mark_preempting=lambda: self.calls.append("mark_preempting"))

    def finish(self, exit_code=None):
        self.calls.append("finish" if exit_code is None else f"finish({exit_code})")
        if self.fail:
            raise RuntimeError("no network")

    def teardown(self):
        self.calls.append("teardown")


def test_tracking_sets_the_project_and_run_where_the_user_did_not_and_ends_the_run(monkeypatch):
    for name in ("WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_PROJECT", "mine")  # the user's own choice wins
    fake = FakeTracker()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with tracking(["wandb"], "demo", TrackerRun("grpo-abc", 1)):
        assert (os.environ["WANDB_PROJECT"], os.environ["WANDB_RUN_ID"], os.environ["WANDB_RESUME"]) == (
            "mine",
            "grpo-abc",
            "allow",
        )
    assert "WANDB_RUN_ID" not in os.environ and "WANDB_RESUME" not in os.environ  # the next stage sets its own
    assert os.environ["WANDB_PROJECT"] == "mine"
    assert fake.calls == ["finish", "teardown"]  # wandb reads its environment again for the next run


def test_a_tracker_that_cannot_end_its_run_is_a_warning_and_training_stops_as_it_would(monkeypatch, caplog):
    fake = FakeTracker(fail=True)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with pytest.raises(KeyboardInterrupt), caplog.at_level(logging.WARNING):
        with tracking(["wandb"], "demo", TrackerRun("sft-abc", 1)):
            raise KeyboardInterrupt  # a stop inside training still ends the tracker's run
    assert fake.calls == ["finish(1)", "teardown"]  # failed, not finished
    assert "could not end the tracker's run (finish): no network" in caplog.text


def test_a_tracker_whose_finish_takes_no_exit_code_is_still_ended(monkeypatch):
    fake = types.ModuleType("swanlab")
    fake.calls = []
    fake.finish = lambda: fake.calls.append("finish")
    monkeypatch.setitem(sys.modules, "swanlab", fake)
    with tracking(["swanlab"], "demo", TrackerRun("grpo-abc", 1)) as ending:
        ending.exit_code, ending.preempted = 143, True
    assert fake.calls == ["finish"]


def test_a_preempted_tracker_run_is_marked_so_and_ended_with_the_commands_exit_code(monkeypatch):
    fake = FakeTracker()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with tracking(["wandb"], "demo", TrackerRun("grpo-abc", 1)) as ending:
        ending.exit_code, ending.preempted = 143, True
    assert fake.calls == ["mark_preempting", "finish(143)", "teardown"]  # resumable, not finished


@pytest.mark.parametrize(("max_steps", "ending"), [(4, TrackerEnding(143, preempted=True)), (1, TrackerEnding())])
def test_a_preempted_stage_is_not_a_finished_run_in_the_tracker(
    recipe_dict, write_recipe, monkeypatch, max_steps, ending
):
    """A stage stopped by SIGTERM with a checkpoint to resume from ended its tracker run as finished (exit code 0),
    so dashboards and sweep agents took it for complete; it now ends as preempted, with the command's exit code.
    A signal in the last step lets the stage finish: its run is finished."""
    import signal

    from transformers import TrainerCallback
    from typer.testing import CliRunner

    from recipe_cli import pipeline, trackers, training
    from recipe_cli.cli import app

    class Preempt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # taken by the stage's handler: it saves after the next step

    endings = []
    for module in (pipeline, training):  # the stage reports to a tracker (transformers' own callback is not needed)
        monkeypatch.setattr(module, "active_trackers", lambda report_to: ["wandb"])
    monkeypatch.setattr(trackers, "_end_open_runs", lambda names, ending: endings.append((names, ending)))
    monkeypatch.setattr(pipeline, "_stage_callbacks", lambda recipe: [Preempt()])
    del recipe_dict["eval"]
    recipe_dict["sft"]["trainer"]["max_steps"] = max_steps
    result = CliRunner().invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 143, result.output
    assert endings == [(["wandb"], ending)]


@pytest.fixture
def tracked_recipe(recipe_dict, monkeypatch):
    """The tiny recipe with GRPO reporting to wandb (counted as installed: only its name is checked here)."""
    monkeypatch.setattr("recipe_cli.trackers.is_installed", lambda module: True)
    recipe_dict["grpo"]["trainer"]["report_to"] = ["wandb"]
    return validate_recipe(recipe_dict)


def test_the_run_record_keeps_the_tracker_run_that_a_resume_continues(tracked_recipe):
    from recipe_cli.pipeline import _tracker_run

    run = RunFolder(tracked_recipe)
    assert _tracker_run(tracked_recipe, run, StageStart("sft")) is None  # SFT reports to no tracker
    first = _tracker_run(tracked_recipe, run, StageStart("grpo"))
    assert first.attempt == 1
    run.record_training("grpo", None, tracker=first)
    checkpoint = Path(run.stage_dir("grpo")) / "checkpoint-2"
    assert _tracker_run(tracked_recipe, run, StageStart("grpo", checkpoint=checkpoint)) == first
    again = _tracker_run(tracked_recipe, run, StageStart("grpo", clear=True))
    assert again.id != first.id and again.attempt == 2


def test_an_attempt_after_the_first_is_named_apart_unless_the_recipe_names_the_run(tracked_recipe):
    from recipe_cli.training import _tracking

    args = types.SimpleNamespace(report_to=["wandb"], project="tiny", run_name="tiny-grpo")
    with _tracking(args, tracked_recipe, "grpo", TrackerRun("grpo-abc", 3)):
        assert args.run_name == "tiny-grpo-3"
    named = tracked_recipe.model_copy(deep=True)
    named.grpo.trainer["run_name"] = "my-run"
    args.run_name = "my-run"
    with _tracking(args, named, "grpo", TrackerRun("grpo-abc", 3)):
        assert args.run_name == "my-run"
    args = types.SimpleNamespace(report_to=[], project="tiny", run_name="tiny-grpo")
    with _tracking(args, tracked_recipe, "grpo", TrackerRun("grpo-abc", 3)):  # no tracker on: nothing changes
        assert args.run_name == "tiny-grpo"
