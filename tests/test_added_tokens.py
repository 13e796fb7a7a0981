"""Tokens added to a model's tokenizer (rows at the mean of the embeddings) must train under LoRA."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import ModelSettings
from recipe_cli.models import load_causal_lm, untrained_token_ids
from recipe_cli.tiny_model import build_tiny_model

NEW_END = "<|eot|>"


def save_with_added_token(tmp_path, tied: bool = True):
    """The tiny model with a new end-of-turn special token, embeddings resized as transformers does (mean rows);
    ``tied=False`` gives the output layer its own weight (larger models than the tiny one do not tie them)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = build_tiny_model(
        tmp_path / "base", hidden_size=32, num_layers=2, num_heads=2, vocab_size=400, max_length=256, seed=0
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": [NEW_END]})
    tokenizer.chat_template = tokenizer.chat_template.replace("<|im_end|>", NEW_END)
    tokenizer.eos_token = NEW_END
    model.resize_token_embeddings(len(tokenizer))
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    if not tied:
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
        model.config.tie_word_embeddings = False
    folder = tmp_path / "user"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, tokenizer.convert_tokens_to_ids(NEW_END)


def test_untrained_rows_are_the_added_ones(tmp_path):
    from transformers import AutoModelForCausalLM

    folder, new = save_with_added_token(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(folder)
    pad = model.config.pad_token_id  # its row is zero: the embedding's padding_idx, never trained
    assert untrained_token_ids(model, range(new + 1)) == sorted([pad, new])
    assert untrained_token_ids(model, set(range(new)) - {pad}) == []


@pytest.mark.parametrize(("stage", "tied"), [("sft", True), ("sft", False), ("grpo", True)])
def test_lora_trains_the_rows_of_added_tokens(recipe_dict, write_recipe, tmp_path, stage, tied):
    """The added end-of-turn token ends every SFT target and every GRPO completion: a frozen mean row (LoRA leaves
    the embeddings frozen) scores the mean logit, so the model could never end a completion."""
    folder, new = save_with_added_token(tmp_path, tied)
    recipe_dict["model"] = {"path": str(folder), "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    recipe_dict["sft"]["trainer"]["learning_rate"] = 1.0e-2
    for other in {"sft", "grpo"} - {stage}:
        del recipe_dict[other]
    del recipe_dict["eval"]
    result = CliRunner().invoke(app, [stage, str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    output = tmp_path / "runs" / "tiny" / stage
    saved = load_file(output / "adapter_model.safetensors")
    assert json.loads((output / "adapter_config.json").read_text())["modules_to_save"]
    before = load_file(folder / "model.safetensors")
    for layer in ("model.embed_tokens.weight", "lm_head.weight"):
        trained = saved.get(f"base_model.model.{layer}")
        assert trained is not None, f"the adapter holds no {layer}: {sorted(saved)}"
        assert not torch.equal(trained[new], before.get(layer, before["model.embed_tokens.weight"])[new]), layer
    if tied:
        assert torch.equal(
            saved["base_model.model.model.embed_tokens.weight"], saved["base_model.model.lm_head.weight"]
        )

    # what the eval and push.merge_lora load: the adapter merged into its base computes as the adapter does
    settings = ModelSettings(path=str(folder))
    ids = torch.tensor([[5, 17, new, 30, new]])
    with torch.no_grad():
        merged = load_causal_lm(output, settings, merge=True)(ids).logits
        adapted = load_causal_lm(output, settings)(ids).logits
    assert torch.allclose(merged, adapted, atol=1e-5)


def test_an_adapter_that_keeps_added_rows_frozen_is_named(recipe_dict, write_recipe, tmp_path, caplog):
    """An adapter trained further keeps what it trains: one saved without the embeddings cannot learn the added
    token, and the stage says so instead of training on silently."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = save_with_added_token(tmp_path)
    adapter = tmp_path / "adapter"
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(folder), config).save_pretrained(adapter)
    AutoTokenizer.from_pretrained(folder).save_pretrained(adapter)
    recipe_dict["model"] = {"path": str(adapter)}
    del recipe_dict["grpo"], recipe_dict["eval"]
    result = CliRunner().invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"'{NEW_END}' were never trained" in caplog.text
    assert f"the LoRA adapter in {adapter} keeps them frozen" in caplog.text


@pytest.mark.parametrize("tied", [True, False])
def test_embeddings_trained_beside_an_adapter_on_a_16_bit_base_update_in_float32(
    recipe_dict, write_recipe, tmp_path, tied
):
    """The embeddings' trained copies were made in the base's bfloat16, where small updates round away: after a few
    steps at a fine-tuning learning rate most of their values had not moved. They train in float32, as the adapter."""
    folder, new = save_with_added_token(tmp_path, tied)
    recipe_dict["model"] = {"path": str(folder), "dtype": "bfloat16", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    recipe_dict["sft"]["trainer"].update(learning_rate=1.0e-5, max_steps=2)
    del recipe_dict["grpo"], recipe_dict["eval"]
    result = CliRunner().invoke(app, ["sft", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    saved = load_file(tmp_path / "runs" / "tiny" / "sft" / "adapter_model.safetensors")
    before = load_file(folder / "model.safetensors")
    for layer in ("model.embed_tokens.weight", "lm_head.weight"):
        trained = saved[f"base_model.model.{layer}"]
        base = before.get(layer, before["model.embed_tokens.weight"]).to(torch.bfloat16).float()
        moved = trained != base
        rows = moved.any(dim=1)  # the rows a gradient reached (an input row: its token was in a batch)
        assert trained.dtype == torch.float32 and rows.sum() >= 10, layer
        assert moved[rows].float().mean() > 0.9, layer  # nearly every value of those rows moved, if by little
