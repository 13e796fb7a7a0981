"""GRPO and SFT steps of the real recipe on one GPU, at Qwen2.5-0.5B's size: the speed-ups side by side.

Each variant is `recipe grpo` or `recipe sft` of `recipes/gsm8k.yaml` in a process of its own,
on the same randomly initialised model of Qwen2.5-0.5B's architecture (built here, as
`scripts/check_real_size.py` builds it; or `--model`), GSM8K prompts and OpenThoughts-format
traces written from GSM8K's solutions, with overrides that only shrink the run (few steps,
shorter completions, no checkpoints). A random model never ends a completion early, so every
completion is `--completion-tokens` long: the generation batch is full to the last token.

    grpo                transformers generation, as recipes/gsm8k.yaml ships (the baseline)
    grpo-liger          use_liger_kernel: Liger's RMSNorm, SwiGLU and RoPE kernels (needs liger-kernel)
    grpo-generation-x2  steps_per_generation: one generation of 128 completions serves two steps
    grpo-vllm           use_vllm: true, vllm_mode colocate, 30% of the GPU for vLLM (needs vllm)
    sft-padded          SFT batches padded to their longest trace
    sft-padding-free    padding_free: true: the batch's traces in one row, no padding tokens
    grpo-compile        torch_compile: true (compile time counts in the first step)

Printed per variant: seconds per step (the median of the steps after the first, which carries
compilation and warm-up; over whole generation cycles for grpo-generation-x2; SFT: the whole run
over its steps), completion tokens per second
during generation against the memory-bandwidth bound (each decoding step reads every weight in
its stored dtype and the KV cache once for the whole batch; the bandwidth is measured here with a
device-to-device copy), the generation share of the step, the peak GPU memory the run logged
(`memory/peak_gpu_gib`) and, for each stage's baseline, `--dry-run`'s estimate beside it. A
variant whose package is missing is listed as skipped, with the reason. Results go to `--output`
as JSON after every variant, so a run stopped early keeps what it measured.

    python scripts/bench_gpu.py                          # all variants, ~7-9 minutes on one H100 (estimated)
    python scripts/bench_gpu.py --variants grpo,grpo-compile --steps 5
    python scripts/bench_gpu.py --tiny                   # a 2-layer model on CPU: checks the script (~1 minute)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_real_size import (  # noqa: E402  (the model, tokenizer and data the real-size check builds)
    GSM8K,
    QWEN25_05B,
    REPO,
    build_model,
    build_tokenizer,
    dry_run_total,
    recipe_command,
    write_openthoughts_file,
)

TINY_SHAPE = {  # --tiny: Qwen2's architecture at a size that trains in seconds on CPU
    **QWEN25_05B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 8192,
}


class Variant(NamedTuple):
    stage: str
    overrides: dict[str, str]
    package: str | None = None  # the module it needs
    cycle: int = 1  # optimizer steps served by one generation
    gpu_only: bool = False  # Triton or vLLM kernels: nothing to measure on CPU


VARIANTS = {
    "grpo": Variant("grpo", {}),
    "grpo-liger": Variant("grpo", {"grpo.trainer.use_liger_kernel": "true"}, "liger_kernel", gpu_only=True),
    # one generation of twice the batch serves two optimizer steps (steps_per_generation = 2 x accumulation)
    "grpo-generation-x2": Variant("grpo", {}, cycle=2),
    "grpo-vllm": Variant(
        "grpo",
        {
            "grpo.trainer.use_vllm": "true",
            "grpo.trainer.vllm_mode": "colocate",
            "grpo.trainer.vllm_gpu_memory_utilization": "0.3",
        },
        "vllm",
        gpu_only=True,
    ),
    "sft-padded": Variant("sft", {"sft.trainer.padding_free": "false"}),
    # TRL does not cut a padding-free batch to max_length: the traces are already bounded by max_completion_tokens
    "sft-padding-free": Variant("sft", {"sft.trainer.padding_free": "true", "sft.trainer.max_length": "null"}),
    "grpo-compile": Variant("grpo", {"grpo.trainer.torch_compile": "true"}),  # last: the longest, the least sure
}
TINY_VARIANTS = ["grpo", "sft-padded", "sft-padding-free"]
BASELINES = {"grpo": "grpo", "sft": "sft-padded"}  # each stage's variant as recipes/gsm8k.yaml ships it
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def shrink(args: argparse.Namespace, work: Path, model: Path, sft_file: Path) -> dict[str, object]:
    """Overrides of recipes/gsm8k.yaml that point it at the files built here and cut the run to a few steps."""
    tiny = args.tiny
    return {
        "runs_dir": str(work / "runs"),
        "model.path": str(model),
        "sft.dataset.path": str(sft_file),
        "sft.dataset.adapter": "openthoughts",
        "sft.dataset.max_samples": 256,
        "sft.trainer.max_steps": args.steps,
        "sft.trainer.per_device_train_batch_size": 4 if tiny else 8,
        "sft.trainer.gradient_accumulation_steps": 1,
        "sft.trainer.max_length": 256 if tiny else 3072,
        "sft.trainer.logging_steps": 1,
        "sft.trainer.save_strategy": '"no"',  # quoted: YAML reads a bare no as false
        "grpo.dataset.path": str(args.gsm8k / "train.jsonl"),
        "grpo.dataset.adapter": "gsm8k",
        "grpo.dataset.max_samples": 256,
        "grpo.trainer.max_steps": args.steps,
        "grpo.trainer.max_completion_length": args.completion_tokens,
        "grpo.trainer.logging_steps": 1,
        "grpo.trainer.save_strategy": '"no"',
        **(
            {  # 8 completions of 2 prompts per step instead of 64 of 8
                "grpo.trainer.per_device_train_batch_size": 4,
                "grpo.trainer.gradient_accumulation_steps": 2,
                "grpo.trainer.num_generations": 4,
            }
            if tiny
            else {}
        ),
        "eval.dataset.path": str(args.gsm8k / "test.jsonl"),  # what GRPO's data is decontaminated against
        "eval.dataset.adapter": "gsm8k",
        "push": "null",
    }


def why_skipped(name: str, cuda: bool) -> str | None:
    package = VARIANTS[name].package
    if VARIANTS[name].gpu_only and not cuda:
        return "needs a GPU"
    if package is not None and importlib.util.find_spec(package) is None:
        return f"{package} is not installed"
    return None


def memory_bandwidth(device: str, gib: float) -> float:
    """Bytes per second a device-to-device copy moves, counting the bytes read and written."""
    import torch

    source = torch.empty(int(gib * 2**30) // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(2):
        target.copy_(source)
    sync()
    rounds, started = 10, time.perf_counter()
    for _ in range(rounds):
        target.copy_(source)
    sync()
    return 2 * source.nbytes * rounds / (time.perf_counter() - started)


def decoding_bound(bandwidth: float, params: int, weight_bytes: int, shape: dict, batch: int, context: float) -> float:
    """Completion tokens per second if each decoding step only read the weights (``weight_bytes`` each) and the
    batch's KV cache (bf16, at the mean ``context`` length) once, at ``bandwidth`` bytes per second.

    >>> qwen = {"num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "hidden_size": 896}
    >>> round(decoding_bound(3.35e12, 494_032_768, 2, qwen, batch=64, context=0))  # H100 SXM, bf16 weights
    216990
    >>> round(decoding_bound(3.35e12, 494_032_768, 4, qwen, batch=64, context=400))  # float32, 400 tokens in cache
    93596
    """
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    kv_per_token = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * head_dim * 2
    step_bytes = params * weight_bytes + kv_per_token * context * batch
    return batch * bandwidth / step_bytes


def after_first(values: list[float], cycle: int = 1) -> float | None:
    """The values after the first generation cycle (which carries warm-up and compilation): their median, or with
    a cycle of several steps (one generating, the others not) the mean over whole cycles; else all of them.

    >>> after_first([30.0, 2.0, 4.0]), after_first([5.0]), after_first([30.0, 20.0, 9.0, 1.0], cycle=2)
    (3.0, 5.0, 5.0)
    """
    kept = values[cycle:] or values
    if not kept:
        return None
    return statistics.median(kept) if cycle == 1 else statistics.mean(kept)


def numbers(steps: list[dict], key: str) -> list[float]:
    """The values logged under ``key``, skipping steps where it was not measured (TRL logs None then)."""
    return [row[key] for row in steps if isinstance(row.get(key), (int, float))]


def variant_settings(name: str, overrides: dict) -> dict:
    """The overrides of one variant's run, named ``bench-<variant>``; GRPO starts from the built model."""
    variant = VARIANTS[name]
    settings = {**overrides, "name": f"bench-{name}", **variant.overrides}
    if variant.stage == "grpo":
        settings = {key: value for key, value in settings.items() if not key.startswith("sft.")} | {"sft": "null"}
    if variant.cycle > 1:  # whole cycles: the first (warm-up) and at least one measured
        steps = int(settings["grpo.trainer.max_steps"])
        settings["grpo.trainer.max_steps"] = variant.cycle * (1 + -(-(steps - 1) // variant.cycle))
        accumulation = int(settings["grpo.trainer.gradient_accumulation_steps"])
        settings["grpo.trainer.steps_per_generation"] = variant.cycle * accumulation
    return settings


def run_variant(name: str, overrides: dict, timeout: float) -> tuple[float, str | None]:
    """Train one variant in a process of its own; its wall time and, if it failed, the end of its output."""
    command = recipe_command([VARIANTS[name].stage, "--overwrite"], variant_settings(name, overrides))
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, f"stopped after {timeout:.0f} s (--variant-timeout)"
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return wall, f"exit {done.returncode}: " + " | ".join(tail)
    return wall, None


def measure(name: str, run_dir: Path, bound_of) -> dict:
    """What a finished variant logged: step time, generation throughput and share, peak memory."""
    variant = VARIANTS[name]
    history = json.loads((run_dir / variant.stage / "trainer_state.json").read_text())["log_history"]
    steps = [row for row in history if "loss" in row]
    final = next(row for row in reversed(history) if "train_runtime" in row)
    record = json.loads((run_dir / "run.json").read_text())["stages"][variant.stage]
    peaks = numbers(steps, "memory/peak_gpu_gib")
    result = {
        "steps": len(steps),
        "precision": record.get("precision"),
        "peak_gpu_gib": max(peaks) if peaks else None,
        "peak_rss_gib": max(numbers(steps, "memory/peak_rss_gib"), default=None),
    }
    if variant.stage == "sft":
        result["seconds_per_step"] = final["train_runtime"] / max(len(steps), 1)
        result["tokens_per_second"] = steps[-1].get("num_tokens", 0) / final["train_runtime"]
        return result
    cycle = variant.cycle
    result["seconds_per_step"] = after_first(numbers(steps, "step_time"), cycle)
    generation = after_first(numbers(steps, "step_time/generation"), cycle)
    if generation and result["seconds_per_step"]:
        result["generation_share"] = generation / result["seconds_per_step"]
    result["tokens_per_second"] = after_first(numbers(steps, "completions/tokens_per_second"))  # generating steps
    first = steps[0]  # num_tokens: the prompt and completion tokens generated so far (one cycle's batch)
    completion = first.get("completions/mean_length", 0.0)
    result["bound_tokens_per_second"] = bound_of(
        record.get("precision") or {}, first.get("num_tokens", 0), completion, cycle
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)} (default all)")
    parser.add_argument("--steps", type=int, default=None, help="steps per variant (default 3; --tiny 2)")
    parser.add_argument("--completion-tokens", type=int, default=None, help="GRPO completion length (512; --tiny 16)")
    parser.add_argument("--model", type=Path, help="a model folder to train instead of building one")
    parser.add_argument("--gsm8k", type=Path, default=GSM8K, help=f"GSM8K's train/test.jsonl (default {GSM8K})")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on CPU: the script's own check")
    parser.add_argument("--variant-timeout", type=float, default=300, help="seconds before a variant is stopped")
    parser.add_argument("--work", type=Path, help="build and train in this folder and keep it")
    parser.add_argument("--output", type=Path, help="write the results here as JSON, after every variant")
    args = parser.parse_args()
    args.steps = args.steps or (2 if args.tiny else 3)
    args.completion_tokens = args.completion_tokens or (16 if args.tiny else 512)
    names = args.variants.split(",") if args.variants else (TINY_VARIANTS if args.tiny else list(VARIANTS))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if not (args.gsm8k / "train.jsonl").is_file():
        raise SystemExit(f"GSM8K is not at {args.gsm8k}; give its folder with --gsm8k")

    import torch

    from recipe_cli.config import generation_batch as generation_batch_of
    from recipe_cli.config import load_recipe

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    machine = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    work = args.work or Path(tempfile.mkdtemp(prefix="recipe-bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (args.gsm8k / "train.jsonl").read_text().splitlines()]
    shape = TINY_SHAPE if args.tiny else QWEN25_05B
    model = args.model
    if model is None:
        model = work / "model"
        texts = [row["question"] + "\n" + row["answer"] for row in rows[:3000]]
        params = build_model(model, build_tokenizer(model, texts), shape)
    else:
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model)
        shape = config.to_dict()
        with torch.device("meta"):
            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    sft_file = work / "openthoughts-format.jsonl"
    write_openthoughts_file(sft_file, rows[-256:])
    overrides = shrink(args, work, model, sft_file)
    bandwidth = memory_bandwidth(device, 1.0 if cuda else 0.125)
    recipe = load_recipe(REPO / "recipes" / "gsm8k.yaml", [f"{key}={value}" for key, value in overrides.items()])
    generation_batch = generation_batch_of(recipe.grpo.trainer)[0]  # = the completions of one optimizer step
    print(f"{machine}: copy bandwidth {bandwidth / 1e9:.0f} GB/s; model {params:,} parameters at {model}")
    print(
        f"GRPO: {args.steps} steps of {generation_batch} completions x {args.completion_tokens} tokens per variant; "
        f"SFT: {args.steps} steps of {overrides['sft.trainer.per_device_train_batch_size']} traces"
    )

    def bound_of(precision: dict, first_step_tokens: float, completion: float, cycle: int) -> float:
        weight_bytes = DTYPE_BYTES.get(precision.get("master"), 4)  # the weights as stored while generating
        batch = generation_batch * cycle
        context = first_step_tokens / batch - completion / 2  # prompt + half the completion: the mean in the cache
        return decoding_bound(bandwidth, params, weight_bytes, shape, batch, context)

    results = {"machine": machine, "bandwidth_bytes_per_second": bandwidth, "parameters": params, "variants": {}}
    for name in names:
        stage = VARIANTS[name].stage
        skipped = why_skipped(name, cuda)
        if skipped is None:
            wall, skipped = run_variant(name, overrides, args.variant_timeout)
        if skipped is not None:
            results["variants"][name] = {"skipped": skipped}
            print(f"{name:18s} skipped: {skipped}")
        else:
            result = measure(name, work / "runs" / f"bench-{name}", bound_of)
            result["wall_seconds"] = wall
            if name in BASELINES.values():  # the estimate of the settings as shipped, not of a variant's kernels
                estimate = dry_run_total(stage, variant_settings(name, overrides))
                result["estimate_gib"] = estimate / 2**30 if estimate else None
            results["variants"][name] = result
            print(describe(name, result))
        if args.output is not None:
            args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_comparison(results["variants"])


def describe(name: str, result: dict) -> str:
    """One variant's line: step time, throughput against the bound, memory against the estimate."""
    parts = [f"{name:18s} {result['seconds_per_step']:.2f} s/step"]
    if result.get("generation_share") is not None:
        parts.append(f"generation {result['generation_share']:.0%} of the step")
    if result.get("tokens_per_second") is not None:
        kind = "completion" if "bound_tokens_per_second" in result else "trained"
        parts.append(f"{result['tokens_per_second']:,.0f} {kind} tokens/s")
    if result.get("bound_tokens_per_second"):
        share = result["tokens_per_second"] / result["bound_tokens_per_second"]
        parts.append(f"bound {result['bound_tokens_per_second']:,.0f} ({share:.1%} of it)")
    measured = result.get("peak_gpu_gib") or result.get("peak_rss_gib")
    where = "GPU" if result.get("peak_gpu_gib") else "resident"
    if measured:
        memory = f"peak {where} {measured:.2f} GiB"
        if result.get("estimate_gib"):
            memory += f", --dry-run estimate {result['estimate_gib']:.2f} GiB ({result['estimate_gib'] / measured:.2f})"
        parts.append(memory)
    return "; ".join(parts)


def print_comparison(variants: dict) -> None:
    """Each variant's step time against its stage's baseline, measured in this run."""
    lines = []
    for name, result in variants.items():
        base = variants.get(BASELINES[VARIANTS[name].stage], {})
        if name in BASELINES.values() or "seconds_per_step" not in result or "seconds_per_step" not in base:
            continue
        ratio = base["seconds_per_step"] / result["seconds_per_step"]
        lines.append(f"  {name:18s} {ratio:.2f}x the speed of {BASELINES[VARIANTS[name].stage]}")
    if lines:
        print("against the baseline of each stage (step time, this run):")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
