"""Run the real recipe, `recipes/gsm8k.yaml`, on a model of Qwen2.5-0.5B's size: CPU, offline, a few steps.

The demo proves learning on a 1M-parameter model; this proves that the GPU recipe's own code path
works at real size: a Qwen2 model with Qwen2.5-0.5B's architecture (hidden 896, 24 layers, 14
heads, 2 KV heads, intermediate 4864, vocabulary 151,936; randomly initialised, built from its
config), a byte-level BPE tokenizer trained here with Qwen2's normaliser and pre-tokenizer and
Qwen2.5's ChatML template, a small SFT file in OpenThoughts-114k-math's row format written from
GSM8K's worked solutions, and GSM8K itself from ../shared/data/gsm8k. `recipe run
recipes/gsm8k.yaml` then runs with overrides that only shrink the work (paths, a few steps, short
lengths, small batches; no push). The script prints peak memory per phase, step times, and whether
each stage changed the weights. Then it runs `recipe grpo` once more in a process of its own (the
peak of GRPO inside `recipe run` carries what SFT left in the process) and sets each stage's
`--dry-run` memory estimate beside its measured peak.

    python scripts/check_real_size.py                 # ~20-30 minutes on 2 CPU cores, ~12 GB of memory
    python scripts/check_real_size.py --keep scratch/ # keep the model, data and run folder there

A randomly initialised model writes no `<answer>`, so inside `recipe run` every GRPO group gets the
same reward (0) and GRPO has no learning signal: its weights stay as SFT left them, and the script
says so. The second GRPO run adds the `length` reward, which differs between completions of
different lengths, so that run shows GRPO's updates at real size reaching the float32 weights.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from recipe_cli.peak_memory import RSS_KEY, stage_peaks

REPO = Path(__file__).resolve().parent.parent
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"
QWEN25_05B = {  # Qwen/Qwen2.5-0.5B-Instruct's config.json, the architecture only
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
# Qwen2.5-Instruct's chat template without its tool-calling branches: ChatML with a default system message.
QWEN_CHATML = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Overrides that only shrink the work of recipes/gsm8k.yaml (and point it at local files).
SHRINK = {
    "sft.dataset.max_samples": 16,
    "sft.trainer.max_steps": 3,
    "sft.trainer.per_device_train_batch_size": 2,
    "sft.trainer.gradient_accumulation_steps": 1,
    "sft.trainer.logging_steps": 1,
    "grpo.dataset.max_samples": 16,
    "grpo.trainer.max_steps": 2,
    "grpo.trainer.per_device_train_batch_size": 4,
    "grpo.trainer.gradient_accumulation_steps": 1,
    "grpo.trainer.num_generations": 4,
    "grpo.trainer.max_completion_length": 32,
    "grpo.trainer.logging_steps": 1,
    "eval.dataset.max_samples": 8,
    "eval.max_new_tokens": 32,
    "eval.batch_size": 8,
}


# The recipe's rewards plus Kimi 1.5's `length` reward: a random model never answers, so accuracy and format
# are 0 for every completion, but the length reward of wrong answers falls with their length in characters.
SIGNAL_REWARDS = (
    "[{name: accuracy, weight: 1.0, params: {mode: strict}}, {name: format, weight: 0.2}, {name: length, weight: 1.0}]"
)


def build_tokenizer(folder: Path, texts: list[str]):
    """A byte-level BPE trained on ``texts`` with Qwen2's normaliser and pre-tokenizer, saved as a Qwen2 tokenizer.

    transformers 5 rebuilds a Qwen2 tokenizer's pre-tokenizer from the model type on load: trained
    with another one, the reloaded tokenizer would split text differently from the saved one.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoTokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    raw = Tokenizer(models.BPE())
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8192,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(texts, trainer=trainer)
    state = json.loads(raw.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=state["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", errors="replace"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = QWEN_CHATML
    tokenizer.save_pretrained(folder)
    reloaded = AutoTokenizer.from_pretrained(folder)
    sample = texts[0]
    if reloaded(sample)["input_ids"] != tokenizer(sample)["input_ids"]:
        raise SystemExit("the reloaded tokenizer splits text differently from the trained one")
    return reloaded


def build_model(folder: Path, tokenizer, shape: dict = QWEN25_05B) -> int:
    """A Qwen2 model of ``shape`` (Qwen2.5-0.5B's architecture unless told), randomly initialised in float32;
    returns the parameter count."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **shape,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def gsm8k_rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (GSM8K / f"{split}.jsonl").read_text().splitlines()]


def write_openthoughts_file(path: Path, rows: list[dict]) -> None:
    """GSM8K problems in OpenThoughts-114k-math's row format: the trace and solution in the assistant turn."""
    with path.open("w") as handle:
        for row in rows:
            reasoning, gold = row["answer"].rsplit("####", 1)
            reasoning, gold = re.sub(r"<<[^>]*>>", "", reasoning).strip(), gold.strip()
            solution = f"The total is {gold}.\n\n\\boxed{{{gold}}}"
            trace = f"<|begin_of_thought|>\n\n{reasoning}\n\n<|end_of_thought|>\n\n"
            trace += f"<|begin_of_solution|>\n\n{solution}\n\n<|end_of_solution|>"
            record = {
                "source": "gsm8k",
                "problem": row["question"],
                "solution": solution,
                "conversations": [{"from": "user", "value": row["question"]}, {"from": "assistant", "value": trace}],
                "correct": True,
            }
            handle.write(json.dumps(record) + "\n")


def phase(run_dir: Path) -> str:
    """Which part of `recipe run` the run folder says is under way."""
    record = run_dir / "run.json"
    stages = json.loads(record.read_text())["stages"] if record.is_file() else {}
    done = {stage for stage, entry in stages.items() if entry.get("status") == "finished"}
    evals = {p.stem for p in (run_dir / "eval").glob("*.json")}
    for name, finished in (("eval base", "base" in evals), ("sft", "sft" in done), ("eval sft", "sft" in evals)):
        if not finished:
            return name
    if "grpo" not in done:
        return "grpo"
    return "eval grpo"


def watch_memory(pid: int, now_in: Callable[[], str], peaks: dict, stop: threading.Event) -> None:
    """Peak resident memory of the process and its children, per phase (``now_in()``), sampled every 0.2 s."""
    import psutil

    process = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
            now = now_in()
        except (psutil.Error, json.JSONDecodeError, OSError):
            rss, now = 0, None
        if now is not None:
            peaks[now] = max(peaks.get(now, 0), rss)
        stop.wait(0.2)


def changed_share(before: Path, after: Path) -> float:
    """The share of the elements of the weight matrices that differ between two checkpoints."""
    from safetensors import safe_open

    changed = total = 0
    with (
        safe_open(str(before / "model.safetensors"), "pt") as a,
        safe_open(str(after / "model.safetensors"), "pt") as b,
    ):
        for name in a.keys():
            x = a.get_tensor(name)
            if x.dim() != 2 or name not in b.keys():
                continue
            y = b.get_tensor(name).to(x.dtype)
            changed += int((x != y).sum())
            total += x.numel()
    return changed / total


def step_times(stage_dir: Path) -> str:
    history = json.loads((stage_dir / "trainer_state.json").read_text())["log_history"]
    final = next(row for row in reversed(history) if "train_runtime" in row)
    steps = max(row["step"] for row in history)
    text = (
        f"{final['train_runtime'] / steps:.1f} s/step over {steps} steps (train_runtime {final['train_runtime']:.0f} s)"
    )
    logged = [row["step_time"] for row in history if "step_time" in row]
    if logged:
        text += "; logged step_time " + ", ".join(f"{t:.1f}" for t in logged) + " s"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    if not GSM8K.is_dir():
        raise SystemExit(f"GSM8K is not at {GSM8K}; this check trains on it")
    work = args.keep or Path(tempfile.mkdtemp(prefix="recipe-real-size-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train = gsm8k_rows("train")
    model_dir = work / "qwen2.5-0.5b-shaped"
    texts = [row["question"] + "\n" + row["answer"] for row in train[:3000]] + [QWEN_CHATML]
    tokenizer = build_tokenizer(model_dir, texts)
    params = build_model(model_dir, tokenizer)
    sft_file = work / "openthoughts-format.jsonl"
    write_openthoughts_file(sft_file, train[-64:])
    print(
        f"built {model_dir}: {params:,} parameters, tokenizer of {len(tokenizer)} tokens, in "
        f"{time.perf_counter() - started:.0f} s"
    )

    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    overrides = {
        "runs_dir": str(runs),
        "model.path": str(model_dir),
        "sft.dataset.path": str(sft_file),
        "sft.dataset.adapter": "openthoughts",
        "grpo.dataset.path": str(GSM8K / "train.jsonl"),
        "grpo.dataset.adapter": "gsm8k",
        "eval.dataset.path": str(GSM8K / "test.jsonl"),
        "eval.dataset.adapter": "gsm8k",
        "eval.dataset.split": "test",
        "push": "null",
        **SHRINK,
    }
    print(f"running: recipe run recipes/gsm8k.yaml with {len(overrides)} --set overrides:")
    print("  " + " ".join(f"{key}={value}" for key, value in overrides.items()))
    run_dir = runs / "qwen2.5-0.5b-r1-gsm8k"
    peaks = {}
    wall = run_recipe(["run"], overrides, lambda: phase(run_dir), peaks)

    print(f"\nrecipe run recipes/gsm8k.yaml on a {params / 1e6:.0f}M-parameter model: {wall:.0f} s in all")
    print("peak resident memory per phase (the recipe process and its children):")
    for name in ("eval base", "sft", "eval sft", "grpo", "eval grpo"):
        if name in peaks:
            print(f"  {name:10s} {peaks[name] / 2**30:6.2f} GiB")
    base = model_dir
    for stage, before in (("sft", base), ("grpo", run_dir / "sft")):
        stage_dir = run_dir / stage
        share = changed_share(before, stage_dir)
        print(f"{stage}: {step_times(stage_dir)}; weights changed: {share:.2%} of the matrix elements")
        if stage == "grpo" and share == 0.0:
            history = json.loads((stage_dir / "trainer_state.json").read_text())["log_history"]
            zero = [row.get("frac_reward_zero_std") for row in history if "frac_reward_zero_std" in row]
            print(f"  grpo: frac_reward_zero_std {zero}: every group got one reward, so no learning signal")
    record = json.loads((run_dir / "run.json").read_text())["stages"]
    for stage in ("sft", "grpo"):
        print(f"{stage} precision: {record[stage]['precision']}")
    for label in ("base", "sft", "grpo"):
        summary = json.loads((run_dir / "eval" / f"{label}.json").read_text())
        print(
            f"eval {label}: accuracy {summary['accuracy']:.1%} on {summary['n']} problems, dtype {summary['dtype']}, "
            f"{summary['samples_per_second']} samples/s"
        )

    print(
        "\nrecipe grpo again, in a process of its own (--overwrite), for its memory peak; with the `length` reward"
        " added, whose value differs between completions of different lengths, so the groups carry a signal"
    )
    alone = {**overrides, "grpo.rewards": SIGNAL_REWARDS}
    run_recipe(["grpo", "--overwrite"], alone, lambda: "grpo alone", peaks)
    share = changed_share(run_dir / "sft", run_dir / "grpo")
    print(f"grpo alone: {step_times(run_dir / 'grpo')}; weights changed: {share:.2%} of the matrix elements")
    print("memory: --dry-run's estimate against the measured peak (resident memory; CPU: compute float32)")
    for stage, measured in (("sft", peaks.get("sft")), ("grpo", peaks.get("grpo alone"))):
        estimated = dry_run_total(stage, overrides)
        if measured and estimated:
            print(
                f"  {stage:5s} estimate {estimated / 2**30:5.2f} GiB, measured {measured / 2**30:5.2f} GiB: "
                f"estimate / measured {estimated / measured:.2f}"
            )
        history = json.loads((run_dir / stage / "trainer_state.json").read_text())["log_history"]
        logged = stage_peaks(history).get(RSS_KEY)
        if logged and measured:  # the run's own log: the main process alone, its peak since the stage began training
            print(f"        the run logged {logged:5.2f} GiB (memory/peak_rss_gib of its main process)")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


def recipe_command(arguments: list[str], overrides: dict) -> list[str]:
    command = [sys.executable, "-m", "recipe_cli", *arguments[:1], str(REPO / "recipes" / "gsm8k.yaml"), *arguments[1:]]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    return command


def run_recipe(arguments: list[str], overrides: dict, now_in: Callable[[], str], peaks: dict) -> float:
    """Run a recipe command, watching its memory; its wall time in seconds."""
    stop = threading.Event()
    began = time.perf_counter()
    command = recipe_command(arguments, overrides)
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    watcher = threading.Thread(target=watch_memory, args=(process.pid, now_in, peaks, stop), daemon=True)
    watcher.start()
    code = process.wait()
    stop.set()
    watcher.join()
    wall = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"recipe {arguments[0]} exited with {code} after {wall:.0f} s")
    return wall


def dry_run_total(stage: str, overrides: dict) -> int | None:
    """The total of ``recipe <stage> --dry-run``'s memory estimate, in bytes."""
    env = {**os.environ, "COLUMNS": "200"}
    output = subprocess.run(
        recipe_command([stage, "--dry-run"], overrides), cwd=REPO, env=env, capture_output=True, text=True
    ).stdout
    match = re.search(r"│ total\s*│\s*([\d.]+) (B|KiB|MiB|GiB|TiB)", output)
    if match is None:
        print(f"  {stage}: no memory estimate in its --dry-run output")
        return None
    return int(float(match.group(1)) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(match.group(2)))


if __name__ == "__main__":
    main()
