"""The bad-input corpus: malformed recipes and datasets, each ending in one line on stderr, exit code 2, no files.

Each case changes the tiny recipe (or replaces the file with raw text), runs one command, and
expects a message naming the problem. Cases that only show once data is loaded (missing columns,
every prompt filtered out, an empty file) train nothing and leave no run folder behind.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app

runner = CliRunner()


def jsonl(tmp: Path, name: str, rows: list[dict]) -> str:
    path = tmp / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def broken_jsonl(tmp: Path) -> str:
    """Three GSM8K rows, the second cut off mid-object (a copy interrupted, a hand edit gone wrong)."""
    good = json.dumps({"question": "2+2?", "answer": "2 + 2 = 4\n#### 4"})
    path = tmp / "broken.jsonl"
    path.write_text(f'{good}\n{{"question": "3+3?", "answer": "3 + 3\n{good}\n')
    return str(path)


def raw_file(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)


def latin1_jsonl(tmp: Path) -> str:
    """Two GSM8K rows, the second saved as Latin-1 (an 'é' as the single byte 0xe9)."""
    good = json.dumps({"question": "2+2?", "answer": "2 + 2 = 4\n#### 4"}).encode()
    return raw_file(tmp, "latin1.jsonl", good + b'\n{"question": "caf\xe9?", "answer": "1\\n#### 1"}\n')


def local_sft_data(data: dict, path: str, **extra) -> None:
    data["sft"]["dataset"] = {"path": path, **extra}


def set_in(data: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value


def long_prompts(data: dict, tmp: Path) -> None:
    """SFT rows whose prompts (~1.5k tokens) fill the tiny model's 256 positions, so no completion token is left."""
    rows = [{"question": "7 " * 1500 + f"? {i}", "answer": str(i), "reasoning": f"{i}"} for i in range(4)]
    local_sft_data(data, jsonl(tmp, "long.jsonl", rows), adapter="columns")


def long_traces(data: dict, tmp: Path) -> None:
    """SFT rows whose reasoning (~200 tokens) runs past sft.trainer.max_length, so truncation would cut the answer."""
    rows = [{"question": f"What is {i} times 7?", "answer": str(7 * i), "reasoning": "7 " * 100} for i in range(4)]
    local_sft_data(data, jsonl(tmp, "traces.jsonl", rows), adapter="columns")
    data["sft"]["trainer"]["max_length"] = 120


EMPTY_SAFETENSORS = (2).to_bytes(8, "little") + b"{}"  # a header length, then a header naming no tensors


def model_folder(data: dict, tmp: Path, *files: str) -> None:
    """Point model.path at a folder holding only ``files`` (placeholder contents: ``{}``, or no tensors)."""
    folder = tmp / "partial-model"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(EMPTY_SAFETENSORS if name.endswith(".safetensors") else b"{}")
    data["model"] = {"path": str(folder)}


def tokens_beyond_embeddings(data: dict, tmp: Path) -> None:
    """A model folder whose tokenizer gained tokens (a chat template's) without the embeddings being resized."""
    from transformers import AutoTokenizer

    from recipe_cli.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp / "grown", **{**data["model"]["tiny"], "num_layers": 1}, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens(["<|turn|>", "<|endturn|>"], special_tokens=True)
    tokenizer.chat_template = tokenizer.chat_template.replace("<|im_start|>", "<|turn|>").replace(
        "<|im_end|>", "<|endturn|>"
    )
    tokenizer.save_pretrained(folder)
    data["model"] = {"path": str(folder)}


