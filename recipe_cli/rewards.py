"""Verifiable rewards for GRPO, registered by name.

Every reward has TRL's signature ``(completions, **kwargs) -> list[float | None]``: completions
are strings or chat messages ``[{"role": "assistant", "content": ...}]``, the gold answer comes
in the ``answer`` column, and ``None`` means "cannot be scored" (TRL skips it), never a silent 0.
Tunables are keyword-only parameters, set per reward in the recipe and checked at validate time.

>>> get_reward("accuracy")(completions=["<answer>1,000</answer>", "<answer>7</answer>"], answer=["1000", "1000"])
[1.0, 0.0]
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path

from recipe_cli.answers import score_completion
from recipe_cli.errors import RecipeError

RewardFunction = Callable[..., list]
_REGISTRY: dict[str, RewardFunction] = {}

THINK_ANSWER = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)


def register(function: RewardFunction) -> RewardFunction:
    """Add a reward to the registry under its function name."""
    _REGISTRY[function.__name__] = function
    return function


def available() -> list[str]:
    """The names of the registered rewards."""
    return sorted(_REGISTRY)


def completion_text(completion) -> str:
    """The text of one completion, given as a string or as a list of chat messages.

    >>> completion_text([{"role": "assistant", "content": "hi"}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    return "".join(message["content"] for message in completion if message.get("role") == "assistant")


@register
def accuracy(completions, answer, **kwargs) -> list[float | None]:
    """1.0 when the extracted final answer equals the gold ``answer``, 0.0 when not, None when the gold is unreadable.

    >>> accuracy(["The answer is 12.", "#### 13"], answer=["12", "12"])
    [1.0, 0.0]
    """
    scores = []
    for completion, gold in zip(completions, answer, strict=True):
        _, correct = score_completion(completion_text(completion), gold)
        scores.append(None if correct is None else float(correct))
    return scores


@register
def format(completions, **kwargs) -> list[float]:  # noqa: A001 - the reward's public name
    """1.0 when the completion is ``<think>...</think>`` then ``<answer>...</answer>`` and nothing else.

    Multi-line reasoning counts (the pattern spans newlines).

    >>> format(["<think>\\nstep 1\\nstep 2\\n</think>\\n<answer>3</answer>", "3"])
    [1.0, 0.0]
    """
    return [1.0 if THINK_ANSWER.match(completion_text(c)) else 0.0 for c in completions]


def _load_custom(name: str) -> RewardFunction:
    """A reward from user code: ``module:function`` or ``path/to/file.py:function``."""
    target, _, attribute = name.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise RecipeError(f"reward '{name}': file '{target}' not found")
        spec = importlib.util.spec_from_file_location(f"recipe_custom_rewards.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # the user's file: report, do not crash
            raise RecipeError(f"reward '{name}': importing '{target}' failed: {error}") from error
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as error:
            raise RecipeError(f"reward '{name}': cannot import module '{target}' ({error})") from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise RecipeError(f"reward '{name}': '{target}' has no function '{attribute}'")
    return function


def _find(name: str) -> RewardFunction:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _load_custom(name)
    raise RecipeError(
        f"unknown reward '{name}'; available: {', '.join(available())} "
        "(or 'module:function' / 'file.py:function' for your own)"
    )


def _check_params(name: str, function: RewardFunction, params: dict) -> None:
    signature = inspect.signature(function)
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if not accepts_kwargs:
        raise RecipeError(f"reward '{name}' must accept **kwargs (TRL passes every dataset column)")
    if "completions" not in signature.parameters:
        raise RecipeError(f"reward '{name}' must take `completions` (TRL's reward signature)")
    tunable = {p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}
    for key in params:
        if key not in tunable:
            hint = f"; its parameters: {', '.join(sorted(tunable))}" if tunable else "; it takes no parameters"
            raise RecipeError(f"reward '{name}' has no parameter '{key}'{hint}")


def get_reward(name: str, **params) -> RewardFunction:
    """The reward ``name`` with ``params`` bound, ready to hand to TRL's ``GRPOTrainer``."""
    function = _find(name)
    _check_params(name, function, params)
    if not params:
        return function
    bound = functools.partial(function, **params)
    functools.update_wrapper(bound, function)
    return bound


def check_reward_settings(name: str, params: dict) -> list[str]:
    """Every problem with a reward entry of a recipe (name and parameters), as messages."""
    try:
        get_reward(name, **params)
    except RecipeError as error:
        return [str(error)]
    return []
