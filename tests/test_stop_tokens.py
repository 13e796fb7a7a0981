"""Generation stops where SFT taught the model to stop: at the chat template's end of turn, in every stage.

The model here is shaped like Qwen2.5's base models (Qwen/Qwen2.5-0.5B): a Qwen2 architecture and a
byte-level BPE with Qwen2's pre-tokenizer (``scripts/check_real_size.py`` builds both), a ChatML
template that ends each turn with ``<|im_end|>``, and a tokenizer, config and generation config
whose eos is ``<|endoftext|>``. SFT targets end with ``<|im_end|>``; a GRPO that stopped only at
``<|endoftext|>`` would sample past the end of every answer, and its rewards would score the
tokens after it, while the eval (which stops at the end of turn) reads the answer alone.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from recipe_cli.config import validate_recipe
from recipe_cli.synthetic import corpus_text
from tests.conftest import REPO

TINY_QWEN2 = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}


@pytest.fixture(scope="module")
def qwen_base_model(tmp_path_factory) -> str:
    """A tiny Qwen2.5-base-shaped model folder: eos ``<|endoftext|>``, turns ended by ``<|im_end|>``."""
    from transformers import GenerationConfig

    spec = importlib.util.spec_from_file_location("check_real_size", REPO / "scripts" / "check_real_size.py")
    real_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_size)
    folder = tmp_path_factory.mktemp("qwen") / "qwen2.5-base-shaped"
    tokenizer = real_size.build_tokenizer(folder, corpus_text()[:400] + [real_size.QWEN_CHATML])
    real_size.build_model(folder, tokenizer, shape=TINY_QWEN2)
    tokenizer.eos_token = "<|endoftext|>"  # as Qwen2.5-0.5B ships: eos and pad both <|endoftext|>
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.save_pretrained(folder)
    eos = tokenizer.eos_token_id
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "eos_token_id": eos}))
    GenerationConfig(bos_token_id=eos, eos_token_id=eos, do_sample=False).save_pretrained(folder)
    return str(folder)


def test_the_fixture_ends_turns_with_another_token_than_eos(qwen_base_model):
    from transformers import AutoTokenizer

    from recipe_cli.chat import end_of_turn_id

    tokenizer = AutoTokenizer.from_pretrained(qwen_base_model)
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer.eos_token == "<|endoftext|>"
    assert end_of_turn_id(tokenizer) == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_grpo_stops_at_the_end_of_turn(qwen_base_model, recipe_dict):
    from transformers import AutoTokenizer

    from recipe_cli.grpo import build_grpo_trainer
    from recipe_cli.resume import StageStart

    recipe_dict["model"] = {"path": qwen_base_model}
    del recipe_dict["sft"]
    built = build_grpo_trainer(validate_recipe(recipe_dict), StageStart("grpo"))
    tokenizer = AutoTokenizer.from_pretrained(qwen_base_model)
    stops = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id}
    assert stops <= set(built.trainer.eos_token_ids)  # where TRL cuts completions and masks the loss
    assert stops <= set(built.trainer.generation_config.eos_token_id)  # where generation stops


def test_the_sft_checkpoint_stops_at_the_end_of_turn(qwen_base_model, recipe_dict, tmp_path):
    """The saved generation config stops at ``<|im_end|>``: GRPO's vLLM server and users of a pushed model read it."""
    from transformers import AutoTokenizer, GenerationConfig

    from recipe_cli.resume import StageStart
    from recipe_cli.sft import build_sft_trainer

    recipe_dict["model"] = {"path": qwen_base_model}
    built = build_sft_trainer(validate_recipe(recipe_dict), StageStart("sft"))
    built.trainer.save_model(str(tmp_path / "sft"))  # as the stage saves its output
    tokenizer = AutoTokenizer.from_pretrained(qwen_base_model)
    saved = GenerationConfig.from_pretrained(tmp_path / "sft").eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in saved and tokenizer.eos_token_id in saved


def test_vllm_stops_at_the_end_of_turn_of_the_model_it_loads(qwen_base_model, recipe_dict):
    """vLLM reads its stops from the starting model's folder, not from this process: GRPO passes them."""
    from transformers import AutoTokenizer

    from recipe_cli.grpo import vllm_stop_settings

    tokenizer = AutoTokenizer.from_pretrained(qwen_base_model)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    recipe_dict["model"] = {"path": qwen_base_model}
    assert vllm_stop_settings(validate_recipe(recipe_dict), tokenizer) == {}  # transformers generation: see above
    recipe_dict["grpo"]["trainer"].update(use_vllm=True, generation_kwargs={"stop_token_ids": [7], "min_tokens": 2})
    kwargs = vllm_stop_settings(validate_recipe(recipe_dict), tokenizer)["generation_kwargs"]
    assert kwargs == {"min_tokens": 2, "stop_token_ids": sorted({7, end_of_turn, tokenizer.eos_token_id})}


def test_a_merged_adapter_stops_at_the_end_of_turn(qwen_base_model, recipe_dict, tmp_path):
    """push.merge_lora saves the base model's generation config, which stops at its eos only."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from recipe_cli.push import merge_adapter

    tokenizer = AutoTokenizer.from_pretrained(qwen_base_model)
    adapter = tmp_path / "adapter"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(qwen_base_model), LoraConfig(r=2))
    model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    recipe_dict["model"] = {"path": qwen_base_model, "lora": {"r": 2}}
    merged = merge_adapter(validate_recipe(recipe_dict), adapter, tmp_path / "merged")
    saved = GenerationConfig.from_pretrained(merged).eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in saved and tokenizer.eos_token_id in saved


def test_vllm_stops_when_the_recipe_leaves_its_stop_ids_null(qwen_base_model, recipe_dict):
    """`stop_token_ids: null` is vLLM's own default (no extra stops), not a list to add to."""
    from transformers import AutoTokenizer

    from recipe_cli.grpo import vllm_stop_settings

    tokenizer = AutoTokenizer.from_pretrained(qwen_base_model)
    recipe_dict["model"] = {"path": qwen_base_model}
    recipe_dict["grpo"]["trainer"].update(use_vllm=True, generation_kwargs={"stop_token_ids": None})
    kwargs = vllm_stop_settings(validate_recipe(recipe_dict), tokenizer)["generation_kwargs"]
    assert kwargs == {"stop_token_ids": sorted({tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id})}
