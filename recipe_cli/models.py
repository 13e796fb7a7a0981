"""Loading models and tokenizers for training and evaluation, LoRA adapters included."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from recipe_cli.config import (
    HUB_ID,
    LoraSettings,
    ModelSettings,
    holds_tokenizer,
    is_local_path,
    no_tokenizer,
    unreadable_weights,
)
from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)


def is_adapter(path: str | Path) -> bool:
    """Whether ``path`` holds a LoRA adapter (peft) rather than full weights."""
    return (Path(path) / "adapter_config.json").is_file()


def adapter_config(path: str | Path) -> dict:
    """The settings peft saved with the LoRA adapter in ``path`` (``adapter_config.json``: r, lora_alpha, base...)."""
    return json.loads((Path(path) / "adapter_config.json").read_text())


def adapter_base(path: str | Path) -> str:
    """The base model a LoRA adapter was trained on, as recorded by peft."""
    config = adapter_config(path)
    base = config.get("base_model_name_or_path")
    if not base:
        raise RecipeError(f"the LoRA adapter in '{path}' does not name its base model; cannot load it")
    if not Path(base).expanduser().exists() and (is_local_path(base) or not HUB_ID.match(base)):
        raise RecipeError(
            f"the LoRA adapter in '{path}' was trained on '{base}', which does not exist; restore that base model "
            f"or point base_model_name_or_path in {Path(path) / 'adapter_config.json'} at it"
        )
    return base


def warn_lora_unused(path: str | Path, settings: ModelSettings, stage: str) -> None:
    """An adapter trained further keeps its own rank, alpha, dropout and targets: say so when ``model.lora`` differs."""
    if settings.lora is None:
        return
    saved = adapter_config(path)
    ours = {"r": settings.lora.r, "lora_alpha": settings.lora.alpha, "lora_dropout": settings.lora.dropout}
    differ = [f"{key} {saved.get(key)} (model.lora: {value})" for key, value in ours.items() if saved.get(key) != value]
    targets, kept = settings.lora.target_modules, saved.get("target_modules")
    if isinstance(kept, list):  # peft saves the set of names it matched; all-linear it resolves on the model only
        kept = sorted(kept)
    if targets != "all-linear" and (sorted(targets) if isinstance(targets, list) else targets) != kept:
        differ.append(f"target_modules {kept} (model.lora: {targets})")
    if differ:
        log.warning(
            "%s trains the LoRA adapter in %s further with its own settings: %s", stage, path, ", ".join(differ)
        )


def resolve_dtype(name: str):
    """The torch dtype for ``model.dtype``; ``auto`` is bfloat16 on a GPU that supports it, else float32."""
    import torch

    from recipe_cli.precision import Machine, requested_dtype

    return getattr(torch, requested_dtype(name, Machine.here()))


def load_tokenizer(path: str | Path, settings: ModelSettings):
    """The tokenizer saved with a model or adapter (an adapter saved without one: its base model's), with
    ``model.chat_template`` when the recipe sets one; pad falls back to eos (decoder-only batches)."""
    from transformers import AutoTokenizer

    path = tokenizer_source(path)
    folder = Path(path).expanduser()
    if folder.is_dir() and not is_adapter(folder) and not holds_tokenizer(folder):
        # transformers would try to build one from the config and fail with a conversion traceback
        raise RecipeError(no_tokenizer(f"'{path}'"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), revision=model_revision(path, settings), trust_remote_code=settings.trust_remote_code
        )
    except OSError as error:
        raise RecipeError(f"cannot load the tokenizer of '{path}': {str(error).splitlines()[0]}") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if settings.chat_template is not None:
        tokenizer.chat_template = chat_template_text(settings.chat_template)
    return tokenizer


def tokenizer_source(path: str | Path) -> str:
    """Where the tokenizer of ``path`` is: the folder itself, or the base model of an adapter saved without one
    (peft's ``save_pretrained`` saves the adapter alone, and transformers cannot build a tokenizer from it)."""
    folder = Path(path).expanduser()
    if folder.is_dir() and is_adapter(folder) and not holds_tokenizer(folder):
        return adapter_base(folder)
    return str(path)


def chat_template_text(value: str) -> str:
    """``model.chat_template``: the Jinja text itself, or the contents of the ``.jinja`` file it names."""
    if value.endswith((".jinja", ".j2")) and "{" not in value:
        path = Path(value).expanduser()
        if not path.is_file():
            raise RecipeError(f"model.chat_template: '{value}' does not exist; give a .jinja file or the template text")
        return path.read_text()
    return value


def model_revision(path: str | Path, settings: ModelSettings) -> str | None:
    """``model.revision`` for the recipe's own Hub model; None for any other path (a local checkpoint)."""
    return settings.revision if str(path) == settings.path else None


def load_causal_lm(
    path: str | Path,
    settings: ModelSettings,
    trainable_adapter: bool = False,
    merge: bool = False,
    dtype: str | None = None,
):
    """Load full weights, or a LoRA adapter on its base (trainable, or merged for fast generation).

    ``dtype`` is the weights' dtype (see ``recipe_cli.precision``): by default ``model.dtype``, the
    compute precision, as generation uses it; training full weights passes float32.
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype) if dtype else resolve_dtype(settings.dtype)
    kwargs = {"dtype": torch_dtype, "trust_remote_code": settings.trust_remote_code}
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    adapter = is_adapter(path)
    base = adapter_base(path) if adapter else str(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, revision=model_revision(base, settings), **kwargs)
    except OSError as error:
        raise RecipeError(f"cannot load the model '{base}': {str(error).splitlines()[0]}") from error
    except SafetensorError as error:  # a weights file cut off (a copy interrupted, a full disk)
        folder = Path(base).expanduser()
        problem = unreadable_weights(folder) if folder.is_dir() else None
        raise RecipeError(
            f"cannot load the model '{base}': "
            + (problem or f"a weights file is unreadable ({str(error).splitlines()[0]}); copy the model folder again")
        ) from error
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable_adapter)
        if merge:
            untie_adapted_embeddings(model)
            model = model.merge_and_unload()
    return model


def untie_adapted_embeddings(model) -> None:
    """Give the output layer its own copy of the input embeddings when a LoRA adapter changes tied input embeddings.

    With ``tie_word_embeddings`` the two layers share one weight, but peft adapts only the input
    lookup: the output layer of the adapted model (and TRL's log-probabilities, which read its
    weight) keep the base weight. Merging writes the change into the shared weight and so into
    the output layer too, which yields another model; an untied copy keeps the trained one.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = model.get_base_model()
    inputs, outputs = base.get_input_embeddings(), base.get_output_embeddings()
    if not isinstance(inputs, BaseTunerLayer) or outputs is None:
        return
    if outputs.weight is not inputs.get_base_layer().weight:
        return
    outputs.weight = torch.nn.Parameter(outputs.weight.detach().clone(), requires_grad=False)
    for config in {id(c): c for c in (base.config, base.config.get_text_config())}.values():
        config.tie_word_embeddings = False  # saved so: a reload must not tie them again


def check_lora_targets(path: str | Path, settings: ModelSettings) -> None:
    """``model.lora.target_modules`` against the modules of the model at ``path`` (built on the meta device, no
    weights): peft refuses targets that match nothing only when the trainer is built, after the data is prepared,
    and passes over a listed name that matches nothing when another one matches."""
    from transformers import AutoConfig

    lora = settings.lora
    if lora is None or lora.target_modules == "all-linear" or is_adapter(path):
        return
    trust = settings.trust_remote_code
    try:
        config = AutoConfig.from_pretrained(str(path), revision=model_revision(path, settings), trust_remote_code=trust)
    except (OSError, ValueError):
        return  # loading the model says what is wrong with it
    check_lora_targets_of(config, settings, str(path))


def lora_targets(targets: str | list[str], name: str) -> bool:
    """Whether peft adapts the module ``name`` for ``target_modules``: a string is a regular expression matched
    against the whole name, a list holds module names or their ends.

    >>> lora_targets(["q_proj"], "model.layers.0.self_attn.q_proj"), lora_targets(["q_proj"], "model.xq_proj")
    (True, False)
    >>> lora_targets(r".*\\.(q|v)_proj", "model.layers.0.self_attn.v_proj")
    True
    """
    import re

    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == target or name.endswith(f".{target}") for target in targets)


def check_lora_targets_of(config, settings: ModelSettings, where: str) -> None:
    """``check_lora_targets`` on a model config (what ``--dry-run`` reads); ``where`` names the model."""
    import torch
    from transformers import AutoModelForCausalLM

    lora = settings.lora
    if lora is None or lora.target_modules == "all-linear":
        return
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=settings.trust_remote_code)
    modules = dict(model.named_modules())
    targets = lora.target_modules
    listed = [targets] if isinstance(targets, str) else targets

    def matches(target: str, name: str) -> bool:
        return lora_targets(target if isinstance(targets, str) else [target], name)

    missing = [t for t in listed if not any(matches(t, name) for name in modules)]
    if missing:
        linear = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in modules.items()
                if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
            }
        )
        raise RecipeError(
            f"model.lora.target_modules: {', '.join(missing)} {'matches' if len(missing) == 1 else 'match'} no "
            f"module of {where}; its linear layers are "
            f"{', '.join(linear)} (or give all-linear)"
        )
    # TRL computes the log-probabilities from the output layer's weight directly, so it refuses an adapter there
    # (SFTTrainer and GRPOTrainer, when built: after the data was prepared)
    output = model.get_output_embeddings()
    head = next((name for name, module in modules.items() if output is not None and module is output), None)
    hit = next((t for t in listed if head is not None and matches(t, head)), None)
    if hit is not None:
        what = f"{hit} is the output layer" if hit == head else f"{hit} matches {head}, the output layer"
        raise RecipeError(
            f"model.lora.target_modules: {what}, whose adapter TRL would never train (it reads the output "
            "layer's weight directly); leave it out"
        )


