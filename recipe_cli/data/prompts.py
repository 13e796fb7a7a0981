"""The conversation a row becomes: system and user messages, the SFT completion, the prompt rows of GRPO and eval."""

from __future__ import annotations

from recipe_cli.config import PromptSettings
from recipe_cli.errors import RecipeError


def build_prompt(question: str, prompt: PromptSettings) -> list[dict] | str:
    """What the model is shown: the system message (if any) and the user's question as a conversation, or
    the plain-text ``template`` filled in (rendered by ``recipe_cli.chat``).

    >>> build_prompt("1+1?", PromptSettings(system="Be brief.", user="Q: {question}"))
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Q: 1+1?'}]
    >>> build_prompt("1+1?", PromptSettings(template="User: {question}\\nAssistant: <think>"))
    'User: 1+1?\\nAssistant: <think>'
    """
    if prompt.template is not None:
        return prompt.template.format(question=question)
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return messages + [{"role": "user", "content": prompt.user.format(question=question)}]


def row_prompt(row: dict, prompt: PromptSettings) -> list[dict] | str:
    """What the model is shown for a row: its own prompt (TRL's formats carry one), else the recipe's.

    >>> row_prompt({"question": "2+2?", "prompt": "Q: 2+2?\\nA:"}, PromptSettings())
    'Q: 2+2?\\nA:'
    """
    own = row.get("prompt")
    return own if own is not None else build_prompt(row["question"], prompt)


def render_completion(row: dict, template: str) -> str:
    """The SFT target for a row: its own completion (TRL's formats), else the recipe's completion template."""
    if row.get("completion") is not None:
        return row["completion"]
    if "prompt" in row:  # a conversation without an assistant turn, or a prompt without a completion column
        raise RecipeError(
            f"sft: the row asking {row['question'][:60]!r} has no completion to train on; SFT needs an assistant "
            "turn (messages) or a completion column (`columns: {completion: ...}`)"
        )
    if "{reasoning}" in template and not row.get("reasoning"):
        raise RecipeError(
            "sft: a row has no reasoning but the completion template uses {reasoning}; "
            "map `columns.reasoning` or drop {reasoning} from `sft.completion`"
        )
    return template.format(reasoning=row.get("reasoning") or "", answer=row["final"])


def prompt_rows(rows: list[dict], prompt: PromptSettings) -> list[dict]:
    """Conversational prompt rows with the gold in ``answer``, for GRPO and for the eval."""
    return [{"prompt": row_prompt(row, prompt), "answer": row["answer"]} for row in rows]


def count_prompt_tokens(tokenizer, prompt: list[dict] | str) -> int:
    """Tokens of a prompt as generation sees it (a conversation with the template's generation prompt)."""
    from recipe_cli.chat import prompt_token_ids

    return len(prompt_token_ids(tokenizer, prompt))
