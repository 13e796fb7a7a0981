"""scripts/install.sh on a machine without torch or a GPU: the CPU build of torch, not PyPI's CUDA one."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import REPO

# A python without torch whose pip only records what it was asked; anything else runs the real interpreter.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-c" ] && [ "$2" = "import torch" ]; then exit 1; fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then shift 2; echo "pip $*" >> "$PIP_LOG"; exit 0; fi
exec {python} "$@"
"""


@pytest.fixture
def machine(tmp_path):
    """A PATH whose nvidia-smi finds no GPU, and the fake python; returns a function running install.sh there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (bin_dir / "python").write_text(FAKE_PYTHON.format(python=sys.executable))
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "pip.log"

    def install(**env: str) -> tuple[str, list[str]]:
        environment = {k: v for k, v in os.environ.items() if k != "TORCH_PIP_ARGS"}
        environment.update(PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON=str(bin_dir / "python"), PIP_LOG=str(log))
        environment.update(env)
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "install.sh")], env=environment, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout, log.read_text().splitlines()

    return install


@pytest.fixture
def cpu_index(tmp_path):
    """A local stand-in for PyTorch's CPU index that answers for torch."""
    (tmp_path / "index" / "torch").mkdir(parents=True)
    (tmp_path / "index" / "torch" / "index.html").write_text("<html></html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "index"), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_no_gpu_installs_torch_from_the_cpu_index(machine, cpu_index):
    _, pip = machine(TORCH_CPU_INDEX=cpu_index)
    assert pip[0] == f"pip install --index-url {cpu_index} torch==2.13.0"
    assert pip[1] == "pip install -c constraints.txt -e .[dev]"


def test_an_unreachable_cpu_index_falls_back_to_pips_own_index_and_says_so(machine):
    out, pip = machine(TORCH_CPU_INDEX="http://127.0.0.1:9/whl/cpu")  # the discard port: nothing listens
    assert pip[0] == "pip install torch==2.13.0"
    assert "does not answer" in out and "set TORCH_PIP_ARGS" in out


def test_torch_pip_args_choose_the_index(machine, cpu_index):
    _, pip = machine(TORCH_CPU_INDEX=cpu_index, TORCH_PIP_ARGS="--index-url http://mirror/simple")
    assert pip[0] == "pip install --index-url http://mirror/simple torch==2.13.0"
    assert Path(REPO / "scripts" / "install.sh").stat().st_mode & 0o111  # the Makefile runs it directly