def lora_config(settings: LoraSettings, embeddings_of=None):
    """peft's LoraConfig for a causal LM from the recipe's ``model.lora``; with ``embeddings_of`` (the model), its
    input and output embeddings train in full beside the adapter, kept tied when the model ties them."""
    from peft import LoraConfig

    names, tied = None, False
    if embeddings_of is not None:
        inputs, outputs = embeddings_of.get_input_embeddings(), embeddings_of.get_output_embeddings()
        layers = [layer for layer in (inputs, outputs) if layer is not None]
        names = [name for name, module in embeddings_of.named_modules() if any(module is x for x in layers)]
        tied = outputs is not None and outputs.weight is inputs.weight
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        modules_to_save=names,
        ensure_weight_tying=tied,  # one trained copy for both layers, as the base shares one weight
        task_type="CAUSAL_LM",
    )


def train_full_layers_in_float32(model) -> None:
    """Keep the layers a LoRA adapter trains in full (peft's ``modules_to_save``: the embeddings, when tokens were
    added) in float32, as peft keeps the adapter itself: copied in a 16-bit base's dtype, they trained in pure
    bfloat16, whose updates round away (30 SFT steps at 1e-5 changed 16% of their values; in float32, all). They
    compute at the base's dtype at their edges: inputs in float32, outputs back in the base's dtype."""
    import torch
    from peft.utils import ModulesToSaveWrapper

    def inputs_float32(module, args):
        return tuple(arg.float() if torch.is_tensor(arg) and arg.is_floating_point() else arg for arg in args)

    for wrapper in model.modules():
        if not isinstance(wrapper, ModulesToSaveWrapper):
            continue
        dtype = next(wrapper.original_module.parameters()).dtype
        if dtype == torch.float32:
            continue
        for layer in wrapper.modules_to_save.values():
            layer.float()  # in place: a copy tied to another (the output layer to the input's) stays tied
            layer.register_forward_pre_hook(inputs_float32)
            layer.register_forward_hook(lambda module, args, output, dtype=dtype: output.to(dtype))


