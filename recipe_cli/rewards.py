"""Verifiable rewards for GRPO, registered by name.

Every reward has TRL's signature ``(completions, **kwargs) -> list[float | None]``: completions
are strings or chat messages ``[{"role": "assistant", "content": ...}]``, the gold answer comes
in the ``answer`` column, and ``None`` means "cannot be scored" (TRL skips it), never a silent 0.
Tunables are keyword-only parameters, set per reward in the recipe and checked at validate time
against their annotations (``Annotated`` constraints included) and the reward's own checks.

Where a name matches one of open-r1's rewards (``accuracy``, ``format``, ``tag_count``,
``reasoning_steps``, ``length``, ``cosine``, ``repetition_penalty``, ``soft_overlong_punishment``),
the semantics are open-r1's; each deliberate difference is written in the reward's docstring.

>>> get_reward("accuracy")(completions=["<answer>1,000</answer>", "<answer>7</answer>"], answer=["1000", "1000"])
[1.0, 0.0]
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import math
import re
import typing
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from recipe_cli.answers import (
    LATEX_TIMEOUT_SECONDS,
    LATEX_WORKERS,
    answer_part,
    extract_answer,
    judge_answer,
    needs_latex,
    score_completion,
)
from recipe_cli.errors import RecipeError
from recipe_cli.trainer_settings import suggest

RewardFunction = Callable[..., list]
_REGISTRY: dict[str, RewardFunction] = {}

THINK_ANSWER = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)
# With a chat template that ends the prompt with "<think>", the completion starts inside the reasoning.
PREFILLED_THINK_ANSWER = re.compile(r"^(?!\s*<think>).*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)
# TRL's think_format_reward: one <think>, closed, anything after it
THINK_ONLY = re.compile(r"^\s*<think>(?!.*<think>).*?</think>.*$", re.DOTALL)
PREFILLED_THINK_ONLY = re.compile(r"^(?!.*<think>).*?</think>.*$", re.DOTALL)
# open-r1's markers of a reasoning step; open-r1 omits re.MULTILINE, so "2." only counts at the very start.
STEP_MARKERS = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)
# The <reasoning>/<answer> format of the widely copied GSM8K GRPO notebook (willccbb/grpo_demo.py).
XML_STRICT = re.compile(r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n?$", re.DOTALL)
XML_SOFT = re.compile(r"^\s*<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)
THINK_SECTION = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
REASONING_SECTION = re.compile(r"<reasoning>(.*?)(?:</reasoning>|$)", re.DOTALL)
ANSWER_SECTION = re.compile(r"<answer>.*?(?:</answer>|$)", re.DOTALL)
MARKUP = re.compile(r"\\[A-Za-z]+|<[^>\n]{1,20}>")  # LaTeX commands and tags are not prose in any language
# Languages by ISO 639-1 code -> the Unicode scripts their prose is written in (first word of the
# Unicode character name: "DEVANAGARI LETTER KA", "CJK UNIFIED IDEOGRAPH-4E00").
LANGUAGE_SCRIPTS = {
    **dict.fromkeys(["en", "fr", "de", "es", "it", "pt", "nl", "sv", "pl", "tr", "vi", "id", "sw"], {"LATIN"}),
    **dict.fromkeys(["hi", "mr", "ne", "sa"], {"DEVANAGARI"}),
    **dict.fromkeys(["ru", "uk", "bg", "sr"], {"CYRILLIC"}),
    **dict.fromkeys(["ar", "fa", "ur"], {"ARABIC"}),
    "zh": {"CJK"},
    "ja": {"CJK", "HIRAGANA", "KATAKANA"},
    "ko": {"HANGUL"},
    "bn": {"BENGALI"},
    "gu": {"GUJARATI"},
    "pa": {"GURMUKHI"},
    "ta": {"TAMIL"},
    "te": {"TELUGU"},
    "kn": {"KANNADA"},
    "ml": {"MALAYALAM"},
    "th": {"THAI"},
    "el": {"GREEK"},
    "he": {"HEBREW"},
}


def register(function: RewardFunction | None = None, *, signal_from_samples_only: bool = False):
    """Add a reward to the registry under its function name.

    ``signal_from_samples_only``: the preflight's synthetic completions (the dataset's own text)
    cannot show this reward varying; only the model's samples can (e.g. the reasoning language).
    """

    def add(function: RewardFunction) -> RewardFunction:
        function.signal_from_samples_only = signal_from_samples_only
        _REGISTRY[function.__name__] = function
        return function

    return add(function) if function is not None else add


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


def _texts(completions) -> list[str]:
    return [completion_text(c) for c in completions]


def _correctness(completions, answer, timeout: float = LATEX_TIMEOUT_SECONDS) -> list[bool | None]:
    return [score_completion(text, gold, timeout)[1] for text, gold in zip(_texts(completions), answer, strict=True)]


_scorers: ThreadPoolExecutor | None = None


def score_all(
    texts: list[str], golds: list, timeout: float, mode: str, cut_off: list[bool], answer_after: str | None = None
) -> list[bool | None]:
    """``score_completion``'s verdict for each completion, the LaTeX comparisons of a batch side by side.

    A comparison math-verify has to make waits on a worker process (``recipe_cli.answers``); with
    several workers, the batch's comparisons run at the same time instead of one after another.
    Answers that are plain numbers never reach a worker: they are judged in this thread, while the
    workers compare the rest (a thread per comparison would cost more than judging a number).
    """
    global _scorers

    parts = [answer_part(text, answer_after) for text in texts]
    answers = [extract_answer(part, mode) if part is not None else None for part in parts]

    def verdict(i: int) -> bool | None:
        return judge_answer(answers[i], golds[i], timeout, mode=mode, truncated=cut_off[i])

    latex = [i for i, answer in enumerate(answers) if answer is not None and needs_latex(answer, golds[i])]
    if LATEX_WORKERS < 2 or len(latex) < 2:
        return [verdict(i) for i in range(len(texts))]
    if _scorers is None:
        _scorers = ThreadPoolExecutor(max_workers=LATEX_WORKERS, thread_name_prefix="recipe-answers")
    pending = {i: _scorers.submit(verdict, i) for i in latex}
    verdicts = [None if i in pending else verdict(i) for i in range(len(texts))]
    for i, future in pending.items():
        verdicts[i] = future.result()
    return verdicts


def _lengths(completions, completion_ids, unit: str) -> list[int]:
    if unit == "characters":
        return [len(text) for text in _texts(completions)]
    if completion_ids is None:
        raise ValueError("unit 'tokens' needs `completion_ids`, which TRL passes to every reward")
    return [len(ids) for ids in completion_ids]


def _require(condition: bool, message: str) -> None:
    """Reject a parameter value; rewards check their parameters before reading any completion."""
    if not condition:
        raise ValueError(message)


@register
def accuracy(
    completions,
    answer,
    completion_ids=None,
    *,
    mode: Literal["strict", "flexible"] = "flexible",
    latex_timeout: Annotated[float, Field(gt=0)] = 5.0,
    max_completion_len: Annotated[int, Field(gt=0)] | None = None,
    answer_after: Annotated[str, Field(min_length=1)] | None = None,
    **kwargs,
):
    """1.0 when the final answer equals the gold ``answer``, 0.0 when not, None when the gold is unreadable.

    The answer checker of ``recipe eval`` (``recipe_cli.answers``): numbers exactly, intervals,
    sets, tuples, equations, inequalities, ratios, percentages, text and choice letters by their
    shape, other LaTeX through math-verify in a worker process bounded by ``latex_timeout`` seconds.

    ``mode: flexible`` reads the answer wherever the completion gives it: ``<answer>``,
    ``\\boxed{}``, ``####``, "the answer is" (and its forms in ten other languages), the last
    formula, the last number. ``mode: strict`` reads it only from the format a recipe asks for
    (the last ``<answer>...</answer>``, else ``\\boxed{}``, else ``####``) and scores a completion
    cut off by the length limit 0.0, so an unfinished thought is never rewarded. Cut off means
    its ``completion_ids`` reached ``max_completion_len`` tokens (recipe grpo fills in GRPO's
    ``max_completion_length``): TRL keeps the end-of-turn token in ``completion_ids``, so a
    completion that ended on its own is shorter, except one whose end token was the very last one
    allowed, which counts as cut off too. Without ``completion_ids`` nothing counts as cut off.

    ``answer_after: "</think>"`` reads the answer only after the last ``</think>`` and scores a
    completion without one 0.0, so an unfinished thought is never paid (TRL's
    ``reasoning_accuracy_reward``).

    Fixes over open-r1: plain answers such as ``<answer>72</answer>`` or ``#### 72`` are read
    (open-r1 parses only LaTeX and scores them 0), and an unreadable gold gives None (open-r1
    gives 1.0 or None depending on the version).

    >>> accuracy(["The answer is 12.", "#### 13"], answer=["12", "12"])
    [1.0, 0.0]
    >>> accuracy(["<think>9 * 2 = 18", "<answer>18</answer>"], answer=["18", "18"], mode="strict")
    [0.0, 1.0]
    >>> cut_off = {"completion_ids": [[7] * 64], "max_completion_len": 64}  # every token of the budget used
    >>> accuracy(["<answer>18</answer>"], answer=["18"], mode="strict", **cut_off)
    [0.0]
    >>> accuracy(["<think>so 18</think> 18", "<think>so 18"], answer=["18", "18"], answer_after="</think>")
    [1.0, 0.0]
    """
    texts = _texts(completions)
    if mode == "strict" and completion_ids is not None and max_completion_len is not None:
        cut_off = [len(ids) >= max_completion_len for ids in completion_ids]
    else:
        cut_off = [False] * len(texts)
    verdicts = score_all(texts, answer, latex_timeout, mode, cut_off, answer_after)
    return [None if correct is None else float(correct) for correct in verdicts]


@register
def format(completions, *, think_prefilled: bool = False, **kwargs):  # noqa: A001 - the reward's public name
    """1.0 for ``<think>...</think>`` then ``<answer>...</answer>`` and nothing else, else 0.0.

    With ``think_prefilled`` (a chat template that ends the prompt with ``<think>``, as
    DeepSeek-R1's distilled models do) the completion starts inside the reasoning: it must not
    open ``<think>`` again. ``recipe grpo`` sets it when it sees such a template. Fix over
    open-r1: any whitespace around the tags (open-r1 demands exactly one newline after each, so a
    compact ``<answer>72</answer>`` scores 0).

    >>> format(["<think>\\nstep 1\\nstep 2\\n</think>\\n<answer>3</answer>", "3"])
    [1.0, 0.0]
    >>> format(["step 1</think><answer>3</answer>"], think_prefilled=True)
    [1.0]
    """
    pattern = PREFILLED_THINK_ANSWER if think_prefilled else THINK_ANSWER
    return [1.0 if pattern.match(text) else 0.0 for text in _texts(completions)]


@register
def think_format(completions, *, think_prefilled: bool = False, **kwargs):
    """1.0 for a completion that opens ``<think>`` once and closes it, whatever follows, else 0.0.

    TRL's ``think_format_reward``, for models that answer after the reasoning without ``<answer>``
    tags (a ``\\boxed{}`` answer, say). With ``think_prefilled`` the prompt opened ``<think>``: the
    completion must not open it again. Fix over TRL: whitespace before ``<think>`` is allowed.

    >>> think_format(["<think>\\n2 + 2 = 4\\n</think>\\nThe answer is 4.", "<think>a<think>b</think>", "4"])
    [1.0, 0.0, 0.0]
    """
    pattern = PREFILLED_THINK_ONLY if think_prefilled else THINK_ONLY
    return [1.0 if pattern.match(text) else 0.0 for text in _texts(completions)]


@register
def tag_count(completions, *, think_prefilled: bool = False, **kwargs):
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` that appears exactly once.

    Partial credit that guides a model toward ``format``. Fix over open-r1: the tags are counted
    whatever whitespace surrounds them (open-r1 counts ``"<think>\\n"``, ``"\\n</think>\\n"``, ...).
    With ``think_prefilled`` the opening ``<think>`` must be absent instead (the prompt has it).

    >>> tag_count(["<think>a</think><answer>1</answer>", "<think>a</think>", "no tags"])
    [1.0, 0.5, 0.0]
    """
    scores = []
    for text in _texts(completions):
        opening = text.count("<think>") == (0 if think_prefilled else 1)
        rest = [text.count(tag) == 1 for tag in ("</think>", "<answer>", "</answer>")]
        scores.append(0.25 * (opening + sum(rest)))
    return scores


@register
def reasoning_steps(completions, *, min_steps: Annotated[int, Field(gt=0)] = 3, **kwargs):
    """Share of ``min_steps`` step markers found ("Step 1:", "1.", "- ", "First,", "Finally,", ...), at most 1.0.

    open-r1's markers and its 3 steps for full credit. Fix: numbered lines count anywhere in the
    text (open-r1's pattern lacks ``re.MULTILINE``, so only a "1." at the very start counted).

    >>> reasoning_steps(["1. add\\n2. multiply\\n3. done", "First, add. Finally, done.", "42"])
    [1.0, 0.6666666666666666, 0.0]
    """
    return [min(1.0, len(STEP_MARKERS.findall(text)) / min_steps) for text in _texts(completions)]


@register
def length(
    completions,
    answer,
    prompts=None,
    completion_ids=None,
    *,
    unit: Literal["characters", "tokens"] = "characters",
    **kwargs,
):
    """Kimi-1.5 length reward: among answers to the same prompt, shorter correct ones score higher.

    With ``lambda = 0.5 - (len - min_len) / (max_len - min_len)`` over the completions of one
    prompt: ``lambda`` when correct, ``min(0, lambda)`` when wrong; 0.0 for every completion when
    they all have the same length. Fixes over open-r1: min and max are taken per prompt (open-r1
    takes them over the whole batch, so other prompts' lengths shift the reward), and an
    unreadable gold gives None (open-r1 counts it as correct).

    >>> length(["<answer>4</answer>", "so 2+2 is <answer>4</answer>", "<answer>5</answer>"], answer=["4"] * 3)
    [0.5, -0.5, 0.0]
    """
    correct = _correctness(completions, answer)
    sizes = _lengths(completions, completion_ids, unit)
    groups: dict[str, list[int]] = {}
    for index in range(len(sizes)):
        key = json.dumps(prompts[index], sort_keys=True) if prompts is not None else ""
        groups.setdefault(key, []).append(index)
    scores: list[float | None] = [0.0] * len(sizes)
    for members in groups.values():
        shortest, longest = min(sizes[i] for i in members), max(sizes[i] for i in members)
        for i in members:
            if correct[i] is None:
                scores[i] = None
            elif longest > shortest:
                value = 0.5 - (sizes[i] - shortest) / (longest - shortest)
                scores[i] = value if correct[i] else min(0.0, value)
    return scores


@register
def cosine(
    completions,
    answer,
    completion_ids=None,
    *,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    max_len: Annotated[int, Field(gt=0)] = 1000,
    unit: Literal["characters", "tokens"] = "characters",
    **kwargs,
):
    """Correctness scaled by length along a cosine (Yeo et al. 2025, "Demystifying Long CoT").

    Correct answers: ``max_value_correct`` when empty, falling to ``min_value_correct`` at
    ``max_len``, so shorter correct answers are worth more. Wrong answers: ``min_value_wrong`` when
    empty, moving to ``max_value_wrong`` at ``max_len``; by default a long wrong answer is penalised
    LESS than a short one (-0.5 against -1.0), which pushes a model that cannot solve a problem to
    think longer. Either order is allowed for wrong answers: open-r1's script defaults (0.0 when
    empty, -0.5 at ``max_len``) penalise long wrong answers more. open-r1's formula and its other
    defaults; fixes: lengths past ``max_len`` count as ``max_len`` (open-r1's cosine turns back up
    past it, paying a 2x-too-long correct answer the full 1.0), and an unreadable gold gives None
    (open-r1 gives 1.0).

    >>> cosine(["<answer>4</answer>", "<answer>5</answer>"], answer=["4", "4"], max_len=18)
    [0.5, -0.5]
    >>> cosine(["", "<answer>5</answer>"], answer=["4", "4"], max_len=18, min_value_wrong=0.0)  # open-r1's
    [0.0, -0.5]
    """
    _require(min_value_correct <= max_value_correct, "min_value_correct must not be above max_value_correct")
    scores: list[float | None] = []
    sizes = _lengths(completions, completion_ids, unit)
    for correct, size in zip(_correctness(completions, answer), sizes, strict=True):
        if correct is None:
            scores.append(None)
            continue
        progress = min(size, max_len) / max_len
        low, high = (min_value_correct, max_value_correct) if correct else (max_value_wrong, min_value_wrong)
        scores.append(low + 0.5 * (high - low) * (1.0 + math.cos(progress * math.pi)))
    return scores


@register
def repetition_penalty(
    completions,
    *,
    ngram_size: Annotated[int, Field(gt=0)] = 3,
    max_penalty: Annotated[float, Field(le=0)] = -1.0,
    **kwargs,
):
    """``max_penalty`` times the share of repeated word n-grams: 0.0 for varied text, toward -1.0 for loops.

    open-r1's semantics (words lowercased and split on whitespace; texts shorter than
    ``ngram_size`` words score 0.0). For languages written without spaces, split is per phrase.

    >>> repetition_penalty(["a b c d e", "go on go on go on go on"], ngram_size=2)
    [0.0, -0.7142857142857143]
    """
    scores = []
    for text in _texts(completions):
        words = text.lower().split()
        if len(words) < ngram_size:
            scores.append(0.0)
            continue
        ngrams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
        repeated = 1 - len(set(ngrams)) / len(ngrams)
        scores.append(repeated * max_penalty if repeated else 0.0)  # not -0.0
    return scores


@register
def soft_overlong_punishment(
    completions,
    completion_ids=None,
    *,
    max_completion_len: Annotated[int, Field(gt=0)] | None = None,
    soft_punish_cache: Annotated[int, Field(gt=0)] | None = None,
    **kwargs,
):
    """DAPO's soft overlong punishment on completion length in tokens: 0.0, then a linear ramp to -1.0.

    0.0 up to ``max_completion_len - soft_punish_cache`` tokens, falling linearly to -1.0 at
    ``max_completion_len``, -1.0 beyond. ``max_completion_len`` defaults to the GRPO trainer's
    ``max_completion_length`` and ``soft_punish_cache`` to a quarter of it (DAPO: 4096 of 20480).
    open-r1's formula.

    >>> soft_overlong_punishment(["a", "b", "c"], completion_ids=[[1] * 6, [1] * 9, [1] * 10], max_completion_len=10)
    [0.0, -0.5, -1.0]
    """
    _require(max_completion_len is not None, "max_completion_len is not set (recipe grpo fills it in from TRL's)")
    cache = soft_punish_cache or max(1, max_completion_len // 4)
    _require(cache < max_completion_len, f"soft_punish_cache {cache} must be below max_completion_len")
    if completion_ids is None:
        raise ValueError("soft_overlong_punishment needs `completion_ids`, which TRL passes to every reward")
    free = max_completion_len - cache
    return [0.0 if len(ids) <= free else max(-1.0, (free - len(ids)) / cache) for ids in completion_ids]


@register
def xml_format(completions, *, strict: bool = False, **kwargs):
    """1.0 for the ``<reasoning>...</reasoning><answer>...</answer>`` format of the GSM8K GRPO notebook.

    ``strict``: each tag on its own line, nothing after ``</answer>``; soft: the two sections in
    order, any whitespace. Fix over the notebook: multi-line reasoning counts (its patterns lack
    ``re.DOTALL``, so both rewards are 0 on any reasoning longer than one line). The notebook pays
    0.5; set ``weight: 0.5`` for the same scale.

    >>> xml_format(["<reasoning>\\na\\nb\\n</reasoning>\\n<answer>\\n4\\n</answer>\\n", "<answer>4</answer>"])
    [1.0, 0.0]
    """
    pattern = XML_STRICT if strict else XML_SOFT
    return [1.0 if pattern.match(text) else 0.0 for text in _texts(completions)]


@register
def integer_answer(completions, **kwargs):
    """1.0 when the final answer is a whole number (``72``, ``-3``, ``1,000``, ``5.0``), else 0.0.

    The notebook's ``int_reward_func``, on the answer checker's extraction; fix: negative numbers
    and thousands separators count (the notebook uses ``str.isdigit``).

    >>> integer_answer(["<answer>1,000</answer>", "<answer>-3</answer>", "<answer>2.5</answer>", "none"])
    [1.0, 1.0, 0.0, 0.0]
    """
    from recipe_cli.answers import parse_number

    scores = []
    for text in _texts(completions):
        extracted = extract_answer(text)
        value = parse_number(extracted) if extracted is not None else None
        scores.append(1.0 if value is not None and value.denominator == 1 else 0.0)
    return scores


@register(signal_from_samples_only=True)
def language(completions, *, language: str, **kwargs):
    """Share of the reasoning's letters written in the ``language``'s script (0.0 to 1.0).

    DeepSeek-R1's language-consistency reward, for multilingual runs: ``language`` is an ISO code
    (``hi`` = Devanagari, ``ru`` = Cyrillic, ``zh`` = CJK, ...). The reasoning is the ``<think>``
    (or ``<reasoning>``) section, else the text outside ``<answer>``; LaTeX commands, tags, digits
    and punctuation do not count. R1 counts words; letters give the same share for alphabetic
    scripts and also work for scripts written without spaces. No letters at all scores 0.0.

    >>> language(["<think>दो और तीन पाँच</think><answer>5</answer>", "<think>two and three</think>"], language="hi")
    [1.0, 0.0]
    """
    _require(
        language in LANGUAGE_SCRIPTS, f"language {language!r} is not known; use one of {', '.join(LANGUAGE_SCRIPTS)}"
    )
    scripts = LANGUAGE_SCRIPTS[language]
    scores = []
    for text in _texts(completions):
        section = THINK_SECTION.search(text) or REASONING_SECTION.search(text)
        prose = MARKUP.sub(" ", section.group(1) if section else ANSWER_SECTION.sub(" ", text))
        letters = [ch for ch in prose if unicodedata.category(ch)[0] in "LM"]
        if not letters:
            scores.append(0.0)
            continue
        native = sum(unicodedata.name(ch, "?").split(" ")[0] in scripts for ch in letters)
        scores.append(native / len(letters))
    return scores


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
        f"unknown reward '{name}'{suggest(name, available())} available: {', '.join(available())} "
        "(or 'module:function' / 'file.py:function' for your own)"
    )


def parameters(function: RewardFunction) -> dict[str, inspect.Parameter]:
    """A reward's tunables: its keyword-only parameters."""
    signature = inspect.signature(function)
    return {p.name: p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}


def _check_params(name: str, function: RewardFunction, params: dict) -> None:
    signature = inspect.signature(function)
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        raise RecipeError(f"reward '{name}' must accept **kwargs (TRL passes every dataset column)")
    if "completions" not in signature.parameters:
        raise RecipeError(f"reward '{name}' must take `completions` (TRL's reward signature)")
    tunable = parameters(function)
    for key in params:
        if key not in tunable:
            hint = f"; its parameters: {', '.join(sorted(tunable))}" if tunable else "; it takes no parameters"
            raise RecipeError(f"reward '{name}' has no parameter '{key}'{hint}")
    missing = [p for p, spec in tunable.items() if spec.default is inspect.Parameter.empty and p not in params]
    if missing:
        raise RecipeError(f"reward '{name}' needs `params: {{{', '.join(f'{p}: ...' for p in missing)}}}`")
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # a user's annotations that do not resolve: leave the values unchecked
        hints = {}
    for key, value in params.items():
        if key in hints:
            try:
                TypeAdapter(hints[key]).validate_python(value, strict=True)
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                raise RecipeError(f"reward '{name}': {key}={value!r}: {reason[0].lower()}{reason[1:]}") from None
    if function is _REGISTRY.get(name):  # built-ins check their cross-parameter rules before any completion
        try:
            function([], answer=[], prompts=[], completion_ids=[], **params)
        except ValueError as error:
            raise RecipeError(f"reward '{name}': {error}") from None


def get_reward(name: str, **params) -> RewardFunction:
    """The reward ``name`` with ``params`` bound, ready to hand to TRL's ``GRPOTrainer``."""
    function = _find(name)
    _check_params(name, function, params)
    if not params:
        return function
    bound = functools.partial(function, **params)
    functools.update_wrapper(bound, function)
    return bound


def with_run_values(name: str, params: dict, run_values: dict) -> dict:
    """``params`` plus what the run knows for the parameters the recipe left unset.

    A reward (built-in or custom) that declares ``max_completion_len`` gets the GRPO trainer's
    ``max_completion_length``; one that declares ``think_prefilled`` learns whether the chat
    template ends the prompt with ``<think>``.

    >>> with_run_values("soft_overlong_punishment", {}, {"max_completion_len": 256, "think_prefilled": False})
    {'max_completion_len': 256}
    """
    tunable = parameters(_find(name))
    supplied = {key: value for key, value in run_values.items() if key in tunable and value is not None}
    return {**supplied, **params}


def check_reward_settings(name: str, params: dict, run_values: dict | None = None) -> list[str]:
    """Every problem with a reward entry of a recipe (name and parameters), as messages."""
    try:
        get_reward(name, **with_run_values(name, params, run_values or {}))
    except RecipeError as error:
        return [str(error)]
    return []


def describe(name: str) -> tuple[str, str]:
    """A registered reward's parameters as written in a recipe, and the first line of its docstring.

    >>> describe("repetition_penalty")[0]
    'ngram_size=3, max_penalty=-1.0'
    """
    function = _REGISTRY[name]
    params = ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in parameters(function).values()
    )
    summary = (function.__doc__ or "").strip().splitlines()[0].replace("``", "`")
    return params, summary
