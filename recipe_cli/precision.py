"""Which dtype each part of a run uses: master weights, compute, checkpoints, the pushed files.

``model.dtype`` names the compute precision, as TRL's defaults mean it: full-weight training keeps
float32 master weights and computes in bf16/fp16 through the trainer's mixed precision. A bf16
weight near 0.02 moves in steps of about 1.2e-4, so AdamW updates of about the learning rate (1e-6
in GRPO, 2e-5 in SFT) round back to the old value: training bf16 weights in place loses most
updates without any sign in the loss (measured on the demo model: 3 SFT steps at lr 1e-6 changed
1.95% of the weights loaded in bf16, 99.997% in float32). LoRA keeps its frozen base in the compute
dtype and its adapter in float32 (peft's default), which is what QLoRA-style recipes rely on.

Nothing here imports torch: ``recipe validate`` prints the plan in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
MIXED_PRECISION = {"bfloat16": "bf16", "float16": "fp16"}  # the TrainingArguments flag for each compute dtype


@dataclass(frozen=True)
class Machine:
    """What the precision plan depends on: whether a CUDA GPU is visible and whether it computes in bf16."""

    gpu: bool
    bf16: bool = True

    @classmethod
    def here(cls) -> Machine:
        import torch

        gpu = torch.cuda.is_available()
        # by default torch counts emulated bf16 (Volta, Turing: V100, T4) as supported; auto then picks float32
        return cls(gpu=gpu, bf16=gpu and torch.cuda.is_bf16_supported(including_emulation=False))


@dataclass(frozen=True)
class PrecisionPlan:
    """The dtypes of one run on one machine.

    ``master``: the weights the optimizer updates (full weights, or the LoRA adapter);
    ``base``: the frozen base under a LoRA adapter (``master`` without LoRA);
    ``compute``: what the forward and backward passes multiply in;
    ``saved``: the stage's final model, read by the next stage, the eval and ``push``;
    ``resume``: the state of its ``checkpoint-N`` folders that ``--resume`` continues from;
    ``generation``: evaluation and sampling; ``pushed``: the files ``recipe push`` publishes;
    ``mixed_precision``: the trainer flag that casts to ``compute`` (``bf16``, ``fp16`` or None).
    """

    requested: str
    master: str
    base: str
    compute: str
    saved: str
    resume: str
    generation: str
    pushed: str
    mixed_precision: str | None
    note: str | None = None

    def record(self) -> dict[str, str]:
        """What ``run.json`` keeps of the plan a stage trained with (``push`` publishes ``model_dtype``)."""
        return {
            "model_dtype": self.requested,
            "master": self.master,
            "base": self.base,
            "compute": self.compute,
            "saved": self.saved,
            "resume": self.resume,
        }

    def describe(self, lora: bool) -> str:
        """One line for ``validate`` and ``--dry-run``.

        >>> plan_precision("bfloat16", lora=False, machine=Machine(gpu=True)).describe(lora=False)
        'master float32, compute bfloat16 (bf16 mixed precision), checkpoints float32, eval bfloat16, pushed bfloat16'
        """
        master = f"adapter {self.master}, base {self.base}" if lora else f"master {self.master}"
        mixed = f" ({self.mixed_precision} mixed precision)" if self.mixed_precision else ""
        saved = f"checkpoints {self.saved}"
        if self.resume != self.saved:
            saved = f"saved model {self.saved}, resume checkpoints {self.resume}"
        return f"{master}, compute {self.compute}{mixed}, {saved}, eval {self.generation}, pushed {self.pushed}"


def requested_dtype(name: str, machine: Machine) -> str:
    """``model.dtype`` with ``auto`` resolved: bfloat16 on a GPU that computes in it, else float32.

    >>> requested_dtype("auto", Machine(gpu=True)), requested_dtype("auto", Machine(gpu=False))
    ('bfloat16', 'float32')
    >>> requested_dtype("float16", Machine(gpu=False))
    'float16'
    """
    if name != "auto":
        return name
    return "bfloat16" if machine.gpu and machine.bf16 else "float32"


def plan_precision(
    dtype: str, *, lora: bool, machine: Machine, push_dtype: str = "auto", saves_16bit: bool = False
) -> PrecisionPlan:
    """The precision plan for ``model.dtype`` (``dtype``) on ``machine``.

    Full weights: float32 master weights always; the requested dtype is the compute precision
    through the trainer's mixed precision on a GPU. Without a GPU the trainer has no mixed
    precision, so full-weight training computes in float32 (correct, only slower). LoRA: the frozen
    base in the requested dtype, the adapter in float32. ``saves_16bit``: DeepSpeed computes with
    16-bit copies of the weights and keeps the float32 masters in its optimizer state, so it saves
    each stage's model in the compute dtype; its resume checkpoints keep the float32 master weights
    (the DeepSpeed ``global_step*`` folders).

    >>> p = plan_precision("bfloat16", lora=False, machine=Machine(gpu=True))
    >>> p.master, p.compute, p.saved, p.pushed, p.mixed_precision
    ('float32', 'bfloat16', 'float32', 'bfloat16', 'bf16')
    >>> p = plan_precision("bfloat16", lora=False, machine=Machine(gpu=False))
    >>> p.master, p.compute, p.mixed_precision, p.generation
    ('float32', 'float32', None, 'bfloat16')
    >>> p = plan_precision("bfloat16", lora=True, machine=Machine(gpu=True), push_dtype="float32")
    >>> p.master, p.base, p.compute, p.pushed
    ('float32', 'bfloat16', 'bfloat16', 'float32')
    >>> p = plan_precision("bfloat16", lora=False, machine=Machine(gpu=True), saves_16bit=True)
    >>> p.master, p.saved, p.resume
    ('float32', 'bfloat16', 'float32')
    """
    requested = requested_dtype(dtype, machine)
    mixed = MIXED_PRECISION.get(requested) if machine.gpu else None
    note = None
    if requested == "bfloat16" and machine.gpu and not machine.bf16:
        note = (
            "this GPU has no bfloat16 units (compute capability below 8.0: T4, V100): torch emulates bfloat16, "
            "without float16's tensor-core speed or flash attention; set model.dtype: float16 or float32"
        )
    if lora:
        base, compute = requested, requested
    else:
        base = "float32"
        compute = requested if mixed else "float32"
        if requested != "float32" and not machine.gpu:
            flag = MIXED_PRECISION[requested]
            note = f"no GPU here: {flag} mixed precision needs one, so training computes in float32"
    saved = compute if saves_16bit else "float32"
    if saved != "float32":
        deepspeed = (
            f"DeepSpeed saves each stage's model in {saved}, the copy it computes with, so the next stage, the eval "
            f"and push start from {saved} weights; resume checkpoints keep the float32 master weights"
        )
        note = f"{note}; {deepspeed}" if note else deepspeed
    return PrecisionPlan(
        requested=requested,
        master="float32",
        base=base,
        compute=compute,
        saved=saved,
        resume="float32",
        generation=requested,
        pushed=requested if push_dtype == "auto" else push_dtype,
        mixed_precision=mixed,
        note=note,
    )


def describe_recipe_precision(
    dtype: str, *, lora: bool, push_dtype: str = "auto", saves_16bit: bool = False
) -> tuple[str, str | None]:
    """The plan on a GPU and, where it differs, without one, and the GPU plan's note: what ``recipe validate``
    prints (no torch needed).

    >>> describe_recipe_precision("bfloat16", lora=False)  # doctest: +NORMALIZE_WHITESPACE
    ('master float32, compute bfloat16 (bf16 mixed precision), checkpoints float32, eval bfloat16, pushed bfloat16
     on a GPU; compute float32 without one', None)
    >>> describe_recipe_precision("float32", lora=False)
    ('master float32, compute float32, checkpoints float32, eval float32, pushed float32', None)
    """
    on_gpu = plan_precision(dtype, lora=lora, machine=Machine(gpu=True), push_dtype=push_dtype, saves_16bit=saves_16bit)
    on_cpu = plan_precision(dtype, lora=lora, machine=Machine(gpu=False), push_dtype=push_dtype)
    text = on_gpu.describe(lora)
    if (on_cpu.compute, on_cpu.pushed) == (on_gpu.compute, on_gpu.pushed):
        return text, on_gpu.note
    differs = [f"compute {on_cpu.compute}"] if on_cpu.compute != on_gpu.compute else []
    differs += [f"pushed {on_cpu.pushed}"] if on_cpu.pushed != on_gpu.pushed else []
    return f"{text} on a GPU; {', '.join(differs)} without one", on_gpu.note
