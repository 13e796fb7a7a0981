"""How much disk a training stage writes (its ``checkpoint-N`` folders and its final model) against what is free.

A disk that fills at the third checkpoint of a long run stops it in the middle of a save, and the
run loses every step since the checkpoint before. A checkpoint holds the weights in the checkpoint
dtype (the adapter alone under LoRA) and the optimizer state: AdamW's two float32 moments per
trainable parameter, and under DeepSpeed the float32 master weights too, so a full fine-tune's
checkpoint is about three times its weights (Qwen2.5-7B: about 91 GB). ``--dry-run`` shows the
sizes, and a stage that starts training warns when the disk cannot hold them.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from recipe_cli.precision import DTYPE_BYTES, PrecisionPlan

ADAM_MOMENT_BYTES = 8  # optimizer.pt: AdamW's two float32 moments per trainable parameter
DEEPSPEED_MASTER_BYTES = 4  # DeepSpeed's optimizer state also holds the float32 master weights


@dataclass(frozen=True)
class DiskPlan:
    """A stage's largest footprint on disk, in bytes: the checkpoints kept at once (the one being written
    included) and the final model."""

    stage: str
    weights: int  # of one checkpoint
    optimizer: int  # of one checkpoint
    checkpoints: int  # on disk at once, at most
    final: int

    @property
    def checkpoint(self) -> int:
        return self.weights + self.optimizer

    @property
    def total(self) -> int:
        return self.checkpoint * self.checkpoints + self.final


def checkpoints_at_once(
    save_strategy: str, save_steps: float, save_total_limit: int | None, max_steps: int, epochs: float
) -> int:
    """How many ``checkpoint-N`` folders a stage has on disk at once, at most; ``epochs``: the epochs its
    ``max_steps`` reach into (``max_steps`` wins over ``num_train_epochs``).

    transformers writes a checkpoint every ``save_steps`` (a fraction below 1 is a share of
    ``max_steps``) and at the last step (``DefaultFlowCallback``), or at the end of every epoch,
    and deletes the oldest beyond ``save_total_limit`` only once the new one is written; none are
    written with ``save_strategy: no`` (a stop on a signal still writes one).

    >>> checkpoints_at_once("steps", 100, 2, 500, 1), checkpoints_at_once("steps", 100, None, 500, 1)
    (3, 5)
    >>> checkpoints_at_once("steps", 100, None, 550, 1), checkpoints_at_once("steps", 500, 2, 120, 1)
    (6, 1)
    >>> checkpoints_at_once("steps", 0.25, 2, 500, 1), checkpoints_at_once("epoch", 500, None, 900, 2.5)
    (3, 3)
    >>> checkpoints_at_once("no", 500, None, 500, 1)
    1
    """
    if save_strategy == "no":
        return 1
    if save_strategy == "epoch":
        written = math.ceil(epochs)
    else:
        every = math.ceil(max_steps * save_steps) if save_steps < 1 else int(save_steps)
        written = math.ceil(max_steps / every) if every > 0 else min(max_steps, 1)
    if save_total_limit is None or written <= save_total_limit:
        return written
    return save_total_limit + 1


def plan_disk(
    stage: str,
    params: int,
    trainable: int,
    precision: PrecisionPlan,
    *,
    lora: bool,
    deepspeed: bool,
    checkpoints: int,
) -> DiskPlan:
    """The bytes a stage writes: full weights, or the adapter alone under LoRA, in the checkpoint and final dtypes.

    >>> from recipe_cli.precision import Machine, plan_precision
    >>> gpu = plan_precision("bfloat16", lora=False, machine=Machine(gpu=True))
    >>> plan = plan_disk("sft", 494_000_000, 494_000_000, gpu, lora=False, deepspeed=False, checkpoints=3)
    >>> round(plan.checkpoint / 1e9, 1), round(plan.total / 1e9, 1)
    (5.9, 19.8)
    """
    weights, final = (
        (trainable * DTYPE_BYTES[precision.master], trainable * DTYPE_BYTES[precision.master])
        if lora
        else (params * DTYPE_BYTES[precision.resume], params * DTYPE_BYTES[precision.saved])
    )
    optimizer = trainable * (ADAM_MOMENT_BYTES + (DEEPSPEED_MASTER_BYTES if deepspeed else 0))
    return DiskPlan(stage, weights, optimizer, checkpoints, final)


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path``, or would once it is made."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def written_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (what an earlier attempt left there: a resume keeps its checkpoints)."""
    if not folder.is_dir():
        return 0
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file() and not file.is_symlink())


def trainer_disk_plan(stage: str, model, args, max_steps: int, epochs: float, *, deepspeed: bool) -> DiskPlan:
    """What a built trainer will write: its model's weights as they are held (float32 masters, or the trainable
    adapter alone), the optimizer state of its trainable parameters, as many checkpoints as its settings keep
    over ``max_steps`` and ``epochs`` (the trainer state's, as training computed them)."""
    from peft import PeftModel

    def count(parameter) -> int:  # ZeRO-3 leaves a placeholder of size 0 and keeps the real size aside
        return getattr(parameter, "ds_numel", parameter.numel())

    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    saved = trainable if isinstance(model, PeftModel) else parameters
    weights = sum(count(p) * p.element_size() for p in saved)
    optimizer = sum(count(p) for p in trainable) * (ADAM_MOMENT_BYTES + (DEEPSPEED_MASTER_BYTES if deepspeed else 0))
    strategy = getattr(args.save_strategy, "value", args.save_strategy)
    kept = checkpoints_at_once(strategy, args.save_steps, args.save_total_limit, max_steps, epochs)
    return DiskPlan(stage, weights, optimizer, kept, weights)


def disk_shortfall(what: str, needed: int, folder: Path) -> str | None:
    """A warning when the disk under ``folder`` cannot take the ``needed`` bytes ``what`` still writes, else None."""
    from recipe_cli.plan import format_bytes

    free = free_bytes(folder)
    if needed <= free:
        return None
    return (
        f"{what}: up to {format_bytes(needed)} more to write in {folder}, {format_bytes(free)} free there; the save "
        "that fills the disk fails and the steps since the last checkpoint are lost: free space, lower "
        "save_total_limit, or set runs_dir to a larger disk"
    )
