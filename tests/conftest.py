"""Shared fixtures: tiny recipes written to a temporary folder, run folders kept out of the checkout."""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

# Tiny models train several times faster on one thread than on two on a shared 2-core machine
# (OpenMP threads wait for each other on matrices this small): 0.8 s instead of 5.5 s for 12 SFT
# steps. The environment variable carries it to the training processes the tests start.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parent.parent
GSM8K_DIR = REPO.parent / "shared" / "data" / "gsm8k"

# A recipe small enough to train in seconds: 2-layer model, a few steps per stage.
TINY_RECIPE = {
    "name": "tiny",
    "seed": 7,
    "model": {"tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "vocab_size": 400, "max_length": 256}},
    "prompt": {"system": "Think in <think> </think>, answer in <answer> </answer>.", "user": "{question}"},
    "sft": {
        "dataset": {"adapter": "arithmetic", "split": "train", "max_samples": 32},
        "trainer": {"max_steps": 4, "per_device_train_batch_size": 8, "learning_rate": 1.0e-3, "save_strategy": "no"},
    },
    "grpo": {
        "dataset": {"adapter": "arithmetic", "split": "train", "max_samples": 32},
        "rewards": [
            {"name": "accuracy"},
            {"name": "format", "weight": 0.5},
            {"name": f"{Path(__file__).parent / 'shaping_rewards.py'}:closeness_to_length", "params": {"target": 10}},
        ],
        "trainer": {
            "max_steps": 2,
            "per_device_train_batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 16,
            "learning_rate": 1.0e-3,
            "save_strategy": "no",
        },
    },
    "eval": {"dataset": {"adapter": "arithmetic", "split": "test", "max_samples": 8}, "max_new_tokens": 16},
}


@pytest.fixture(autouse=True)
def hub_mode_of_the_test(monkeypatch):
    """Each test gets the Hub settings it asks for, not the shell's: users without a network set HF_HUB_OFFLINE=1,
    and the tests that talk to the fake Hub must still reach it. Nothing here ever reaches the real Hub."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)


@pytest.fixture
def recipe_dict(tmp_path) -> dict:
    """A fresh copy of the tiny recipe whose run folder lives in the test's temporary folder."""
    data = copy.deepcopy(TINY_RECIPE)
    data["runs_dir"] = str(tmp_path / "runs")
    return data


@pytest.fixture
def write_recipe(tmp_path):
    """Write a recipe mapping (or raw text) to a YAML file and return its path."""

    def write(data, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def fake_hub(monkeypatch):
    """A fake Hub that huggingface_hub talks to (plain LFS, no Xet), a valid token, and short retry delays."""
    from recipe_cli import hub
    from tests.fake_hub import FakeHub

    server = FakeHub(lfs_threshold=1024).start()
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", server.url)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", server.token)
    monkeypatch.setattr(hub, "RETRY_DELAYS", (0.01, 0.02, 0.04))
    yield server
    server.stop()


@pytest.fixture
def load_script(monkeypatch):
    """Load a script of scripts/ as a module, registered in sys.modules for the test (dataclasses look it up)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load
