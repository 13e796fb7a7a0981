"""TRL's dataset formats: conversations (``messages``), ``prompt``/``completion`` pairs and plain ``text``.

``trl sft`` trains on any of them and tells them apart by their columns; ``adapter: trl`` does the
same (messages, then prompt, then the text column), and ``messages``, ``prompt_completion`` and
``text`` name one format. Each row carries what the model is shown and what it learns to write:

- ``messages``: a conversation in ``messages`` (or ShareGPT's ``conversations``, which TRL reads
  as ``messages``); the last assistant turn is the completion, the turns before it the prompt
  (rendered with the chat template, masked); turns after it are left out. TRL trains on every
  token of such a conversation unless ``assistant_only_loss``; here the earlier turns are the
  prompt, as the other adapters' prompts are.
- ``prompt_completion``: the prompt as given (a conversation, or plain text without the chat
  template, as TRL does) and its completion; GRPO reads the prompt alone.
- ``text``: the whole text is trained on, nothing masked (SFT only).

Rows keep the roles of ``recipe_cli.data``: ``question`` (the last user turn, for duplicates and
decontamination), ``answer`` (the gold: ``columns.answer``, else a ``solution`` or ``answer``
column as TRL's and open-r1's rewards read it, else empty), plus ``prompt``, ``completion`` or
``text``, which take the place of the recipe's ``prompt:`` and ``sft.completion``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from recipe_cli.data.adapters import RawRows, describe_type, register_adapter, text_value
from recipe_cli.errors import RecipeError

GOLD_COLUMNS = ("solution", "answer")  # TRL's accuracy_reward and open-r1's rewards read `solution`
ROLE_NAMES = {"human": "user", "gpt": "assistant"}  # ShareGPT's from/value turns, as TRL converts them
CONVERSATION_COLUMNS = ("messages", "conversations")  # TRL renames ShareGPT's `conversations` to `messages`


def _columns(settings, **defaults: str) -> dict[str, str]:
    return {**defaults, **settings.columns}


def _gold_column(raw: RawRows, columns: dict[str, str]) -> str | None:
    if "answer" in columns:
        raw.require({"answer": columns["answer"]})
        return columns["answer"]
    return next((name for name in GOLD_COLUMNS if name in raw.column_names), None)


def _gold(raw: RawRows, index: int, row: dict, column: str | None) -> str:
    if column is None or row.get(column) is None:
        return ""
    return text_value(raw, index, column, row[column], "gold answer")


def read_turns(raw: RawRows, index: int, column: str, value: Any) -> list[dict]:
    """A conversation cell as ``[{"role", "content"}]`` (ShareGPT's ``from``/``value`` turns read too).

    >>> read_turns(RawRows([], [], "d.jsonl"), 0, "messages", [{"from": "human", "value": "hi"}])
    [{'role': 'user', 'content': 'hi'}]
    """
    if not isinstance(value, list) or not value:
        raise RecipeError(
            f"dataset '{raw.path}' {raw.where(index)}: column '{column}' is {describe_type(value)}, not a "
            "conversation (a list of {role, content} turns)"
        )
    turns = []
    for turn in value:
        role = turn.get("role", turn.get("from")) if isinstance(turn, dict) else None
        content = turn.get("content", turn.get("value")) if isinstance(turn, dict) else None
        if not isinstance(role, str) or not isinstance(content, str):
            raise RecipeError(
                f"dataset '{raw.path}' {raw.where(index)}: column '{column}' holds a turn without a text role and "
                f"content ({describe_type(turn)}); write each turn as {{role: user|assistant|system, content: ...}}"
            )
        turns.append({"role": ROLE_NAMES.get(role, role), "content": content})
    return turns


def question_of(prompt: list[dict] | str) -> str:
    """The question a prompt asks: its last user turn, or the plain-text prompt itself.

    >>> question_of([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}])
    '2+2?'
    """
    if isinstance(prompt, str):
        return prompt
    users = [turn["content"] for turn in prompt if turn["role"] == "user"]
    return users[-1] if users else "\n".join(turn["content"] for turn in prompt)


def _assistant_text(turns: list[dict]) -> str:
    return "".join(turn["content"] for turn in turns if turn["role"] == "assistant")


def conversation_column(column_names: list[str], columns: dict[str, str]) -> str | None:
    """The column holding the conversations: ``columns.messages``, else ``messages``, else ``conversations``
    (ShareGPT's name, which ``trl sft`` reads as ``messages``); None when there is none.

    >>> conversation_column(["system", "conversations"], {}), conversation_column(["text"], {}) is None
    ('conversations', True)
    """
    if "messages" in columns:
        return columns["messages"] if columns["messages"] in column_names else None
    return next((name for name in CONVERSATION_COLUMNS if name in column_names), None)


def _sharegpt(cell: Any) -> bool:
    """Whether a conversation holds ShareGPT's ``from``/``value`` turns (TRL's ``is_conversational_from_value``).

    >>> _sharegpt([{"from": "human", "value": "hi"}]), _sharegpt([{"role": "user", "content": "hi"}])
    (True, False)
    """
    return isinstance(cell, list) and bool(cell) and isinstance(cell[0], dict) and {"from", "value"} <= set(cell[0])


@register_adapter("messages")
def messages_rows(raw: RawRows, settings) -> Iterator[dict]:
    """Conversations: the last assistant turn is the completion, the turns before it the prompt."""
    columns = _columns(settings, messages=conversation_column(raw.column_names, settings.columns) or "messages")
    raw.require({"messages": columns["messages"]})
    gold_column = _gold_column(raw, columns)
    for index, row in enumerate(raw):
        if index == 0 and "messages" not in settings.columns and _sharegpt(row.get("conversations")):
            # trl sft replaces `messages` with ShareGPT turns in `conversations` (maybe_convert_to_chatml, read off
            # the first row): open-r1/OpenThoughts-114k-math's R1 traces rather than its NuminaMath solutions
            columns["messages"] = "conversations"
        turns = read_turns(raw, index, columns["messages"], row[columns["messages"]])
        last = max((i for i, turn in enumerate(turns) if turn["role"] == "assistant"), default=None)
        prompt, completion = (turns, None) if last is None else (turns[:last], turns[last]["content"])
        if not prompt:
            raise RecipeError(
                f"dataset '{raw.path}' {raw.where(index)}: the conversation opens with the assistant turn; "
                "it needs a user turn before it"
            )
        _check_question(raw, index, prompt)
        yield _prompted_row(prompt, completion, _gold(raw, index, row, gold_column))


@register_adapter("prompt_completion")
def prompt_completion_rows(raw: RawRows, settings) -> Iterator[dict]:
    """A prompt (a conversation, or plain text) and its completion; GRPO and the eval read the prompt alone."""
    columns = _columns(settings, prompt="prompt", completion="completion")
    raw.require({"prompt": columns["prompt"]})
    has_completion = columns["completion"] in raw.column_names
    gold_column = _gold_column(raw, columns)
    for index, row in enumerate(raw):
        cell = row[columns["prompt"]]
        if isinstance(cell, str):
            prompt = cell
        else:
            prompt = read_turns(raw, index, columns["prompt"], cell)
        completion = row[columns["completion"]] if has_completion else None
        if isinstance(completion, list):
            completion = _assistant_text(read_turns(raw, index, columns["completion"], completion))
        elif completion is not None:
            completion = text_value(raw, index, columns["completion"], completion, "completion")
        _check_question(raw, index, prompt)
        yield _prompted_row(prompt, completion, _gold(raw, index, row, gold_column))


def _check_question(raw: RawRows, index: int, prompt: list[dict] | str) -> None:
    """A prompt whose question (its last user turn, or its text) is blank is a one-line error, as a blank gold is."""
    if not question_of(prompt).strip():
        raise RecipeError(
            f"dataset '{raw.path}' {raw.where(index)}: the prompt asks nothing (its question, the last user turn or "
            "the prompt text, is empty); fill it in or delete the row"
        )


def _prompted_row(prompt, completion: str | None, gold: str) -> dict:
    """A row of a prompted format: the question is the prompt's last user turn (or the prompt's text)."""
    return {
        "question": question_of(prompt),
        "answer": gold,
        "reasoning": None,
        "final": gold,
        "prompt": prompt,
        "completion": completion,
    }


@register_adapter("text")
def text_rows(raw: RawRows, settings) -> Iterator[dict]:
    """Plain text, trained on whole (TRL's ``dataset_text_field``, ``text`` by default)."""
    columns = _columns(settings, text="text")
    raw.require({"text": columns["text"]})
    for index, row in enumerate(raw):
        text = text_value(raw, index, columns["text"], row[columns["text"]], "text")
        yield {"question": text, "answer": "", "reasoning": None, "final": "", "text": text}


def trl_format(column_names: list[str], columns: dict[str, str]) -> str | None:
    """The format ``trl sft`` would read rows with these columns in, or None.

    >>> trl_format(["messages", "source"], {}), trl_format(["prompt", "completion"], {}), trl_format(["text"], {})
    ('messages', 'prompt_completion', 'text')
    >>> trl_format(["system", "conversations"], {})
    'messages'
    """
    if conversation_column(column_names, columns) is not None:
        return "messages"
    if columns.get("prompt", "prompt") in column_names:
        return "prompt_completion"
    if columns.get("text", "text") in column_names:
        return "text"
    return None


@register_adapter("trl")
def trl_rows(raw: RawRows, settings) -> Iterator[dict]:
    """Whichever of TRL's formats the columns show: ``messages``, then ``prompt``, then the text column."""
    found = trl_format(raw.column_names, settings.columns)
    if found is None:
        names = {role: settings.columns.get(role, role) for role in ("messages", "prompt", "text")}
        raise RecipeError(
            f"dataset '{raw.path}' is in none of TRL's formats: no column '{names['messages']}' or 'conversations' "
            "(conversations), "
            f"'{names['prompt']}' (prompt-completion) or '{names['text']}' (plain text); its columns are "
            f"{raw.column_names}; map yours with `columns: {{messages: ...}}`, `{{prompt: ..., completion: ...}}` or "
            "`{text: ...}`"
        )
    from recipe_cli.data.adapters import ADAPTERS

    yield from ADAPTERS[found](raw, settings)