def cut_off_weights(data: dict, tmp: Path) -> None:
    """A model folder whose weights file was copied half-way (its header names 4096 bytes of tensors)."""
    model_folder(data, tmp, "config.json", "tokenizer.json", "chat_template.jinja")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}).encode()
    content = len(header).to_bytes(8, "little") + header + bytes(4096)
    (Path(data["model"]["path"]) / "model.safetensors").write_bytes(content[: len(content) // 2])


def dangling_weights(data: dict, tmp: Path) -> None:
    """A copied Hugging Face cache snapshot whose weights link points at a blob that is gone."""
    model_folder(data, tmp, "config.json", "tokenizer.json", "chat_template.jinja")
    (Path(data["model"]["path"]) / "model.safetensors").symlink_to(tmp / "blobs" / "gone")


# (id, command, change, expected text); change(data, tmp) edits the recipe in place or returns the raw file
CASES = [
    ("empty-file", "sft", lambda d, t: "", "the recipe is empty"),
    ("not-yaml", "sft", lambda d, t: "name: [unclosed\nmodel: {", "not valid YAML"),
    ("yaml-list", "run", lambda d, t: "- name: tiny\n", "a list, not a mapping"),
    ("binary", "validate", lambda d, t: b"\xff\xfe\x00binary", "not a text file"),
    ("unknown-top-key", "sft", lambda d, t: d.update(modle={}), "modle: unknown key; did you mean 'model'?"),
    (
        "evaluation-section",
        "run",
        lambda d, t: d.update(evaluation={}),
        "evaluation: unknown key; did you mean 'eval'?",
    ),
    ("unknown-model-key", "sft", lambda d, t: set_in(d, "model.dtyp", "float32"), "model.dtyp: unknown key"),
    ("unknown-tiny-key", "sft", lambda d, t: set_in(d, "model.tiny.layers", 2), "model.tiny.layers: unknown key"),
    ("unknown-lora-key", "grpo", lambda d, t: set_in(d, "model.lora", {"rank": 4}), "model.lora.rank: unknown key"),
    ("unknown-prompt-key", "run", lambda d, t: set_in(d, "prompt.assistant", "x"), "prompt.assistant: unknown key"),
    ("unknown-dataset-key", "sft", lambda d, t: set_in(d, "sft.dataset.shufle", True), "did you mean 'shuffle'"),
    ("unknown-reward-key", "grpo", lambda d, t: set_in(d, "grpo.rewards.0.scale", 2), "grpo.rewards.0.scale"),
    ("unknown-eval-key", "run", lambda d, t: set_in(d, "eval.temprature", 0.5), "eval.temprature: unknown key"),
    (
        "eval-temperature-zero",
        "run",
        lambda d, t: set_in(d, "eval.temperature", 0.0),
        "eval.temperature: input should be greater than 0",
    ),
    ("unknown-push-key", "run", lambda d, t: d.update(push={"repo_id": "a/b", "repo": "c"}), "push.repo: unknown key"),
    ("unknown-health-key", "grpo", lambda d, t: set_in(d, "grpo.health", {"window": 3}), "grpo.health.window"),
    ("unknown-trainer-key", "sft", lambda d, t: set_in(d, "sft.trainer.lr", 1.0), "unknown SFTConfig setting"),
    (
        "grpo-key-under-sft",
        "sft",
        lambda d, t: set_in(d, "sft.trainer.num_generations", 4),
        "sft.trainer.num_generations: unknown SFTConfig setting; it is a GRPOConfig setting: put it under grpo.trainer",
    ),
    (
        "tracker-not-installed",  # tensorboard reads as missing here, installed or not (FAKES)
        "sft",
        lambda d, t: set_in(d, "sft.trainer.report_to", "tensorboard"),
        "sft.trainer.report_to: the tracker 'tensorboard' is not installed here; run `pip install tensorboard`",
    ),
    ("removed-trainer-key", "sft", lambda d, t: set_in(d, "sft.trainer.warmup_ratio", 0.1), "warmup_steps: 0.1"),
    (
        "padding-free-with-max-length",  # TRL would raise only once the model has loaded
        "sft",
        lambda d, t: set_in(d, "sft.trainer.padding_free", True),
        "sft.trainer.padding_free: TRL does not cut padding-free batches to max_length",
    ),
    (
        "packing-without-max-length",
        "sft",
        lambda d, t: d["sft"]["trainer"].update(packing=True, max_length=None),
        "sft.trainer.packing: packing fills rows of max_length tokens, and max_length is null; set it",
    ),
    (
        "assistant-only-loss",  # the examples recipe builds are token ids with the prompt masked, not conversations
        "sft",
        lambda d, t: set_in(d, "sft.trainer.assistant_only_loss", True),
        "sft.trainer.assistant_only_loss: recipe builds each SFT example with its prompt masked",
    ),
    (
        "bad-truncation-mode",
        "sft",
        lambda d, t: set_in(d, "sft.trainer.truncation_mode", "left"),
        "sft.trainer.truncation_mode: 'left' is not one of keep_start, keep_end",
    ),
    (
        "sync-reference-without-one",
        "grpo",
        lambda d, t: set_in(d, "grpo.trainer.sync_ref_model", True),
        "grpo.trainer.sync_ref_model: beta is 0, by default, so no reference model is loaded to sync",
    ),
    (
        "sync-reference-with-lora",
        "grpo",
        lambda d, t: (
            d["grpo"]["trainer"].update(sync_ref_model=True, beta=0.04),
            d["model"].update(lora={"r": 4, "alpha": 8}),
        ),
        "grpo.trainer.sync_ref_model: with model.lora the reference is the model with its adapter switched off",
    ),
    (
        "grpo-setting-only-trl-checks",  # found by GRPOConfig itself: `recipe run` stops before the base eval and SFT
        "run",
        lambda d, t: d["grpo"]["trainer"].update(save_strategy="steps", load_best_model_at_end=True),
        "grpo.trainer: --load_best_model_at_end requires the save and eval strategy to match",
    ),
    (
        "sft-setting-only-transformers-checks",
        "sft",
        lambda d, t: d["sft"]["trainer"].update(save_strategy="steps", load_best_model_at_end=True),
        "sft.trainer: --load_best_model_at_end requires the save and eval strategy to match",
    ),
    (
        "scheduler-typo",  # transformers checks it only when the config is built, after validate
        "sft",
        lambda d, t: set_in(d, "sft.trainer.lr_scheduler_type", "cosine_decay"),
        "sft.trainer.lr_scheduler_type: 'cosine_decay' is not a scheduler transformers knows; did you mean 'cosine'?",
    ),
    ("owned-trainer-key", "grpo", lambda d, t: set_in(d, "grpo.trainer.seed", 1), "set `seed` at the top level"),
    (
        "resume-in-trainer",
        "sft",
        lambda d, t: set_in(d, "sft.trainer.resume_from_checkpoint", "x"),
        "pass --resume",
    ),
    (
        "sft-chat-template-path",  # TRL would save it with the SFT checkpoint, a template SFT never trained on
        "sft",
        lambda d, t: set_in(d, "sft.trainer.chat_template_path", "template.jinja"),
        "sft.trainer.chat_template_path: not allowed here; set `model.chat_template`",
    ),
    (
        "grpo-chat-template-kwargs",  # TRL would render GRPO's prompts with them, SFT's and the eval's without
        "grpo",
        lambda d, t: set_in(d, "grpo.trainer.chat_template_kwargs", {"enable_thinking": False}),
        "grpo.trainer.chat_template_kwargs: not allowed here; SFT, GRPO and eval render prompts with",
    ),
    ("seed-not-int", "sft", lambda d, t: d.update(seed="abc"), "seed:"),
    (
        "seed-negative",
        "sft",
        lambda d, t: d.update(seed=-1),
        "seed: input should be greater than or equal to 0, got -1",
    ),
    (
        "grpo-temperature-zero",  # TRL refused it only when GRPO started: after SFT and two evals under run
        "run",
        lambda d, t: set_in(d, "grpo.trainer.temperature", 0),
        "grpo.trainer.temperature: 0 is not a value it can take: it must be above 0 (GRPO learns from",
    ),
    (
        "batch-size-zero",
        "sft",
        lambda d, t: set_in(d, "sft.trainer.per_device_train_batch_size", 0),
        "sft.trainer.per_device_train_batch_size: 0 is not a value it can take: it must be at least 1",
    ),
    (
        "adam-beta-above-one",
        "sft",
        lambda d, t: set_in(d, "sft.trainer.adam_beta1", 1.5),
        "sft.trainer.adam_beta1: 1.5 is not a value it can take: it must be at least 0 and below 1",
    ),
    (
        "optimizer-package-missing",  # transformers imports bitsandbytes only when training starts
        "sft",
        lambda d, t: set_in(d, "sft.trainer.optim", "adamw_8bit"),
        "sft.trainer.optim: the optimizer 'adamw_8bit' needs bitsandbytes, which is not installed here; run `pip install",
    ),
    (
        "trainer-eval-loop",  # a leftover of HF scripts: TRL raises for the missing eval_dataset once training starts
        "sft",
        lambda d, t: set_in(d, "sft.trainer.eval_strategy", "steps"),
        "sft.trainer.eval_strategy: recipe passes the trainer no eval_dataset",
    ),
    (
        "trainer-deepspeed",
        "grpo",
        lambda d, t: set_in(d, "grpo.trainer.deepspeed", "ds.json"),
        "grpo.trainer.deepspeed: not allowed here; set `launch.accelerate_config` (zero1, zero2, zero3",
    ),
    (
        "lora-target-typo",  # peft ignored a listed name matching nothing when another one matched
        "sft",
        lambda d, t: set_in(d, "model.lora", {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_prj"]}),
        "model.lora.target_modules: v_prj matches no module of",
    ),
    (
        "lora-no-targets",  # peft raised NoMatchingPeftModuleError once the trainer was built, after the data
        "sft",
        lambda d, t: set_in(d, "model.lora", {"r": 4, "alpha": 8, "target_modules": []}),
        "model.lora.target_modules: the list is empty; name the modules to adapt (e.g. [q_proj, v_proj]) or give",
    ),
    (
        "lora-on-output-layer",  # TRL raised a ValueError once the trainer was built: it never trains that adapter
        "grpo",
        lambda d, t: set_in(d, "model.lora", {"r": 4, "alpha": 8, "target_modules": ["q_proj", "lm_head"]}),
        "model.lora.target_modules: lm_head is the output layer, whose adapter TRL would never train",
    ),
    (
        "lora-on-output-layer-pattern",
        "sft",
        lambda d, t: set_in(d, "model.lora", {"r": 4, "alpha": 8, "target_modules": ".*(q_proj|head)"}),
        "model.lora.target_modules: .*(q_proj|head) matches lm_head, the output layer",
    ),
    (
        "reward-that-raises",  # under run, TRL called it first when GRPO started: after the base eval, SFT and its eval
        "run",
        lambda d, t: (
            (t / "broken.py").write_text("def crash(completions, **kwargs):\n    raise KeyError('text')\n")
            and d["grpo"]["rewards"].append({"name": f"{t / 'broken.py'}:crash"})
        ),
        "broken.py:crash ×1 raised KeyError: 'text' when called on test completions; fix it",
    ),
    (
        "reward-that-raises-value-error",  # the message read "crash ×1 no digits when called ...": no word of raising
        "grpo",
        lambda d, t: (
            (t / "broken.py").write_text("def crash(completions, **kwargs):\n    raise ValueError('no digits')\n")
            and d["grpo"]["rewards"].append({"name": f"{t / 'broken.py'}:crash"})
        ),
        "broken.py:crash ×1 raised ValueError: no digits when called on test completions; fix it",
    ),
    (
        "eval-set-without-gold",  # every answer scored 0: the eval reported 0.0% without a word
        "eval",
        lambda d, t: set_in(d, "eval.dataset", {"path": jsonl(t, "pc.jsonl", [{"prompt": "1+1?", "completion": "2"}])}),
        "eval.dataset: the row asking '1+1?' has no gold answer, which every answer is scored against; fill in",
    ),
    (
        "grpo-gold-cell-empty",  # the message only said to map a column, which the row already had
        "grpo",
        lambda d, t: set_in(
            d,
            "grpo.dataset",
            {
                "path": jsonl(
                    t, "m.jsonl", [{"prompt": "1+1?", "solution": "2"}, {"prompt": "2+2?", "solution": None}]
                ),
                "adapter": "prompt_completion",
            },
        ),
        "the row asking '2+2?' has no gold answer, which every answer is scored against; fill in its empty gold or "
        "drop the row",
    ),
    (
        "max-steps-zero",  # trained one step and was recorded finished
        "sft",
        lambda d, t: set_in(d, "sft.trainer.max_steps", 0),
        "sft.trainer.max_steps: 0 trains nothing: give a number of steps, or -1",
    ),
    (
        "learning-rate-zero",  # trained every step, logged lr 0 and left the weights as they were, without a word
        "grpo",
        lambda d, t: set_in(d, "grpo.trainer.learning_rate", 0.0),
        "grpo.trainer.learning_rate: 0.0 is not a value it can take: it must be above 0 (0 trains nothing",
    ),
    (
        "reward-weights-all-zero",  # every total reward 0, every loss 0: GRPO ran and learned nothing, without a word
        "grpo",
        lambda d, t: [reward.update(weight=0.0) for reward in d["grpo"]["rewards"]],
        "grpo.rewards: every reward has weight 0, so every completion's total reward is 0: zero advantage",
    ),
    ("lr-not-number", "sft", lambda d, t: set_in(d, "sft.trainer.learning_rate", "fast"), "expected a number"),
    ("hidden-size-list", "sft", lambda d, t: set_in(d, "model.tiny.hidden_size", [1]), "model.tiny.hidden_size"),
    ("bad-run-name", "sft", lambda d, t: d.update(name="a/b"), "name: 'a/b' is not a run name; use letters"),
    (
        "bad-eval-set-name",
        "run",
        lambda d, t: d.update(eval={"datasets": [{"name": "test set", "adapter": "arithmetic", "split": "test"}]}),
        "eval.datasets.0.name: 'test set' is not an eval set name; use letters, digits",
    ),
    ("two-model-sources", "sft", lambda d, t: set_in(d, "model.path", "Qwen/Qwen2.5-0.5B"), "exactly one of"),
    ("model-folder-missing", "sft", lambda d, t: d.update(model={"path": "./no/such/model"}), "does not exist"),
    ("dataset-file-missing", "sft", lambda d, t: local_sft_data(d, "./no/such.jsonl"), "does not exist"),
    ("dataset-wrong-suffix", "sft", lambda d, t: local_sft_data(d, str(t / "x.txt")), "is not a"),
    (
        "dataset-missing-column",
        "sft",
        lambda d, t: local_sft_data(d, jsonl(t, "q.jsonl", [{"problem": "1+1?", "answer": "2"}])),
        "has no column 'question'",
    ),
    (
        "run-sft-missing-column",  # checked before the base eval, which would write eval/base.json
        "run",
        lambda d, t: local_sft_data(d, jsonl(t, "q.jsonl", [{"problem": "1+1?", "answer": "2"}])),
        "has no column 'question'",
    ),
    (
        "run-every-grpo-prompt-filtered",  # checked before SFT trains
        "run",
        lambda d, t: set_in(d, "grpo.dataset.max_prompt_tokens", 1),
        "grpo.dataset: every prompt is longer than max_prompt_tokens=1",
    ),
    ("dataset-empty-file", "sft", lambda d, t: local_sft_data(d, jsonl(t, "empty.jsonl", [])), "is an empty file"),
    (
        "every-prompt-filtered",
        "sft",
        lambda d, t: set_in(d, "sft.dataset.max_prompt_tokens", 1),
        "every prompt is longer than max_prompt_tokens=1",
    ),
    (
        "reasoning-missing",
        "sft",
        lambda d, t: local_sft_data(d, jsonl(t, "nr.jsonl", [{"question": "1+1?", "answer": "2"}])),
        "no reasoning",
    ),
    (
        "batch-not-divisible",
        "grpo",
        lambda d, t: set_in(d, "grpo.trainer.num_generations", 3),
        "does not divide the generation batch",
    ),
    ("one-generation", "run", lambda d, t: set_in(d, "grpo.trainer.num_generations", 1), "at least 2 completions"),
    (
        "batch-two-ways",
        "grpo",
        lambda d, t: d["grpo"]["trainer"].update(generation_batch_size=8, steps_per_generation=2),
        "not both",
    ),
    (
        "bf16-in-trainer",
        "sft",
        lambda d, t: set_in(d, "sft.trainer.bf16", True),
        ": sft.trainer.bf16: not allowed here; set `model.dtype: bfloat16`",
    ),
    ("loss-type", "grpo", lambda d, t: set_in(d, "grpo.trainer.loss_type", "ppo"), "'ppo' is not one of"),
    ("unknown-reward", "grpo", lambda d, t: d["grpo"]["rewards"].append({"name": "acuracy"}), "unknown reward"),
    (
        "push-stage-absent",
        "run",
        lambda d, t: d.update(grpo=None, push={"repo_id": "a/b", "stage": "grpo"}),
        "push.stage",
    ),
    (
        "push-nothing-trained",
        "run",
        lambda d, t: d.update(sft=None, grpo=None, push={"repo_id": "a/b"}),
        "no sft or grpo",
    ),
    ("stage-absent", "grpo", lambda d, t: d.update(grpo=None), "the recipe has no `grpo:` section"),
    ("grpo-before-sft", "grpo", lambda d, t: None, "run `recipe sft` first"),
    ("unknown-placeholder", "sft", lambda d, t: set_in(d, "prompt.user", "{query}"), "prompt.user"),
    ("malformed-jsonl-line", "sft", lambda d, t: local_sft_data(d, broken_jsonl(t)), "line 2 is not a JSON object"),
    (
        "malformed-jsonl-line-validate",
        "validate",
        lambda d, t: local_sft_data(d, broken_jsonl(t)),
        "broken.jsonl' line 2 is not a JSON object",
    ),
    (
        "gsm8k-integer-answer",
        "sft",
        lambda d, t: local_sft_data(d, jsonl(t, "g.jsonl", [{"question": "2+2?", "answer": 4}]), adapter="gsm8k"),
        "row 0 (line 1): column 'answer' is an int (4), not GSM8K's",
    ),
    (
        "null-gold-validate",  # caught by validate, before any weights load
        "validate",
        lambda d, t: local_sft_data(
            d, jsonl(t, "n.jsonl", [{"question": "1+1?", "answer": "2"}, {"question": "2+2?", "answer": None}])
        ),
        "row 1 (line 2): column 'answer' (the gold answer) is empty (null)",
    ),
    (
        "missing-column-validate",
        "validate",
        lambda d, t: local_sft_data(d, jsonl(t, "q.jsonl", [{"problem": "1+1?", "answer": "2"}])),
        "has no column 'question'",
    ),
    (
        "gsm8k-without-hashes-validate",
        "validate",
        lambda d, t: local_sft_data(d, jsonl(t, "g.jsonl", [{"question": "2+2?", "answer": "four"}]), adapter="gsm8k"),
        "the answer has no '#### <number>'",
    ),
    (
        "eval-dataset-step",
        "validate",
        lambda d, t: set_in(d, "eval.dataset.drop_duplicates", True),
        "eval: dataset.drop_duplicates is a training-data step",
    ),
    (
        "benchmark-file-missing",
        "validate",
        lambda d, t: set_in(d, "grpo.dataset.decontaminate", {"benchmarks": ["./no/bench.jsonl"]}),
        "grpo.dataset.decontaminate.benchmarks.0: './no/bench.jsonl' is not a",
    ),
    (
        "pass-rate-range",
        "grpo",
        lambda d, t: set_in(d, "grpo.dataset.difficulty", {"min_pass_rate": 0.8, "max_pass_rate": 0.2}),
        "min_pass_rate 0.8 is above max_pass_rate 0.2",
    ),
    (
        "mixture-and-path",
        "sft",
        lambda d, t: set_in(d, "sft.dataset.mixture", [{"adapter": "arithmetic"}]),
        "not both",
    ),
    (
        "dynamic-sampling-split-groups",
        "grpo",
        lambda d, t: (
            d["grpo"].update(dynamic_sampling={"enabled": True})
            or d["grpo"]["trainer"].update(per_device_train_batch_size=6)
            or d.update(launch={"num_processes": 2})
        ),
        "not whole groups of num_generations=4",
    ),
    (
        "grpo-difficulty-before-sft",
        "data",
        lambda d, t: set_in(d, "grpo.dataset.difficulty", {"samples": 2}),
        "grpo.dataset.difficulty samples from the SFT model, which is not trained yet",
    ),
    ("arithmetic-with-path", "sft", lambda d, t: set_in(d, "sft.dataset.path", "x.jsonl"), "remove `path`"),
    ("teacher-error-rate", "sft", lambda d, t: set_in(d, "sft.dataset.teacher_error_rate", 2.0), "teacher_error_rate"),
    (
        "model-config-alone",  # one mistake, one line: not "2 problems"
        "sft",
        lambda d, t: model_folder(d, t, "config.json"),
        "holds neither weights (*.safetensors, *.bin) nor a tokenizer",
    ),
    (
        "model-without-weights",
        "validate",
        lambda d, t: model_folder(d, t, "config.json", "tokenizer.json", "chat_template.jinja"),
        "holds no weights",
    ),
    (
        "model-without-tokenizer",
        "sft",
        lambda d, t: model_folder(d, t, "config.json", "model.safetensors"),
        "holds no tokenizer",
    ),
    (
        "model-without-chat-template",
        "run",
        lambda d, t: model_folder(d, t, "config.json", "model.safetensors", "tokenizer.json"),
        "has no chat template",
    ),
    (
        "tokenizer-outgrew-the-embeddings",  # an IndexError in the embedding lookup at the first forward pass
        "sft",
        tokens_beyond_embeddings,
        "its tokenizer has ids up to 405 but the model's embeddings have 404 rows (vocab_size in config.json)",
    ),
    ("runs-dir-is-a-file", "sft", lambda d, t: d.update(runs_dir=str(t / "x.txt")), "is a file, not a folder"),
    (
        "use-vllm-without-vllm",
        "grpo",
        lambda d, t: d.update(sft=None) or set_in(d, "grpo.trainer.use_vllm", True),
        "vLLM is not installed here",
    ),
    ("plain-prompt-without-question", "sft", lambda d, t: d.update(prompt={"template": "Q:"}), "prompt.template"),
    ("prompts-fill-the-model", "sft", long_prompts, "every prompt fills sft.trainer.max_length"),
    (
        "sft-traces-cut-by-max-length",
        "sft",
        long_traces,
        "4 of 4 examples are longer than sft.trainer.max_length=120 tokens (the longest 2",
    ),
    ("sft-traces-cut-by-max-length-run", "run", long_traces, "TRL would cut off their ends (the final answer"),
    (
        "dataset-not-utf8",
        "sft",
        lambda d, t: local_sft_data(d, latin1_jsonl(t)),
        "latin1.jsonl' is not UTF-8 text: line 2 (byte 69) holds b'\\xe9'",
    ),
    (
        "dataset-not-utf8-csv-validate",
        "validate",
        lambda d, t: local_sft_data(d, raw_file(t, "l.csv", b'question,answer\n"caf\xe9?","1\n#### 1"\n')),
        "l.csv' is not UTF-8 text: line 2 (byte 20)",
    ),
    (
        "eval-dataset-not-utf8-json",
        "eval",
        lambda d, t: set_in(
            d, "eval.dataset", {"path": raw_file(t, "l.json", b'[{"question": "\xff", "answer": "1"}]')}
        ),
        "re-save the file as UTF-8",
    ),
    (
        "dataset-not-parquet",
        "sft",
        lambda d, t: local_sft_data(d, raw_file(t, "d.parquet", b"question,answer\n")),
        "d.parquet' is not a parquet file, or it is cut off (Parquet magic bytes not found in footer)",
    ),
    (
        "eval-dataset-not-parquet-validate",
        "validate",
        lambda d, t: set_in(d, "eval.dataset", {"path": raw_file(t, "e.parquet", b"PAR1")}),
        "e.parquet' is not a parquet file",
    ),
    (
        "dataset-empty-folder",  # a local folder: the network has nothing to do with it
        "sft",
        lambda d, t: (t / "data").mkdir() or local_sft_data(d, str(t / "data"), adapter="gsm8k"),
        "data' is a folder that could not be loaded",
    ),
    (
        "model-weights-cut-off",
        "sft",
        cut_off_weights,
        "the weights file model.safetensors is 2085 bytes where its header says 4171: it is cut off",
    ),
    (
        "model-weights-dangling-link",
        "validate",
        dangling_weights,
        "the weights file model.safetensors cannot be read (No such file or directory): it is cut off",
    ),
    (
        "model-weights-not-safetensors-validate",
        "validate",
        lambda d, t: (
            model_folder(d, t, "config.json", "tokenizer.json", "chat_template.jinja")
            or (Path(d["model"]["path"]) / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1")
        ),
        "model.safetensors is 42 bytes, too short for its header: it is cut off or not a safetensors file",
    ),
    (
        "messages-without-assistant-validate",  # read through datasets to measure it: no loading bar before the line
        "validate",
        lambda d, t: local_sft_data(d, jsonl(t, "m.jsonl", [{"messages": [{"role": "user", "content": "2+2?"}]}])),
        "sft: the row asking '2+2?' has no completion to train on",
    ),
]


def pretend_missing(monkeypatch, check: str, *names: str) -> None:
    """Make the installed-check ``check`` (a dotted function name) say ``names`` are missing, the rest as they are."""
    module, attribute = check.rsplit(".", 1)
    real = getattr(importlib.import_module(module), attribute)
    monkeypatch.setattr(check, lambda name: name not in names and real(name))


# What a case needs of this machine, faked so that it holds wherever the tests run (vLLM or tensorboard installed).
FAKES = {
    "use-vllm-without-vllm": lambda mp: pretend_missing(mp, "recipe_cli.launch.is_installed", "vllm"),
    "tracker-not-installed": lambda mp: pretend_missing(
        mp, "recipe_cli.trackers.is_installed", "tensorboard", "tensorboardX"
    ),
    "optimizer-package-missing": lambda mp: pretend_missing(mp, "recipe_cli.launch.is_installed", "bitsandbytes"),
}


@pytest.mark.parametrize(("case", "command", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(
    recipe_dict, write_recipe, tmp_path, monkeypatch, case, command, change, expected
):
    if case in FAKES:
        FAKES[case](monkeypatch)
    (tmp_path / "x.txt").write_text("not data\n")
    raw = change(recipe_dict, tmp_path)
    if isinstance(raw, bytes):
        path = tmp_path / "recipe.yaml"
        path.write_bytes(raw)
    else:
        path = write_recipe(raw if isinstance(raw, str) else recipe_dict)
    result = runner.invoke(app, [command, str(path)])

    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "[A-Za-z" not in lines[0] and "\\w" not in lines[0], lines[0]  # words, not a raw pattern
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists(), sorted(str(p) for p in (tmp_path / "runs").rglob("*"))


def test_cli_argument_mistakes_are_one_line_too(recipe_dict, write_recipe, tmp_path):
    path = write_recipe(recipe_dict)
    mistakes = (
        ["sft", path, "--resume", "--overwrite"],
        ["sft", path, "--set", "no-equals-sign"],
        ["run", path, "--force"],  # would otherwise be ignored silently
        ["grpo", path, "--overwrite", "--force"],
    )
    for args in mistakes:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("targets", "expected"),
    [(["q_proj", "v_prj"], "v_prj matches no module of the tiny model"), (["lm_head"], "lm_head is the output layer")],
)
def test_a_dry_run_checks_the_lora_targets_as_training_does(recipe_dict, write_recipe, tmp_path, targets, expected):
    """It printed a plan and 'nothing was trained' while the same command without --dry-run stopped at once."""
    recipe_dict["model"]["lora"] = {"r": 4, "alpha": 8, "target_modules": targets}
    result = runner.invoke(app, ["run", str(write_recipe(recipe_dict)), "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"model.lora.target_modules: {expected}" in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_mistake_after_training_started_keeps_the_run(recipe_dict):
    """Only what a command wrote before any stage trained is removed; checkpoints are never deleted on an error."""
    from recipe_cli.config import validate_recipe
    from recipe_cli.errors import RecipeError
    from recipe_cli.lock import RunLock
    from recipe_cli.runs import RunFolder

    run = RunFolder(validate_recipe(recipe_dict))
    runs_dir = run.root.parent
    with pytest.raises(RecipeError), RunLock(run.root, "recipe sft"):
        run.save_recipe()
        raise RecipeError("a mistake before training")
    assert not runs_dir.exists()
    with pytest.raises(RecipeError), RunLock(run.root, "recipe sft"):
        run.record_training("sft", None)
        (run.stage_dir("sft") / "checkpoint-2").mkdir(parents=True)
        raise RecipeError("a mistake after sft started")
    assert (run.stage_dir("sft") / "checkpoint-2").is_dir() and run.record_path.is_file()


@pytest.mark.parametrize("record", ["{not json", '{"name": "tiny"}', "[]"], ids=["not-json", "no-stages", "a-list"])
def test_an_unreadable_run_record_is_one_line_exit_2(recipe_dict, write_recipe, tmp_path, record):
    path = write_recipe(recipe_dict)
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(record)
    for command in (["sft", path, "--resume"], ["run", path, "--overwrite"], ["eval", path]):
        result = runner.invoke(app, [str(a) for a in command])
        assert result.exit_code == 2, result.output + repr(result.exception)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "run.json" in lines[0] and "--overwrite" in lines[0], result.stderr
        assert "delete it, then train with --resume --force" in lines[0]  # the checkpoints need not be lost
    assert sorted(p.name for p in run_dir.iterdir() if p.name != ".lock") == ["run.json"]  # the lock stays


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        ("name: [unclosed\nmodel: {\n", "not valid YAML at line 2, column 6: expected ',' or ']', but got ':'"),
        (b"name: caf\xe9\n", "not UTF-8 text"),
    ],
    ids=["not-yaml", "not-utf8"],
)
def test_an_unreadable_recorded_recipe_is_one_line_exit_2(recipe_dict, write_recipe, tmp_path, saved, expected):
    path = write_recipe(recipe_dict)
    assert runner.invoke(app, ["sft", str(path)]).exit_code == 0  # a run whose record later commands read
    record = tmp_path / "runs" / "tiny" / "recipe.yaml"
    record.write_bytes(saved if isinstance(saved, bytes) else saved.encode())
    for command in (["grpo", path], ["eval", path]):
        result = runner.invoke(app, [str(a) for a in command])
        assert result.exit_code == 2, result.output + repr(result.exception)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"{record} cannot be read ({expected}); delete it" in lines[0], result.stderr


def test_a_base_model_folder_left_unfinished_is_built_again(recipe_dict, tmp_path):
    from recipe_cli.config import validate_recipe
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model

    recipe = validate_recipe(recipe_dict)
    base = RunFolder(recipe).stage_dir("base")
    base.mkdir(parents=True)
    (base / "tokenizer.json").write_text("cut off")  # a copy made without the rename, or by hand
    assert prepare_base_model(recipe, RunFolder(recipe)) == str(base)
    assert (base / "config.json").is_file() and not base.with_name("base.partial").exists()


# One case of each kind, run as a user runs them: a `python -m recipe_cli` process of its own, so that nothing
# the in-process runner hides (warnings printed at import, a traceback from a thread, the process's exit code)
# reaches the user. Cases that need this machine faked (FAKES) stay in-process.
IN_A_PROCESS = (
    "not-yaml",
    "unknown-top-key",
    "lr-not-number",
    "removed-trainer-key",
    "batch-not-divisible",
    "dataset-file-missing",
    "malformed-jsonl-line",
    "gsm8k-integer-answer",
    "model-without-weights",
    "runs-dir-is-a-file",
    "prompts-fill-the-model",
    "messages-without-assistant-validate",
)


@pytest.mark.slow
@pytest.mark.parametrize("case", IN_A_PROCESS)
def test_bad_input_in_a_process_of_its_own(recipe_dict, write_recipe, tmp_path, case):
    import os
    import subprocess
    import sys

    (name, command, change, expected) = next(c for c in CASES if c[0] == case)
    assert case not in FAKES
    (tmp_path / "x.txt").write_text("not data\n")
    raw = change(recipe_dict, tmp_path)
    path = write_recipe(raw if isinstance(raw, str) else recipe_dict)
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "recipe_cli", command, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    # Progress logged before the mistake showed (INFO records, their continuation lines indented) may precede it;
    # the mistake itself is one line, the last.
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("INFO ", "WARNING ", "         "))]
    assert len(said) == 1 and said[0] == lines[-1], result.stderr
    assert said[0].startswith("error: ") and expected in said[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists()
