"""One `<think>` convention across SFT, GRPO and the eval, whatever the chat template does.

The templates here reproduce what DeepSeek-R1's distilled models ship: the generation prompt opens
`<think>`, and an assistant turn is rendered without its reasoning (`content.split('</think>')[-1]`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recipe_cli.chat import drops_reasoning, prefills_think, sft_token_ids, strip_prefilled_think, think_prefilled
from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.tiny_model import CHATML_TEMPLATE, build_tiny_model, build_tokenizer

runner = CliRunner()
PREFILL = CHATML_TEMPLATE.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'")
# DeepSeek-R1's way: an assistant turn keeps only what follows </think>
DROPS = CHATML_TEMPLATE.replace(
    "message['content'] + '<|im_end|>'",
    "(message['content'].split('</think>')[-1] if message['role'] == 'assistant' else message['content'])"
    " + '<|im_end|>'",
)
R1_LIKE = DROPS.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'")
MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]
COMPLETION = "<think>\n2 + 3 = 5\n</think>\n<answer>5</answer>"


def tokenizer_with(template: str):
    tokenizer = build_tokenizer(400)
    tokenizer.chat_template = template
    return tokenizer


@pytest.mark.parametrize(
    ("template", "prefills", "drops"),
    [(CHATML_TEMPLATE, False, False), (PREFILL, True, False), (DROPS, False, True), (R1_LIKE, True, True)],
    ids=["chatml", "prefill", "drops", "r1-like"],
)
def test_template_behaviours_are_detected(template, prefills, drops):
    tokenizer = tokenizer_with(template)
    assert prefills_think(tokenizer) is prefills
    assert drops_reasoning(tokenizer) is drops


@pytest.mark.parametrize(
    "template", [CHATML_TEMPLATE, PREFILL, DROPS, R1_LIKE], ids=["chatml", "prefill", "drops", "r1"]
)
def test_sft_targets_are_what_generation_continues_with(template):
    """Prompt (masked) + completion read exactly as the unprefilled conversation, reasoning included."""
    tokenizer = tokenizer_with(template)
    prefilled = prefills_think(tokenizer)
    ids, mask = sft_token_ids(
        tokenizer, MESSAGES, COMPLETION, prefilled=prefilled, end_id=tokenizer.convert_tokens_to_ids("<|im_end|>")
    )
    start = mask.index(1)
    prompt, target = tokenizer.decode(ids[:start]), tokenizer.decode(ids[start:])
    assert prompt == tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert "2 + 3 = 5" in target and target.endswith("<answer>5</answer><|im_end|>")  # the reasoning is trained on
    assert target.startswith("2 + 3") if prefilled else target.startswith("<think>\n")
    assert prompt + target == prompt.removesuffix("<think>\n") + COMPLETION + "<|im_end|>"


def test_strip_prefilled_think_keeps_an_unprefilled_completion():
    assert strip_prefilled_think("plain answer", "<think>\n") == "plain answer"


def test_the_recipe_can_say_completions_start_inside_think(recipe_dict):
    tokenizer = tokenizer_with(CHATML_TEMPLATE)
    assert think_prefilled(validate_recipe(recipe_dict), tokenizer) is False
    recipe_dict["grpo"]["rewards"][1]["params"] = {"think_prefilled": True}
    assert think_prefilled(validate_recipe(recipe_dict), tokenizer) is True


def test_grpo_rewards_and_eval_format_follow_the_template(recipe_dict):
    from recipe_cli.evaluate import _format_ok
    from recipe_cli.grpo import reward_functions

    recipe = validate_recipe(recipe_dict)
    tokenizer = tokenizer_with(R1_LIKE)
    fmt = reward_functions(recipe, tokenizer)[1]
    inside = "2 + 3 = 5\n</think>\n<answer>5</answer>"
    assert fmt(completions=[inside, COMPLETION]) == [1.0, 0.0]  # with the tag prefilled, a repeat is malformed
    prefilled = think_prefilled(recipe, tokenizer)
    assert _format_ok(inside, prefilled) and not _format_ok(COMPLETION, prefilled)


@pytest.fixture
def r1_like_model(tmp_path) -> str:
    folder = build_tiny_model(
        tmp_path / "r1-like", hidden_size=32, num_layers=2, num_heads=2, vocab_size=400, max_length=256, seed=3
    )
    (folder / "chat_template.jinja").write_text(R1_LIKE)
    return str(folder)


@pytest.mark.slow
def test_a_deepseek_like_model_trains_on_its_reasoning_end_to_end(recipe_dict, write_recipe, tmp_path, r1_like_model):
    recipe_dict["model"] = {"path": r1_like_model}
    recipe_dict["sft"]["trainer"]["max_steps"] = 2
    recipe_dict["grpo"]["trainer"]["max_steps"] = 1
    recipe_dict["eval"]["dataset"]["max_samples"] = 2
    path = write_recipe(recipe_dict)
    dry = runner.invoke(app, ["sft", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "SFT targets leave out the opening tag" in dry.output
    assert "so the reasoning is trained on" in dry.output
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "runs" / "tiny" / "eval" / "grpo.json").read_text())
    assert summary["think_prefilled"] is True


R1_ZERO = (
    "A conversation between User and Assistant. The Assistant thinks in <think> </think> and answers in "
    "<answer> </answer>.\nUser: {question}\nAssistant: <think>"
)


@pytest.fixture
def base_model_without_template(tmp_path) -> str:
    """A base model as released: weights and tokenizer, no chat template."""
    folder = build_tiny_model(
        tmp_path / "base-lm", hidden_size=32, num_layers=2, num_heads=2, vocab_size=400, max_length=256, seed=4
    )
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.slow
def test_r1_zero_grpo_from_a_base_model_with_a_plain_text_prompt(
    recipe_dict, write_recipe, tmp_path, base_model_without_template
):
    recipe_dict["model"] = {"path": base_model_without_template}
    recipe_dict["prompt"] = {"template": R1_ZERO}
    del recipe_dict["sft"]
    recipe_dict["grpo"]["trainer"]["max_steps"] = 1
    recipe_dict["eval"]["dataset"]["max_samples"] = 2
    path = write_recipe(recipe_dict)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "Assistant: <think>" in result.output and "plain-text prompt" in result.output
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "tiny" / "eval" / "grpo.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["prompt"].startswith("A conversation between User") and record["prompt"].endswith("<think>")
    summary = json.loads((tmp_path / "runs" / "tiny" / "eval" / "grpo.json").read_text())
    assert summary["think_prefilled"] is True  # the plain prompt opens the reasoning


def test_a_conversation_needs_a_chat_template_or_a_plain_prompt(recipe_dict, write_recipe, base_model_without_template):
    recipe_dict["model"] = {"path": base_model_without_template}
    result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
    assert result.exit_code == 2
    assert "has no chat template" in result.output and "prompt.template" in result.output
    template = Path(base_model_without_template).parent / "chatml.jinja"
    template.write_text(CHATML_TEMPLATE)
    recipe_dict["model"]["chat_template"] = str(template)
    result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
    assert result.exit_code == 0, result.output
    from recipe_cli.models import load_tokenizer

    recipe = validate_recipe(recipe_dict)
    assert load_tokenizer(base_model_without_template, recipe.model).chat_template == CHATML_TEMPLATE


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ({"template": "no question here"}, "must contain {question}"),
        ({"template": R1_ZERO, "system": "x"}, "remove `system` and `user`"),
    ],
)
def test_plain_prompt_mistakes(recipe_dict, write_recipe, prompt, expected):
    recipe_dict["prompt"] = prompt
    result = runner.invoke(app, ["validate", str(write_recipe(recipe_dict))])
    assert result.exit_code == 2 and expected in result.output, result.output
