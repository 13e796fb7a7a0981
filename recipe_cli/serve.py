"""TRL's vLLM server for GRPO in server mode (``grpo.trainer.vllm_mode: server``), started from the recipe.

GRPO's training processes send their weights to the server after every optimizer step and ask it
for completions; the server only has to start from a model with the same architecture and
tokenizer. ``recipe serve`` starts it with GRPO's starting model: the SFT checkpoint when the recipe
has SFT (its base when SFT trained a LoRA adapter, as TRL sends merged weights), else the base model.
"""

from __future__ import annotations

import sys

from recipe_cli.config import Recipe
from recipe_cli.errors import RecipeError
from recipe_cli.models import adapter_base, is_adapter, model_revision
from recipe_cli.precision import Machine, requested_dtype
from recipe_cli.runs import RunFolder


def served_model(recipe: Recipe) -> str:
    """The model the server starts from: GRPO's starting point, full weights."""
    if recipe.grpo is None:
        raise RecipeError("the recipe has no `grpo:` section; the vLLM server generates GRPO's completions")
    origin = RunFolder(recipe).start_of("grpo")
    return adapter_base(origin) if is_adapter(origin) else origin


def serve_command(recipe: Recipe, machine: Machine | None = None) -> list[str]:
    """``trl vllm-serve`` with the recipe's server settings and the model GRPO starts from."""
    server = recipe.launch.vllm_server
    model = served_model(recipe)
    dtype = requested_dtype(recipe.model.dtype, machine or Machine(gpu=True))  # the compute dtype on the GPU
    command = [sys.executable, "-m", "trl.cli.main", "vllm-serve", "--model", model]
    revision = model_revision(model, recipe.model)
    if revision:
        command += ["--revision", revision]
    command += [
        "--tensor_parallel_size",
        str(server.tensor_parallel_size),
        "--data_parallel_size",
        str(server.data_parallel_size),
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--gpu_memory_utilization",
        str(server.gpu_memory_utilization),
        "--dtype",
        dtype,
    ]
    if server.max_model_len:
        command += ["--max_model_len", str(server.max_model_len)]
    if recipe.model.trust_remote_code:
        command += ["--trust_remote_code"]
    return command


def check_server_machine(machine: Machine) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise RecipeError("vLLM is not installed here; `pip install vllm` on a machine with an NVIDIA GPU")
    if not machine.gpu:
        raise RecipeError("the vLLM server needs a CUDA GPU and none is visible")
