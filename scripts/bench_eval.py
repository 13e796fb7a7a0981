"""Benchmark `recipe eval`'s generation against a naive one-prompt-at-a-time `model.generate` loop.

Usage: python scripts/bench_eval.py [--sft-steps 150] [--n 300] [--threads 1] [--recipe recipes/demo.yaml]

Builds the recipe's tiny model in a temporary run folder and fine-tunes it for a few SFT steps
first: an untrained model never writes the end-of-turn token, so every completion would run to
max_new_tokens, and batching would look better than it is (a batch runs until its longest
completion ends; one prompt at a time stops each as soon as it ends). Then both paths generate
greedy completions for the same N eval prompts with the recipe's eval settings (demo: batch 150,
max_new_tokens 40) and the script prints samples/s, tokens/s (generated tokens up to and
including the stop token), the speed-up, and whether both wrote the same completions.

One torch thread by default: on a machine whose cores other processes share, torch's
multi-threaded kernels wait on each other and the one-prompt-at-a-time loop (many tiny
operations) slowed 5-30x in our runs, which would flatter batching; one thread measures both
paths steadily. ``--threads 0`` keeps torch's default. Takes about 100 s on one core.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's recipe_cli, wherever run from

from recipe_cli.config import load_recipe  # noqa: E402
from recipe_cli.data import load_examples, prompt_rows  # noqa: E402
from recipe_cli.generation import Decoding, generate_completions, stop_token_ids  # noqa: E402


def generate_one_at_a_time(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[list[str], int]:
    """The naive loop: one `model.generate` call per prompt; completions and generated tokens."""
    import torch

    stop = stop_token_ids(tokenizer, model.generation_config)
    completions, tokens = [], 0
    for prompt in prompts:
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=stop,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=1.0,  # the same plain greedy decoding recipe eval uses, whatever
                top_k=None,  # the model's generation_config suggests
                temperature=None,
                top_p=None,
            )
        new = output[0, encoded["input_ids"].shape[1] :]
        tokens += len(new)  # generation stops right after a stop token: nothing to strip
        completions.append(tokenizer.decode(new, skip_special_tokens=True))
    return completions, tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/demo.yaml")
    parser.add_argument("--sft-steps", type=int, default=150, help="SFT steps before measuring (0: untrained)")
    parser.add_argument("--n", type=int, default=300, help="eval prompts, the same for both paths")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0: torch's default")
    args = parser.parse_args()

    import datasets
    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.basicConfig(level=logging.WARNING)
    from recipe_cli.models import load_causal_lm, load_tokenizer
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model

    with tempfile.TemporaryDirectory() as folder:
        steps = max(args.sft_steps, 1)
        overrides = [f"runs_dir={folder}", f"sft.trainer.max_steps={steps}"]
        overrides += ["sft.trainer.logging_steps=1000", "sft.trainer.disable_tqdm=true"]
        recipe = load_recipe(args.recipe, overrides)
        started = time.perf_counter()
        path = prepare_base_model(recipe, RunFolder(recipe))
        if args.sft_steps > 0:
            from recipe_cli.sft import run_sft

            path = str(run_sft(recipe))
        print(f"model: {args.sft_steps} SFT steps in {time.perf_counter() - started:.0f} s ({path})")

        tokenizer, model = load_tokenizer(path, recipe.model), load_causal_lm(path, recipe.model)
        model.eval()
        rows = load_examples(recipe.eval.dataset, recipe.seed)[: args.n]
        prompts = [
            tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
            for row in prompt_rows(rows, recipe.prompt)
        ]
        settings = recipe.eval
        print(
            f"{len(prompts)} prompts, greedy, max_new_tokens {settings.max_new_tokens}, batch {settings.batch_size}, "
            f"{torch.get_num_threads()} torch threads"
        )
        generate_one_at_a_time(model, tokenizer, prompts[:2], settings.max_new_tokens)  # warm-up, not timed

        started = time.perf_counter()
        greedy = Decoding(settings.max_new_tokens)
        batched = generate_completions(model, tokenizer, prompts, greedy, settings.batch_size)
        batched_seconds = time.perf_counter() - started
        batched_tokens = sum(t[0] for t in batched.tokens)

        started = time.perf_counter()
        naive, naive_tokens = generate_one_at_a_time(model, tokenizer, prompts, settings.max_new_tokens)
        naive_seconds = time.perf_counter() - started

    same = sum(b[0] == s for b, s in zip(batched.completions, naive, strict=True))
    print(f"{'':<22} {'seconds':>8} {'samples/s':>10} {'tokens/s':>10} {'tokens/sample':>14}")
    for name, seconds, tokens in (
        ("one prompt at a time", naive_seconds, naive_tokens),
        ("recipe eval (batched)", batched_seconds, batched_tokens),
    ):
        print(
            f"{name:<22} {seconds:>8.2f} {len(prompts) / seconds:>10.1f} {tokens / seconds:>10.0f} "
            f"{tokens / len(prompts):>14.1f}"
        )
    print(
        f"speed-up: {naive_seconds / batched_seconds:.1f}x samples/s, "
        f"{(batched_tokens / batched_seconds) / (naive_tokens / naive_seconds):.1f}x tokens/s; "
        f"same completions: {same}/{len(prompts)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
