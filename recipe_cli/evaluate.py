"""Stage 3: greedy evaluation on the eval split, scored with the accuracy reward's answer checker.

Generation is batched and left-padded (decoder-only models continue from the last position, so
right padding would put pad tokens between prompt and answer), with prompts sorted by length so
each batch carries little padding. Results go to ``runs/<name>/eval/<label>.json`` (summary) and
``<label>.jsonl`` (one line per problem).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from recipe_cli.answers import score_completion
from recipe_cli.config import Recipe
from recipe_cli.data import load_examples, prompt_rows
from recipe_cli.models import is_adapter, load_causal_lm, load_tokenizer
from recipe_cli.rewards import format as format_reward
from recipe_cli.runs import RunFolder

log = logging.getLogger(__name__)


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, progress=None):
    """Greedy completions for rendered prompts, in input order; ``progress(n)`` is told of each batch."""
    import torch

    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    completions: list[str | None] = [None] * len(prompts)
    truncated = [False] * len(prompts)
    eos = {tokenizer.eos_token_id, *_as_list(getattr(model.generation_config, "eos_token_id", None))} - {None}
    model.eval()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos),
                repetition_penalty=1.0,  # plain greedy, whatever the model's generation_config suggests
                temperature=None,
                top_p=None,
                top_k=None,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for row, index in enumerate(batch):
            completions[index] = texts[row]
            truncated[index] = not any(token in eos for token in new_tokens[row].tolist())
        if progress is not None:
            progress(len(batch))
    return completions, truncated


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def evaluate_model(recipe: Recipe, model_path: str, label: str, limit: int | None = None, progress=None) -> dict:
    """Evaluate one checkpoint on the recipe's eval split; write and return its summary."""
    settings = recipe.eval
    rows = load_examples(settings.dataset, recipe.seed)
    if limit is not None:
        rows = rows[:limit]
    import torch

    tokenizer = load_tokenizer(model_path, recipe.model)
    model = load_causal_lm(model_path, recipe.model, merge=True)
    if torch.cuda.is_available():
        model = model.to("cuda")
    conversations = prompt_rows(rows, recipe.prompt)
    prompts = [
        tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        for row in conversations
    ]
    if progress is not None:
        progress.start(label, len(prompts))
    started = time.perf_counter()
    completions, truncated = generate_greedy(
        model, tokenizer, prompts, settings.max_new_tokens, settings.batch_size, progress.advance if progress else None
    )
    seconds = time.perf_counter() - started
    formats = format_reward(completions)
    samples = []
    for row, prompt, completion, cut, formatted in zip(rows, prompts, completions, truncated, formats, strict=True):
        extracted, correct = score_completion(completion, row["answer"])
        samples.append(
            {
                "prompt": prompt,
                "completion": completion,
                "extracted": extracted,
                "gold": row["answer"],
                "correct": bool(correct),
                "scorable": correct is not None,
                "format_ok": formatted == 1.0,
                "truncated": cut,
            }
        )
    n = len(samples)
    summary = {
        "label": label,
        "model": str(model_path),
        "lora": is_adapter(model_path),
        "dataset": settings.dataset.path or settings.dataset.adapter,
        "split": settings.dataset.split,
        "seed": recipe.seed,
        "n": n,
        "accuracy": sum(s["correct"] for s in samples) / n,
        "format_rate": sum(s["format_ok"] for s in samples) / n,
        "truncation_rate": sum(s["truncated"] for s in samples) / n,
        "unscorable": sum(not s["scorable"] for s in samples),
        "decoding": {"greedy": True, "max_new_tokens": settings.max_new_tokens, "batch_size": settings.batch_size},
        "seconds": round(seconds, 2),
        "samples_per_second": round(n / seconds, 2) if seconds else None,
    }
    write_results(RunFolder(recipe).eval_dir, label, summary, samples)
    return summary


def write_results(folder: Path, label: str, summary: dict, samples: list[dict]) -> None:
    """``<label>.json`` (summary) and ``<label>.jsonl`` (per sample), each written whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        (f"{label}.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)),
        (f"{label}.json", json.dumps(summary, indent=2) + "\n"),
    ):
        partial = folder / (name + ".tmp")
        partial.write_text(text)
        partial.replace(folder / name)


def read_summaries(recipe: Recipe) -> dict[str, dict]:
    """The eval summaries a run folder holds, by label."""
    folder = RunFolder(recipe).eval_dir
    if not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
