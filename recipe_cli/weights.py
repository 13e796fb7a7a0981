"""A checkpoint's weight files: the dtype they hold, and copies in another dtype for publishing.

Checkpoints keep float32 master weights (``recipe_cli.precision``), so that no update is lost
between stages and on ``--resume``; ``recipe push`` publishes the compute dtype by default, half
the size for a bf16 recipe. Only floating-point tensors change dtype; integer buffers stay.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)

SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
CONFIG_FILES = ("config.json",)  # transformers writes the weights' dtype there (`dtype`, formerly `torch_dtype`)
INDEX_SUFFIX = ".safetensors.index.json"
MANIFEST = "converted-from.json"


def weight_files(folder: Path) -> list[Path]:
    """The ``*.safetensors`` files at the top of a checkpoint folder, sorted."""
    return sorted(folder.glob("*.safetensors"))


def stored_dtypes(folder: Path) -> set[str]:
    """The dtypes of the floating-point tensors in a checkpoint's safetensors files, read from their headers."""
    from safetensors import safe_open

    found = set()
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    dtype = SAFETENSORS_DTYPES.get(handle.get_slice(name).get_dtype())
                    if dtype is not None:
                        found.add(dtype)
        except Exception as error:  # safetensors raises its own error types for a damaged file
            raise RecipeError(
                f"'{path}' is not a readable safetensors file ({error}); save the checkpoint again"
            ) from error
    return found


def _source_state(folder: Path) -> dict:
    """What identifies the weights a conversion was made from: each file's size and modification time."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in weight_files(folder)}


def convert_checkpoint(folder: Path, dtype: str, target: Path) -> list[Path]:
    """Write copies of ``folder``'s weight files (and its config and index) with floating tensors in ``dtype``.

    Returns the written files, which replace their namesakes in an upload. A conversion already in
    ``target`` from the same source files is reused.
    """
    import torch
    from safetensors.torch import load_file, save_file

    written = [target / p.name for p in weight_files(folder)]
    written += [target / name for name in CONFIG_FILES if (folder / name).is_file()]
    written += [target / p.name for p in folder.glob(f"*{INDEX_SUFFIX}")]
    manifest = {"dtype": dtype, "source": str(folder.resolve()), "files": _source_state(folder)}
    if (target / MANIFEST).is_file() and json.loads((target / MANIFEST).read_text()) == manifest:
        if all(path.is_file() for path in written):
            return written
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    torch_dtype = getattr(torch, dtype)
    total = 0
    for path in weight_files(folder):
        tensors = load_file(str(path))
        converted = {
            name: tensor.to(torch_dtype) if tensor.is_floating_point() else tensor for name, tensor in tensors.items()
        }
        total += sum(t.numel() * t.element_size() for t in converted.values())
        save_file(converted, str(target / path.name), metadata={"format": "pt"})
        del tensors, converted
    for name in CONFIG_FILES:
        if (folder / name).is_file():
            config = json.loads((folder / name).read_text())
            for key in ("dtype", "torch_dtype"):
                if key in config:
                    config[key] = dtype
            (target / name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for index in folder.glob(f"*{INDEX_SUFFIX}"):
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = total
        (target / index.name).write_text(json.dumps(data, indent=2) + "\n")
    (target / MANIFEST).write_text(json.dumps(manifest) + "\n")
    log.info("converted the weights of %s to %s in %s", folder, dtype, target)
    return written
