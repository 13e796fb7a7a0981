"""Completions for evaluation: batched transformers generation, or vLLM when it is installed on a GPU.

transformers: prompts are sorted by length in tokens and generated in left-padded batches with
the KV cache (decoder-only models continue from the last position, so right padding would put
pad tokens between prompt and answer). Both backends stop at the tokenizer's eos, the generation
config's eos and the chat template's end-of-turn token, and decode with exactly the settings in
``Decoding``: the model's own ``generation_config`` (top_k, repetition penalty...) is overridden.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from recipe_cli.chat import end_of_turn_id
from recipe_cli.config import Recipe
from recipe_cli.errors import RecipeError
from recipe_cli.models import (
    adapter_base,
    adapter_config,
    is_adapter,
    load_causal_lm,
    load_tokenizer,
    model_revision,
    tokenizer_source,
)

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Decoding:
    """How completions are drawn: greedy (``temperature`` None), or ``num_samples`` seeded samples per prompt."""

    max_new_tokens: int
    num_samples: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature is None


@dataclass
class Generation:
    """Completions per prompt (in input order), whether each hit ``max_new_tokens``, and its length in tokens."""

    completions: list[list[str]]
    truncated: list[list[bool]]
    tokens: list[list[int]]
    seconds: float = 0.0
    stop_token_ids: list[int] = field(default_factory=list)


def vllm_installed() -> bool:
    """Whether vLLM can be imported (looked up without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def choose_backend(requested: str, *, vllm_available: bool, cuda: bool) -> str:
    """The generation backend for ``eval.backend``: ``auto`` is vLLM when it is installed and a GPU is visible.

    >>> choose_backend("auto", vllm_available=True, cuda=True), choose_backend("auto", vllm_available=True, cuda=False)
    ('vllm', 'transformers')
    >>> choose_backend("transformers", vllm_available=True, cuda=True)
    'transformers'
    """
    if requested == "vllm":
        if not vllm_available:
            raise RecipeError(
                "eval.backend: vllm is requested but not installed; `pip install vllm` on a machine with an "
                "NVIDIA GPU, or set `eval.backend: transformers` (or auto)"
            )
        if not cuda:
            raise RecipeError("eval.backend: vllm needs a CUDA GPU and none is visible; set `eval.backend: auto`")
        return "vllm"
    if requested == "auto":
        return "vllm" if vllm_available and cuda else "transformers"
    return requested


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Every token id that ends a completion: eos of the tokenizer and generation config, and the end of turn."""
    ids = {tokenizer.eos_token_id, end_of_turn_id(tokenizer)}
    ids.update(_as_list(getattr(generation_config, "eos_token_id", None)))
    return sorted(ids - {None})


def stop_at_end_of_turn(stage: str, model, tokenizer) -> None:
    """Make the model's generation config stop at every ``stop_token_ids``, as the eval does.

    TRL's GRPO stops (and cuts completions) at the generation config's and the tokenizer's eos only,
    and vLLM and the users of a pushed model read the saved generation config. A chat template can
    end a turn with another token than the eos (Qwen2.5's base models: ``<|im_end|>``, eos
    ``<|endoftext|>``); SFT targets end with the end of turn, so without it GRPO would sample past
    every answer and score what follows.
    """
    config = model.generation_config
    current = _as_list(config.eos_token_id)
    added = [token for token in stop_token_ids(tokenizer, config) if token not in current]
    if added:
        config.eos_token_id = current + added
        log.info(
            "%s: generation stops at %s too: the chat template ends a turn with it, the model's generation config "
            "did not stop there",
            stage,
            ", ".join(tokenizer.convert_ids_to_tokens(added)),
        )


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def prompt_ids_of(tokenizer, prompts: list[str] | list[list[int]]) -> list[list[int]]:
    """Prompts as token ids: given as ids (``recipe_cli.chat.prompt_token_ids``), or rendered text with the
    special tokens it already holds."""
    if prompts and not isinstance(prompts[0], str):
        return [list(ids) for ids in prompts]
    return tokenizer(prompts, add_special_tokens=False)["input_ids"]


def generate_completions(
    model,
    tokenizer,
    prompts: list[str] | list[list[int]],
    decoding: Decoding,
    batch_size: int,
    progress: Progress | None = None,
) -> Generation:
    """Completions of prompts (rendered text or token ids) with transformers: length-sorted, left-padded
    batches of ``batch_size``.

    ``batch_size`` counts sequences, so a sampling batch holds ``batch_size // num_samples`` prompts.
    The tokens a batch's prompts share at the start (system prompt, template) go through the model
    once; the batch continues from copies of that cache.
    """
    import torch

    token_ids = prompt_ids_of(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(token_ids[i]))
    per_batch = max(1, batch_size // decoding.num_samples)
    stop = stop_token_ids(tokenizer, model.generation_config)
    n = decoding.num_samples
    result = Generation([[]] * len(prompts), [[]] * len(prompts), [[]] * len(prompts), stop_token_ids=stop)
    # exactly the decoding asked for, whatever the model's generation_config suggests (top_k, penalties...)
    options = {"temperature": None, "top_p": None, "top_k": None, "min_p": None, "typical_p": None}
    if not decoding.greedy:
        options.update(temperature=decoding.temperature, top_p=decoding.top_p)
    model.eval()
    if decoding.seed is not None:
        torch.manual_seed(decoding.seed)  # seeds CPU and every GPU: the same recipe samples the same completions
    started = time.perf_counter()
    for start in range(0, len(order), per_batch):
        batch = order[start : start + per_batch]
        ids = [token_ids[i] for i in batch]
        shared = shared_prefix_length(ids) if len(ids) * n > 1 else 0
        cache = _prefix_cache(model, ids[0][:shared], len(ids) * n) if shared else None
        if cache is None:
            shared = 0
        input_ids, attention_mask = _pad_after_prefix(ids, shared, tokenizer.pad_token_id)
        with torch.inference_mode():
            output = model.generate(
                # a prompt's samples sit together, as num_return_sequences would put them
                input_ids=torch.tensor(input_ids, device=model.device).repeat_interleave(n, dim=0),
                attention_mask=torch.tensor(attention_mask, device=model.device).repeat_interleave(n, dim=0),
                past_key_values=cache,
                do_sample=not decoding.greedy,
                max_new_tokens=decoding.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stop,
                repetition_penalty=1.0,
                **options,
            )
        new_tokens = output[:, len(input_ids[0]) :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        rows = new_tokens.tolist()
        for position, index in enumerate(batch):
            mine = range(position * n, (position + 1) * n)
            result.completions[index] = [texts[row] for row in mine]
            lengths_and_cuts = [_length_and_truncated(rows[row], stop) for row in mine]
            result.tokens[index] = [length for length, _ in lengths_and_cuts]
            result.truncated[index] = [cut for _, cut in lengths_and_cuts]
        if progress is not None:
            progress(len(batch) * n)
    result.seconds = time.perf_counter() - started
    return result


def shared_prefix_length(token_lists: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving each at least one token to generate from.

    >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 5]]), shared_prefix_length([[1, 2], [1, 2]])
    (2, 1)
    >>> shared_prefix_length([[7, 8], [9]])
    0
    """
    shortest = min(len(tokens) for tokens in token_lists)
    first = token_lists[0]
    length = 0
    while length < shortest - 1 and all(tokens[length] == first[length] for tokens in token_lists):
        length += 1
    return length


def _pad_after_prefix(ids: list[list[int]], shared: int, pad: int) -> tuple[list[list[int]], list[list[int]]]:
    """Rows laid out as shared prefix, left padding, rest of the prompt; and their attention masks.

    Positions come from the mask, so each prompt's tokens keep the positions they have unpadded.

    >>> _pad_after_prefix([[1, 2, 3], [1, 4]], shared=1, pad=0)
    ([[1, 2, 3], [1, 0, 4]], [[1, 1, 1], [1, 0, 1]])
    """
    width = max(len(tokens) for tokens in ids) - shared
    rows, masks = [], []
    for tokens in ids:
        rest = tokens[shared:]
        padding = width - len(rest)
        rows.append(tokens[:shared] + [pad] * padding + rest)
        masks.append([1] * shared + [0] * padding + [1] * len(rest))
    return rows, masks


def _prefix_cache(model, prefix: list[int], rows: int):
    """The KV cache of ``prefix``, computed once and copied for ``rows`` sequences; None where the cache is not plain.

    Only a cache of plain full-attention layers is copied (sliding-window and hybrid caches keep
    state this copy would get wrong); without one the batch is generated from scratch. The padding
    between prefix and prompt is only invisible to models that take positions from the attention
    mask, which ``generate`` does for models whose forward accepts ``position_ids``; others (ALiBi
    models such as MPT count positions by index) are generated from scratch too.
    """
    import torch
    from transformers import DynamicCache

    if "position_ids" not in inspect.signature(model.forward).parameters:
        return None
    with torch.inference_mode():
        cache = model(torch.tensor([prefix], device=model.device), use_cache=True).past_key_values
    layers = getattr(cache, "layers", None)
    if type(cache) is not DynamicCache or not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    copied = DynamicCache()
    for index, layer in enumerate(layers):
        keys = layer.keys.expand(rows, -1, -1, -1).contiguous()
        copied.update(keys, layer.values.expand(rows, -1, -1, -1).contiguous(), index)
    return copied


def _length_and_truncated(tokens: list[int], stop: list[int]) -> tuple[int, bool]:
    """Tokens generated up to and including the first stop token (the rest is padding), and whether none came.

    >>> _length_and_truncated([5, 6, 2, 2, 2], stop=[2]), _length_and_truncated([5, 6, 7], stop=[2])
    ((3, False), (3, True))
    """
    for position, token in enumerate(tokens):
        if token in stop:
            return position + 1, False
    return len(tokens), True


def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, progress=None):
    """Greedy completions for rendered prompts, in input order, and whether each reached ``max_new_tokens``."""
    generation = generate_completions(model, tokenizer, prompts, Decoding(max_new_tokens), batch_size, progress)
    return [c[0] for c in generation.completions], [t[0] for t in generation.truncated]


