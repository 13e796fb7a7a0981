"""How prompts and completions meet a model's chat template: one rendering for SFT, GRPO and the eval.

A prompt is rendered once, the way generation sees it (the template with its generation prompt).
An SFT target is tokenised here as the completion the model should write after that prompt, ended
by the template's end-of-turn token; it never goes through the template's rendering of an
assistant turn. Two kinds of templates make that matter:

- templates that prefill ``<think>`` at the end of the generation prompt (DeepSeek-R1's distilled
  models): the completion starts inside the reasoning, so an SFT target must not open ``<think>``
  again, and the format reward and the eval's format rate must not expect it;
- templates that drop the reasoning from assistant turns (DeepSeek's stock template keeps only
  what follows ``</think>``): rendered as a conversation, an SFT example would teach only
  ``<answer>...</answer>``. Tokenising the target directly keeps the reasoning in it.
"""

from __future__ import annotations

from recipe_cli.config import Recipe
from recipe_cli.errors import RecipeError

TURN_MARKER = "recipe-end-of-turn-probe"
REASONING_PROBE = "recipe-reasoning-probe"
THINK = "<think>"
THINK_SETTING = "think_prefilled"  # the reward parameter that says whether completions start inside <think>


def _token_ids(encoded) -> list[int]:
    """``apply_chat_template(tokenize=True)`` returns a ``BatchEncoding`` in transformers 5: its ids, as a list."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def _require_template(tokenizer) -> None:
    if not tokenizer.chat_template:
        raise RecipeError(
            f"the tokenizer of '{tokenizer.name_or_path}' has no chat template, and the recipe's prompt is a "
            "conversation; set model.chat_template (a Jinja template or a .jinja file), or prompt.template for a "
            "plain-text prompt (R1-Zero style)"
        )


def render_prompt(tokenizer, prompt: list[dict] | str) -> str:
    """The prompt as text, exactly as generation continues it: a conversation with the template's
    generation prompt, or a plain-text prompt as it is."""
    if isinstance(prompt, str):
        return prompt
    _require_template(tokenizer)
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def prompt_token_ids(tokenizer, prompt: list[dict] | str) -> list[int]:
    """The prompt's token ids as GRPO and the eval generate from them.

    A rendered conversation carries its own special tokens (none are added twice); a plain-text
    prompt gets the tokenizer's (a base model's BOS), as TRL tokenises string prompts.
    """
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    _require_template(tokenizer)
    return _token_ids(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True))


def prefills_think(tokenizer) -> bool:
    """Whether the chat template ends the generation prompt with ``<think>`` (DeepSeek-R1 distills do).

    Then completions start inside the reasoning and never contain the opening tag.
    """
    if not tokenizer.chat_template:
        return False
    rendered = render_prompt(tokenizer, [{"role": "user", "content": "1+1?"}])
    return rendered.rstrip().endswith(THINK)


def drops_reasoning(tokenizer) -> bool:
    """Whether the template leaves the ``<think>`` section out when it renders an assistant turn.

    DeepSeek-R1's template renders ``content.split('</think>')[-1]``: fine for chat history, but
    an SFT example rendered through it would train on the answer alone.
    """
    if not tokenizer.chat_template:
        return False
    reply = f"<think>\n{REASONING_PROBE}\n</think>\n<answer>2</answer>"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": reply}], tokenize=False
        )
    except Exception:  # a template that cannot render an assistant turn cannot drop anything from one
        return False
    return REASONING_PROBE not in text


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template closes an assistant turn with (``<|im_end|>``, ``<|eot_id|>``...)."""
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": TURN_MARKER}], tokenize=False
        )
    except Exception:  # a template that cannot render a finished turn names no end-of-turn token
        return None
    if TURN_MARKER not in text:
        return None
    after = text[text.rindex(TURN_MARKER) + len(TURN_MARKER) :]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after.strip() else []
    special = set(tokenizer.all_special_ids) | {
        index for index, token in tokenizer.added_tokens_decoder.items() if token.special
    }
    return ids[0] if ids and ids[0] in special else None


def completion_end_id(tokenizer, plain: bool = False) -> int:
    """The token an SFT target ends with: the template's end of turn, else (and for ``plain``-text prompts) eos."""
    end = None if plain else end_of_turn_id(tokenizer)
    return end if end is not None else tokenizer.eos_token_id


def strip_prefilled_think(completion: str, prompt: str) -> str:
    """The completion as written after a prompt that already ends with ``<think>``.

    The newline the generation prompt puts after ``<think>`` is not repeated either, so prompt +
    completion read exactly as the unprefilled text would.

    >>> strip_prefilled_think("<think>\\nstep\\n</think>\\n<answer>1</answer>", "<|Assistant|><think>\\n")
    'step\\n</think>\\n<answer>1</answer>'
    >>> strip_prefilled_think("<think>step</think><answer>1</answer>", "<|Assistant|><think>")
    'step</think><answer>1</answer>'
    >>> strip_prefilled_think("step</think><answer>1</answer>", "<|Assistant|><think>\\n")
    'step</think><answer>1</answer>'
    """
    stripped = completion.lstrip()
    if not stripped.startswith(THINK):
        return completion
    rest = stripped[len(THINK) :]
    tail = prompt[prompt.rindex(THINK) + len(THINK) :] if THINK in prompt else ""
    return rest[len(tail) :] if tail and rest.startswith(tail) else rest


def sft_token_ids(tokenizer, prompt: list[dict] | str, completion: str, *, prefilled: bool, end_id: int):
    """One SFT example as token ids and its loss mask: the prompt as generation sees it (masked), then the
    completion and the end-of-turn token (trained on).

    The completion is tokenised on its own, as the model writes it after the prompt, and a
    ``<think>`` the prompt already ends with is not repeated.
    """
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    if prefilled:
        completion = strip_prefilled_think(completion, render_prompt(tokenizer, prompt))
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [end_id]
    return prompt_ids + completion_ids, [0] * len(prompt_ids) + [1] * len(completion_ids)


def text_token_ids(tokenizer, text: str) -> list[int]:
    """A plain-text SFT example as TRL tokenises one (``dataset_text_field``): the tokenizer's own special tokens
    (a BOS), the text, and eos unless the text already ends with it. Every token is trained on."""
    if tokenizer.eos_token and not text.endswith(tokenizer.eos_token):
        return list(tokenizer(text)["input_ids"]) + [tokenizer.eos_token_id]
    return list(tokenizer(text)["input_ids"])


def think_prefilled(recipe: Recipe, tokenizer) -> bool:
    """Whether completions start inside ``<think>``: the recipe's format reward setting, else the prompt.

    GRPO's format rewards, SFT's targets and the eval's format rate all follow this one answer.
    """
    for reward in recipe.grpo.rewards if recipe.grpo is not None else []:
        if THINK_SETTING in reward.params:
            return bool(reward.params[THINK_SETTING])
    if recipe.prompt.template is not None:
        return recipe.prompt.template.rstrip().endswith(THINK)
    return prefills_think(tokenizer)


def describe_template(tokenizer, prefilled: bool) -> list[str]:
    """What the chat template does that SFT, GRPO and the eval adapt to, one line each (none for plain templates)."""
    lines = []
    if prefilled:
        lines.append(
            "completions start inside <think> (the template prefills it, or the recipe's format reward says so): "
            "SFT targets leave out the opening tag; format rewards and the eval's format rate expect none"
        )
    if drops_reasoning(tokenizer):
        lines.append(
            "the chat template drops <think>...</think> from assistant turns; SFT targets are tokenised directly "
            "after the prompt, so the reasoning is trained on"
        )
    return lines
