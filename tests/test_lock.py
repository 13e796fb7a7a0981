"""One writer per run folder: a second command on the same run stops at once, naming the first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.errors import RecipeError
from recipe_cli.lock import RunLock
from recipe_cli.preemption import STEP_PAUSE_ENV

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def start_sft(path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), STEP_PAUSE_ENV: "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "recipe_cli", "sft", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.3)


@pytest.mark.slow
def test_a_second_writer_is_refused_and_overwrite_spares_a_live_run(recipe_dict, tmp_path):
    recipe_dict["sft"]["trainer"]["max_steps"] = 30
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    first = start_sft(path)
    run_dir = tmp_path / "runs" / "tiny"
    try:
        wait_for(run_dir / "run.json")  # training
        for args in (["sft", path], ["sft", path, "--overwrite"], ["run", path], ["eval", path]):
            result = runner.invoke(app, [str(a) for a in args])
            assert result.exit_code == 2, result.output
            assert f"is in use by pid {first.pid} (recipe sft {path})" in result.stderr, result.stderr
        assert (run_dir / "sft").is_dir()  # --overwrite deleted nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the holder died without cleaning up: its lock went with it
    result = runner.invoke(app, ["sft", str(path), "--overwrite", "--set", "sft.trainer.max_steps=1"])
    assert result.exit_code == 0, result.output


def test_the_lock_names_its_holder_and_goes_with_an_empty_folder(tmp_path):
    from recipe_cli.errors import RecipeError

    run_dir = tmp_path / "runs" / "x"
    with RunLock(run_dir, "recipe eval r.yaml"):
        assert (run_dir / ".lock").read_text() == f"pid {os.getpid()} (recipe eval r.yaml)\n"
        with pytest.raises(RecipeError, match=f"in use by pid {os.getpid()} \\(recipe eval r.yaml\\)"):
            with RunLock(run_dir, "recipe sft r.yaml"):
                pass
    assert not (tmp_path / "runs").exists()  # created by the lock, nothing written: removed
    run_dir.mkdir(parents=True)
    (run_dir / "kept.txt").write_text("x")
    with RunLock(run_dir, "recipe push r.yaml"):
        pass
    assert (run_dir / "kept.txt").is_file() and (run_dir / ".lock").is_file()


def test_an_unwritable_runs_dir_is_one_line(recipe_dict, write_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    recipe_dict["runs_dir"] = str(blocker / "runs")
    result = runner.invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 2
    assert "runs_dir" in result.stderr and "is a file, not a folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert runner.invoke(app, ["validate", str(write_recipe(recipe_dict))]).exit_code == 2


def test_a_lock_file_that_cannot_be_opened_is_one_line(recipe_dict, write_recipe, tmp_path):
    (tmp_path / "runs" / "tiny" / ".lock").mkdir(parents=True)  # stops root too, unlike a folder's mode
    result = runner.invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open the run's lock file" in lines[0], result.stderr
    assert f"make {tmp_path / 'runs' / 'tiny'} writable" in lines[0] and "runs_dir" in lines[0]
    assert sorted(p.name for p in (tmp_path / "runs" / "tiny").iterdir()) == [".lock"]


@pytest.mark.skipif(os.geteuid() == 0, reason="the folder's mode does not stop root")
def test_a_run_folder_that_is_not_writable_is_one_line(recipe_dict, write_recipe, tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    run_dir.chmod(0o500)
    try:
        result = runner.invoke(app, ["sft", str(write_recipe(recipe_dict))])
    finally:
        run_dir.chmod(0o700)
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "cannot open the run's lock file" in result.stderr and "Permission denied" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_eval_decides_what_it_replaces_under_the_lock(recipe_dict, write_recipe, tmp_path):
    """The check that refuses to replace another folder's results reads eval/ only once the run is its own."""
    run_dir = tmp_path / "runs" / "tiny"
    (run_dir / "base").mkdir(parents=True)
    (run_dir / "base" / "config.json").write_text("{}")
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "base.json").write_text('{"model": "/another/model"}')
    path = write_recipe(recipe_dict)
    with RunLock(run_dir, "recipe eval other.yaml"):  # e.g. an eval that may still replace base.json
        result = runner.invoke(app, ["eval", str(path)])
    assert result.exit_code == 2, result.output
    assert f"in use by pid {os.getpid()} (recipe eval other.yaml)" in result.stderr, result.stderr
    result = runner.invoke(app, ["eval", str(path)])
    assert result.exit_code == 2 and "holds the evaluation of /another/model" in result.stderr, result.stderr


LAUNCH_THEN_DIE = """
import subprocess, sys
from pathlib import Path

import yaml

from recipe_cli import launch
from recipe_cli.config import validate_recipe
from recipe_cli.lock import RunLock

recipe = validate_recipe(yaml.safe_load(Path(sys.argv[1]).read_text()))
real = subprocess.Popen
# the launcher, which lives as long as the ranks it started
launch.subprocess.Popen = lambda command, **kw: real([sys.executable, "-c", "import time; time.sleep(60)"], **kw)
with RunLock(recipe.run_dir, "recipe sft") as lock:
    launch.relaunch(recipe, ["sft"], lock)
"""


def test_ranks_keep_the_run_locked_when_their_parent_is_killed(recipe_dict, tmp_path):
    """SIGKILL of the ``recipe`` process leaves the launcher and its ranks training in their own session: the lock
    must stay until they end, or ``--overwrite`` deletes the folder they write."""
    recipe_dict["launch"] = {"num_processes": 2}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict))
    lock_file = tmp_path / "runs" / "tiny" / ".lock"
    parent = subprocess.Popen([sys.executable, "-c", LAUNCH_THEN_DIE, str(path)], cwd=REPO, env={**os.environ})
    deadline = time.monotonic() + 60
    while "launcher" not in (lock_file.read_text() if lock_file.is_file() else ""):
        assert parent.poll() is None and time.monotonic() < deadline, "the launcher never started"
        time.sleep(0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    launcher = int(lock_file.read_text().split()[-1])
    try:
        with pytest.raises(
            RecipeError, match=f"in use by pid {parent.pid} .* the launcher of its ranks, pid {launcher}"
        ):
            with RunLock(lock_file.parent, "recipe sft --overwrite"):
                pass
    finally:
        os.kill(launcher, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{launcher}").exists() and "zombie" not in Path(f"/proc/{launcher}/status").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with RunLock(lock_file.parent, "recipe sft --overwrite"):  # the ranks ended: the lock went with them
        pass