class TransformersEngine:
    """A checkpoint loaded with transformers (a LoRA adapter merged into its base in memory)."""

    name = "transformers"

    def __init__(self, path: str, recipe: Recipe):
        import torch

        self.tokenizer = load_tokenizer(path, recipe.model)
        self.model = load_causal_lm(path, recipe.model, merge=True)
        if torch.cuda.is_available():
            self.model = self.model.to("cuda")
        self.device = str(self.model.device)
        self.dtype = str(self.model.dtype).removeprefix("torch.")

    def generate(self, prompts: list[str], decoding: Decoding, batch_size: int, progress=None) -> Generation:
        return generate_completions(self.model, self.tokenizer, prompts, decoding, batch_size, progress)

    def close(self) -> None:
        self.model = None


class VLLMEngine:
    """A checkpoint served by vLLM on the GPU; a LoRA adapter is applied to its base per request."""

    name = "vllm"

    def __init__(self, path: str, recipe: Recipe):
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        from recipe_cli.precision import Machine, requested_dtype

        # checkpoints keep float32 master weights, and vLLM's own "auto" reads the dtype off their config:
        # generate in the compute dtype, as the transformers backend does (``model.dtype: auto`` resolved here)
        dtype = requested_dtype(recipe.model.dtype, Machine.here())
        self.tokenizer = load_tokenizer(path, recipe.model)
        adapter = is_adapter(path)
        base = adapter_base(path) if adapter else str(path)
        options = {"enable_lora": True, "max_lora_rank": _lora_rank(path)} if adapter else {}
        self.llm = LLM(
            model=base,
            revision=model_revision(base, recipe.model),
            tokenizer=tokenizer_source(path),
            tokenizer_revision=model_revision(tokenizer_source(path), recipe.model),
            dtype=dtype,
            seed=recipe.seed,
            trust_remote_code=recipe.model.trust_remote_code,
            **options,
        )
        self.lora = LoRARequest("checkpoint", 1, str(path)) if adapter else None
        self.device, self.dtype = "cuda", dtype

    def generate(self, prompts: list[str], decoding: Decoding, batch_size: int, progress=None) -> Generation:
        from vllm import SamplingParams

        stop = stop_token_ids(self.tokenizer)
        params = SamplingParams(
            n=decoding.num_samples,
            temperature=0.0 if decoding.greedy else decoding.temperature,
            top_p=1.0 if decoding.greedy else decoding.top_p,
            max_tokens=decoding.max_new_tokens,
            seed=decoding.seed,
            stop_token_ids=stop,
            skip_special_tokens=True,
        )
        encoded = prompt_ids_of(self.tokenizer, prompts)  # the same token ids the transformers backend uses
        started = time.perf_counter()
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in encoded], params, lora_request=self.lora, use_tqdm=False
        )
        seconds = time.perf_counter() - started
        if progress is not None:
            progress(len(prompts) * decoding.num_samples)
        return Generation(
            completions=[[o.text for o in out.outputs] for out in outputs],
            truncated=[[o.finish_reason == "length" for o in out.outputs] for out in outputs],
            tokens=[[len(o.token_ids) for o in out.outputs] for out in outputs],
            seconds=seconds,
            stop_token_ids=stop,
        )

    def close(self) -> None:
        self.llm = None  # vLLM shuts its engine down, and gives its share of the GPU back, once unreferenced


def _lora_rank(path: str) -> int:
    """The adapter's rank, rounded up to a ``max_lora_rank`` vLLM accepts."""
    rank = int(adapter_config(path)["r"])
    return next((size for size in (8, 16, 32, 64, 128, 256, 320, 512) if size >= rank), rank)


def load_engine(requested: str, path: str, recipe: Recipe):
    """The checkpoint at ``path`` loaded for generation with the ``requested`` backend (``auto``, ``vllm``,
    ``transformers``: see ``choose_backend``); ``close()`` lets it go."""
    import torch

    backend = choose_backend(requested, vllm_available=vllm_installed(), cuda=torch.cuda.is_available())
    engine = VLLMEngine if backend == "vllm" else TransformersEngine
    return engine(path, recipe)


@contextmanager
def open_engine(recipe: Recipe, path: str):
    """The checkpoint at ``path`` loaded with the eval's backend, for every eval set; its memory is given back
    on leaving, before the next checkpoint's engine or the next stage loads (vLLM takes most of the GPU)."""
    from recipe_cli.models import free_model_memory

    engine = load_engine(recipe.eval.backend, path, recipe)
    try:
        yield engine
    finally:
        engine.close()
        del engine
        free_model_memory()
