"""Build a tiny randomly initialised chat model on disk, for the offline demo and the tests.

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the synthetic problems, with
digits split one per token (so arithmetic is learnable) and a ChatML chat template. The model
is a Llama-type decoder: transformers 5 rebuilds Qwen2 tokenizers from the model type on load,
which would change the ids of a locally trained tokenizer; a Llama model loads it as saved.
``<think>`` and ``<answer>`` tags are ordinary tokens, because TRL decodes completions with
``skip_special_tokens=True`` and special tags would never reach the rewards.
"""

from __future__ import annotations

from pathlib import Path

from recipe_cli.synthetic import corpus_text

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]


def build_tokenizer(vocab_size: int, extra_text: list[str] | None = None):
    """Train the demo tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_text() + list(extra_text or []), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )
    fast.add_tokens(TAG_TOKENS)
    return fast


def build_tiny_model(
    output_dir: str | Path,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    vocab_size: int,
    max_length: int,
    seed: int,
    extra_text: list[str] | None = None,
) -> Path:
    """Write a tiny model and its tokenizer to ``output_dir``; the same seed gives the same weights."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    output_dir = Path(output_dir)
    tokenizer = build_tokenizer(vocab_size, extra_text)
    config = tiny_model_config(hidden_size, num_layers, num_heads, len(tokenizer), max_length, tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def tiny_model_config(
    hidden_size: int, num_layers: int, num_heads: int, vocab_size: int, max_length: int, tokenizer=None
):
    """The tiny model's LlamaConfig; without the tokenizer (a dry run) the vocabulary size is the requested one."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id if tokenizer is not None else None,
        pad_token_id=tokenizer.pad_token_id if tokenizer is not None else None,
    )