def needs_embeddings_trained(stage: str, model, tokenizer, token_ids, adapter: str | Path | None = None) -> bool:
    """Whether a new LoRA adapter must train the embedding layers too: the stage's tokens include some whose rows
    were never trained (``untrained_token_ids``), which the frozen embeddings would keep the model from ever
    writing. An ``adapter`` trained further keeps what it trains: a warning says when that leaves such rows frozen.
    """
    ids = untrained_token_ids(model, token_ids)
    if not ids:
        return False
    tokens = ", ".join(repr(token) for token in tokenizer.convert_ids_to_tokens(ids))
    if adapter is not None:
        log.warning(
            "%s: the embeddings of %s were never trained (tokens added to the tokenizer) and the LoRA adapter in %s "
            "keeps them frozen, so the model cannot learn to write them; start from its base model with "
            "model.lora, which trains the embeddings too",
            stage,
            tokens,
            adapter,
        )
        return False
    log.warning(
        "%s: the embeddings of %s were never trained (tokens added to the tokenizer): the LoRA adapter trains "
        "the embedding layers in full too, or the model could never learn to write them",
        stage,
        tokens,
    )
    return True


def untrained_token_ids(model, token_ids) -> list[int]:
    """The ids among ``token_ids`` whose input or output embedding row was never trained: at the mean of the rows
    (what ``resize_token_embeddings`` gives added tokens, up to a 1e-9 x covariance jitter) or all but zero.

    A LoRA adapter leaves the embeddings frozen, and a token whose output row is the mean row scores the mean
    logit, never the highest: the model could never write it (an added end-of-turn token: it never stops).
    """
    import torch

    rows = {}
    for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
        if layer is not None and id(layer.weight) not in rows:
            rows[id(layer.weight)] = layer.weight.detach().float()
    ids = sorted({int(i) for i in token_ids})
    untrained = set()
    for weight in rows.values():
        wanted = torch.tensor([i for i in ids if i < weight.shape[0]], dtype=torch.long)
        if not len(wanted):
            continue
        norms = weight.norm(dim=1)
        spread = (weight - weight.mean(0)).norm(dim=1)
        # 1e-3 of the typical row: trained rows are nowhere near; a mean-initialised row is ~3e-5 of the spread
        at_mean = spread[wanted] <= 1e-3 * spread.median()
        zero = norms[wanted] <= 1e-3 * norms.median()
        untrained.update(wanted[at_mean | zero].tolist())
    return sorted(untrained)


def free_model_memory() -> None:
    """Give back what a dropped model held (a finished trainer, an eval's engine), before the next one loads."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
