"""The recipe schema: one YAML file describes the whole run, checked before any weights load.

``load_recipe`` reads the file, applies ``--set`` overrides, and reports every problem at once
as one ``RecipeError`` (one line per problem, each with its dotted path and the fix). Nothing
here imports torch or TRL: ``recipe validate`` runs in a fraction of a second.
"""

from __future__ import annotations

import os
import re
import string
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from recipe_cli.errors import RecipeError
from recipe_cli.trainer_fields import trainer_fields
from recipe_cli.trainer_settings import REMOVED_KEYS, check_trainer_settings, suggest

DEFAULT_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process and then gives the answer. The reasoning "
    "process and the answer are enclosed within <think> </think> and <answer> </answer> tags, respectively."
)
DEFAULT_COMPLETION = "<think>\n{reasoning}\n</think>\n<answer>{answer}</answer>"
# Hub ids recognised by their adapter; any other dataset is read through its column mapping.
KNOWN_DATASETS = {"openai/gsm8k": "gsm8k", "gsm8k": "gsm8k", "open-r1/OpenThoughts-114k-math": "openthoughts"}
LOCAL_DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
BRANCH_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")  # apache-2.0, cc-by-nc-4.0, llama3.1, other
# GRPO's divergences to the reference model, by name: what each estimates. Formulas, estimators and
# sources are in recipe_cli.divergence (which imports torch; this table keeps `recipe validate` light).
DIVERGENCES = {
    "k1": "log(pi/pi_ref) at the sampled token: unbiased reverse KL(pi || pi_ref)",
    "k2": "0.5 * log(pi/pi_ref)^2: reverse KL to second order (biased)",
    "k3": "r - 1 - log r, r = pi_ref/pi: unbiased reverse KL, never negative (TRL's estimator)",
    "forward_kl": "r log r - r + 1: unbiased forward KL(pi_ref || pi)",
    "js": "Jensen-Shannon divergence to the mixture (pi + pi_ref)/2: unbiased, at most log 2",
    "tv": "0.5 * |1 - r|: unbiased total variation distance, at most 1",
}
# Names other tools give these divergences (verl's kl_penalty values, common spellings): named in the error.
DIVERGENCE_SYNONYMS = {
    "kl": "k1",
    "low_var_kl": "k3",
    "mse": "k2",
    "reverse_kl": "k1 or k3",
    "jsd": "js",
    "jensen_shannon": "js",
    "total_variation": "tv",
    "fkl": "forward_kl",
}


class Strict(BaseModel):
    """Base of every section: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class LoraSettings(Strict):
    """LoRA adapter trained instead of the full weights (peft)."""

    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class TinyModelSettings(Strict):
    """A tiny Llama-type model built locally (demo and tests); see ``recipe_cli.tiny_model``."""

    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    vocab_size: int = Field(512, ge=300)
    max_length: int = Field(512, gt=0)

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class ModelSettings(Strict):
    """The starting model: a Hub id or local folder (``path``), or a tiny model built locally (``tiny``)."""

    path: str | None = None  # Hub id (Qwen/Qwen2.5-0.5B-Instruct) or a local model folder
    tiny: TinyModelSettings | None = None
    revision: str | None = None  # Hub branch, tag or commit of `path`
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on a GPU that has it, else fp32
    attn_implementation: str | None = None  # e.g. sdpa, flash_attention_2
    trust_remote_code: bool = False
    lora: LoraSettings | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.tiny is None):
            raise ValueError("give exactly one of `path` (Hub id or local folder) and `tiny` (build a tiny model)")
        return self


class DatasetSettings(Strict):
    """Where a stage's examples come from and how their columns map to question/answer/reasoning."""

    path: str | None = None  # Hub id or local .json/.jsonl/.parquet/.csv file (or folder)
    adapter: Literal["gsm8k", "openthoughts", "columns", "arithmetic"] | None = None  # default: from `path`
    config: str | None = None  # Hub dataset config; gsm8k defaults to "main"
    split: str = "train"
    columns: dict[str, str] = {}  # role -> column: question, answer (the gold), reasoning (worked solution)
    max_samples: int | None = Field(None, gt=0)  # the first N usable rows
    max_prompt_tokens: int | None = Field(None, gt=0)  # drop rows whose rendered prompt is longer
    only_correct: bool = True  # openthoughts: keep only traces marked correct
    # arithmetic: share of two-step worked solutions whose answer is the first step's result (a noisy teacher)
    teacher_error_rate: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _resolve_adapter(self):
        if self.adapter is None:
            if self.path is None:
                raise ValueError("give `path` (Hub id or local file) or `adapter: arithmetic` (generated problems)")
            self.adapter = KNOWN_DATASETS.get(self.path, "columns")
        if self.adapter == "arithmetic":
            if self.path is not None:
                raise ValueError("`adapter: arithmetic` generates its problems; remove `path`")
            if self.split not in ("train", "test"):
                raise ValueError(f"split {self.split!r}: the arithmetic generator has 'train' and 'test'")
            if self.max_samples is None:
                self.max_samples = 1000
        elif self.teacher_error_rate:
            raise ValueError("`teacher_error_rate` applies to `adapter: arithmetic` only; remove it")
        elif self.path is None:
            raise ValueError(f"`adapter: {self.adapter}` needs `path` (Hub id or local file)")
        if self.adapter == "gsm8k" and self.config is None and not is_local_path(self.path):
            self.config = "main"
        unknown = set(self.columns) - {"question", "answer", "reasoning"}
        if unknown:
            raise ValueError(
                f"columns: unknown role(s) {sorted(unknown)}; map 'question', 'answer' and 'reasoning' to your columns"
            )
        return self


class PromptSettings(Strict):
    """The conversation every stage and the eval show the model: a system message and a user message."""

    system: str | None = DEFAULT_SYSTEM_PROMPT
    user: str = "{question}"

    @field_validator("user")
    @classmethod
    def _user_placeholders(cls, value: str) -> str:
        _check_placeholders(value, {"question"}, required={"question"})
        return value


class SFTSettings(Strict):
    """Cold-start supervised fine-tuning on worked solutions."""

    dataset: DatasetSettings
    completion: str = DEFAULT_COMPLETION
    trainer: dict[str, Any] = {}

    @field_validator("completion")
    @classmethod
    def _completion_placeholders(cls, value: str) -> str:
        _check_placeholders(value, {"reasoning", "answer"}, required={"answer"})
        return value


class RewardSettings(Strict):
    """One reward: its registered name (or ``module:function``), weight, and keyword parameters."""

    name: str
    weight: float = 1.0
    params: dict[str, Any] = {}


class HealthSettings(Strict):
    """When GRPO's training health alarms fire: a condition must hold for ``window_steps`` steps in a row."""

    window_steps: int = Field(30, gt=0)
    zero_std_fraction: float = Field(0.75, gt=0.0, le=1.0)  # share of groups whose completions all scored the same
    truncated_fraction: float = Field(0.75, gt=0.0, le=1.0)  # share of completions cut at max_completion_length


class DivergenceSettings(Strict):
    """GRPO's divergence to the reference model: which one (``name``) and where it goes (``in``).

    ``in: loss`` adds ``beta`` times the per-token estimate to the loss, as TRL does with k3;
    ``in: reward`` subtracts ``beta`` times its sum over the completion from the reward before
    advantages are computed, as verl's ``use_kl_in_reward``. See ``recipe_cli.divergence``.
    """

    # `in` is a Python keyword: the field is `in_`, written `in` in recipes, run records and dumps
    model_config = ConfigDict(extra="forbid", validate_default=True, serialize_by_alias=True)

    name: str
    in_: Literal["loss", "reward"] = Field("loss", alias="in")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in DIVERGENCE_SYNONYMS:
            raise ValueError(f"{value!r} is called {DIVERGENCE_SYNONYMS[value]} here; write that name")
        if value not in DIVERGENCES:
            raise ValueError(
                f"{value!r} is not a divergence{suggest(value, DIVERGENCES) or ';'} use one of {', '.join(DIVERGENCES)}"
            )
        return value


class GRPOSettings(Strict):
    """Reinforcement learning with verifiable rewards (TRL's GRPOTrainer)."""

    dataset: DatasetSettings
    rewards: list[RewardSettings] = Field(min_length=1)
    trainer: dict[str, Any] = {}
    health: HealthSettings = Field(default_factory=HealthSettings)
    divergence: DivergenceSettings | None = None  # `js`, or {name: k1, in: reward}; default with beta > 0: k3 in loss

    @field_validator("divergence", mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if value is not None and not isinstance(value, (dict, DivergenceSettings)):
            raise ValueError(
                f"{value!r}: write a name (divergence: js) or a mapping (divergence: {{name: k1, in: reward}})"
            )
        return value

    @field_validator("divergence")
    @classmethod
    def _has_a_coefficient(cls, value: DivergenceSettings | None, info: ValidationInfo) -> DivergenceSettings | None:
        trainer = info.data.get("trainer") or {}
        beta = trainer.get("beta", trainer_fields("GRPOConfig")["beta"].default)
        if value is not None and isinstance(beta, (int, float)) and not beta:
            raise ValueError(
                f"{value.name} does nothing while grpo.trainer.beta, its coefficient, is 0 (TRL's default); "
                "set grpo.trainer.beta, e.g. 0.04, or remove grpo.divergence"
            )
        if (
            value is not None
            and value.in_ == "reward"
            and trainer.get("multi_objective_aggregation") == "normalize_then_sum"
        ):
            raise ValueError(
                "in: reward subtracts beta x divergence from the summed reward, but multi_objective_aggregation: "
                "normalize_then_sum would normalise it per group like a reward; use in: loss, or remove "
                "multi_objective_aggregation"
            )
        return value

    @property
    def beta(self) -> Any:
        """The divergence's coefficient, ``trainer.beta``: the recipe's, else TRL's default (0: no reference model)."""
        return self.trainer.get("beta", trainer_fields("GRPOConfig")["beta"].default)

    @property
    def penalty(self) -> DivergenceSettings | None:
        """The divergence GRPO trains with: the recipe's, else TRL's k3 in the loss when ``beta > 0``, else None."""
        if not self.beta:
            return None
        return self.divergence or DivergenceSettings(name="k3")

    def describe_divergence(self) -> dict[str, Any]:
        """What run.json, eval summaries and model cards record: name, placement and coefficient (name none: off)."""
        penalty = self.penalty
        if penalty is None:
            return {"name": "none", "in": None, "beta": 0.0}
        return {"name": penalty.name, "in": penalty.in_, "beta": float(self.beta)}


class EvalSettings(Strict):
    """Evaluation on a held-out split, scored with the accuracy reward's answer checker.

    Greedy accuracy is always measured; ``num_samples > 1`` adds a seeded sampling pass for
    pass@k and maj@k.
    """

    dataset: DatasetSettings
    max_new_tokens: int = Field(512, gt=0)  # a completion that reaches it counts as truncated
    batch_size: int = Field(128, gt=0)  # completions generated together (prompts sorted by length, left-padded)
    num_samples: int = Field(1, gt=0)  # sampled completions per problem; 1 = greedy only
    temperature: float = Field(1.0, gt=0.0)  # sampling pass only; greedy is greedy
    top_p: float = Field(1.0, gt=0.0, le=1.0)  # sampling pass only
    pass_k: list[int] = []  # k values for pass@k and maj@k; default 1, powers of two, num_samples
    backend: Literal["auto", "transformers", "vllm"] = "auto"  # auto: vllm when installed and on a GPU

    @model_validator(mode="after")
    def _ks_fit_the_samples(self):
        if not self.pass_k:
            self.pass_k = _powers_of_two_up_to(self.num_samples)
        too_small = sorted(k for k in self.pass_k if k < 1)
        if too_small:
            raise ValueError(f"pass_k: k={too_small[0]} is not a sample count; use k >= 1")
        too_large = sorted(k for k in self.pass_k if k > self.num_samples)
        if too_large:
            raise ValueError(
                f"pass_k: k={too_large[-1]} is larger than num_samples={self.num_samples}; "
                f"set num_samples to at least {too_large[-1]} or drop k={too_large[-1]}"
            )
        self.pass_k = sorted(set(self.pass_k))
        return self


class PushSettings(Strict):
    """Publishing a checkpoint to the Hugging Face Hub: which repo, which branch, and what goes in it."""

    repo_id: str  # user-or-org/model-name; created (private unless `private: false`) when missing
    private: bool = True
    stage: Literal["sft", "grpo"] | None = None  # default: the last stage that finished
    # The branch pushed to, created from main when missing. Default: the stage's name (`sft`, `grpo`), or
    # `grpo-step-N` for an intermediate `checkpoint-N`; `main` makes it what from_pretrained loads by default.
    revision: str | None = None
    overwrite: bool = False  # push onto a branch that already holds files (its old files are replaced)
    merge_lora: bool = False  # push full weights with the LoRA adapter merged in, instead of the adapter
    include_training_state: bool = False  # also push optimizer.pt, scheduler.pt, rng_state*.pth, training_args.bin
    license: str | None = None  # Hub license id for the card, e.g. apache-2.0; use the base model's license
    # While training, push each checkpoint-N a stage saves (its trainer's save_strategy) to <stage>-step-N.
    push_checkpoints: bool = False

    @field_validator("repo_id")
    @classmethod
    def _repo_id_shape(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", value):
            raise ValueError(f"{value!r} is not a Hub repo id; write it as 'user-or-org/model-name'")
        return value

    @field_validator("license")
    @classmethod
    def _license_id_shape(cls, value: str | None) -> str | None:
        # The Hub takes only ids from its list (or `other`) and says so only at commit time, after the
        # upload; the list changes, so only the shape of an id is checked here.
        if value is not None and not LICENSE_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a Hub license id; use a lowercase id from "
                "https://huggingface.co/docs/hub/repositories-licenses (e.g. apache-2.0, mit) or `other`"
            )
        return value

    @field_validator("revision")
    @classmethod
    def _branch_name(cls, value: str | None) -> str | None:
        if value is not None and (not BRANCH_NAME.fullmatch(value) or ".." in value or value.endswith(".lock")):
            raise ValueError(f"{value!r} is not a branch name; use letters, digits, '-', '_' and '.', e.g. grpo-v2")
        return value


class Recipe(Strict):
    """A whole run: the starting model, the prompt, and the stages to run in order."""

    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$")  # names the run folder runs_dir/name
    seed: int = 42  # TRL's seed for both stages, the tiny model's init, generated data
    runs_dir: str = "runs"
    model: ModelSettings
    prompt: PromptSettings = Field(default_factory=PromptSettings)
    sft: SFTSettings | None = None
    grpo: GRPOSettings | None = None
    eval: EvalSettings | None = None
    push: PushSettings | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def training_stages(self) -> list[str]:
        return [stage for stage in ("sft", "grpo") if getattr(self, stage) is not None]


def _check_placeholders(template: str, allowed: set[str], required: set[str]) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"{template!r} is not a valid template ({error}); write literal braces as {{{{ }}}}") from None
    unknown = names - allowed
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - names
    if missing:
        raise ValueError(f"the template must contain {', '.join('{' + n + '}' for n in sorted(missing))}")


def _powers_of_two_up_to(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself: the default k values of pass@k and maj@k.

    >>> _powers_of_two_up_to(1), _powers_of_two_up_to(8), _powers_of_two_up_to(10)
    ([1], [1, 2, 4, 8], [1, 2, 4, 8, 10])
    """
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    return ks if ks[-1] == n else [*ks, n]


def is_local_path(path: str | None) -> bool:
    """Whether ``path`` names something on disk (or is written like a path), rather than a Hub id."""
    if path is None:
        return False
    return Path(path).expanduser().exists() or path.startswith((".", "/", "~")) or path.endswith(LOCAL_DATA_SUFFIXES)


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _section_class(loc: tuple) -> type[BaseModel] | None:
    """The schema class of the section at ``loc`` (list indices skipped), for did-you-mean hints."""
    cls: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return None
        cls = _unwrap_model(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _describe(error: dict) -> str:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
    path = _dotted(loc) or "recipe"
    if error["type"] == "extra_forbidden":
        key = loc[-1]
        if key in REMOVED_KEYS:
            return f"{path}: '{key}' {REMOVED_KEYS[key]}"
        section = _section_class(loc[:-1])
        hint = suggest(str(key), [f.alias or name for name, f in section.model_fields.items()]) if section else ""
        return f"{path}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{path}: required but missing"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("value_error", "assertion_error") and "input" in error:
        given = error["input"]
        if not isinstance(given, (dict, list)):
            message = f"{message[0].lower()}{message[1:]}, got {given!r}"
    return f"{path}: {message}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.path=value`` and read the value as YAML.

    >>> parse_override("grpo.trainer.learning_rate=1.0e-5")
    (['grpo', 'trainer', 'learning_rate'], 1e-05)
    """
    if "=" not in text:
        raise RecipeError(f"--set {text!r}: write it as key.path=value, e.g. --set grpo.trainer.max_steps=10")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {text!r}: the key path is empty; write it as key.path=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_override(data: dict, keys: list[str], value: Any) -> None:
    """Set ``data[k1][k2]... = value``, creating sections and indexing lists by number."""
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise RecipeError(f"--set {'.'.join(keys)}: '{key}' is not an index of the {len(node)}-item list")
            key = int(key)
        elif not isinstance(node, dict):
            raise RecipeError(f"--set {'.'.join(keys)}: '{'.'.join(keys[:depth])}' is a value, not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def read_recipe_file(path: str | Path) -> dict:
    """Read a recipe YAML file into a mapping, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file '{path}' not found; pass the path of a YAML recipe, e.g. recipes/demo.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise RecipeError(f"{path}: not valid YAML{where}: {problem}; fix the syntax there") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a text file; a recipe is a YAML file") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise RecipeError(f"{path}: the recipe is {kind}; it needs at least `name:` and `model:`")
    return data


def load_recipe(
    path: str | Path, overrides: list[str] = (), options: dict[str, dict[str, Any]] | None = None
) -> Recipe:
    """Read, override and validate a recipe; raise one ``RecipeError`` listing every problem.

    ``options`` are values of command-line options by section (``{"push": {"revision": "v2"}}``),
    merged after the ``--set`` overrides and taken as given rather than read as YAML.
    """
    data = read_recipe_file(path)
    for text in overrides:
        apply_override(data, *parse_override(text))
    for section, values in (options or {}).items():
        if values:
            current = data.get(section)
            data[section] = {**(current if isinstance(current, dict) else {}), **values}
    return validate_recipe(data, source=str(path))


def validate_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a raw recipe mapping; every problem found is listed in one ``RecipeError``."""
    problems = []
    trainer_classes = {"sft": "SFTConfig", "grpo": "GRPOConfig"}
    for stage, class_name in trainer_classes.items():
        section = data.get(stage)
        trainer = section.get("trainer") if isinstance(section, dict) else None
        if isinstance(trainer, dict):
            coerced, found = check_trainer_settings(class_name, trainer, f"{stage}.trainer")
            problems += found
            section["trainer"] = {**trainer, **coerced}
            if stage == "grpo" and not found:
                problems += _check_generation_batch(section["trainer"])
    problems += _check_rewards(data.get("grpo"))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        problems += [_describe(e) for e in error.errors()]
        recipe = None
    if recipe is not None:
        problems += check_recipe(recipe)
    if problems:
        raise RecipeError(_join(source, problems))
    return recipe


def _join(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)


def _check_rewards(grpo: Any) -> list[str]:
    """Reward names and parameters, checked on the raw section so they are reported with any other problem."""
    from recipe_cli.rewards import check_reward_settings

    rewards = grpo.get("rewards") if isinstance(grpo, dict) else None
    trainer = grpo.get("trainer") if isinstance(grpo, dict) and isinstance(grpo.get("trainer"), dict) else {}
    run_values = {"max_completion_len": grpo_max_completion_length(trainer)}
    problems = []
    for index, reward in enumerate(rewards if isinstance(rewards, list) else []):
        if isinstance(reward, dict) and isinstance(reward.get("name"), str):
            params = reward.get("params") if isinstance(reward.get("params"), dict) else {}
            found = check_reward_settings(reward["name"], params, run_values)
            problems += [f"grpo.rewards.{index}: {p}" for p in found]
    return problems


def grpo_max_completion_length(trainer: dict) -> int | None:
    """The completion budget in tokens GRPO will use: the recipe's, else TRL's default."""
    value = trainer.get("max_completion_length")
    if value is None:
        value = trainer_fields("GRPOConfig")["max_completion_length"].default
    return value if isinstance(value, int) else None


def check_recipe(recipe: Recipe) -> list[str]:
    """Checks across fields and against the outside world (local files)."""
    problems = []
    if recipe.model.path is not None and not is_local_path(recipe.model.path) and not HUB_ID.match(recipe.model.path):
        problems.append(f"model.path: '{recipe.model.path}' is neither a local folder nor a Hub id")
    elif recipe.model.path is not None and is_local_path(recipe.model.path):
        folder = Path(recipe.model.path).expanduser()
        if not folder.is_dir():
            problems.append(f"model.path: '{recipe.model.path}' does not exist; give a model folder or a Hub id")
        elif not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
            problems.append(f"model.path: '{recipe.model.path}' has no config.json; is it a saved model folder?")
    for stage in ("sft", "grpo", "eval"):
        settings = getattr(recipe, stage)
        if settings is not None:
            problems += _check_dataset(settings.dataset, f"{stage}.dataset")
    if recipe.push is not None and recipe.push.stage is not None and getattr(recipe, recipe.push.stage) is None:
        problems.append(f"push.stage: the recipe has no `{recipe.push.stage}` section to push")
    if recipe.push is not None and not recipe.training_stages:
        problems.append("push: the recipe has no sft or grpo stage, so there is no checkpoint to push")
    if recipe.push is not None and recipe.push.push_checkpoints:
        saving = [s for s in recipe.training_stages if getattr(recipe, s).trainer.get("save_strategy", "steps") != "no"]
        if not saving:
            problems.append(
                "push.push_checkpoints: no stage saves checkpoints (save_strategy: no); "
                "set save_strategy: steps and save_steps in a stage's trainer, or remove push_checkpoints"
            )
    if recipe.push is not None and recipe.push.merge_lora and recipe.model.lora is None:
        problems.append("push.merge_lora: the recipe trains full weights (no model.lora), so there is nothing to merge")
    return problems


def _check_dataset(dataset: DatasetSettings, where: str) -> list[str]:
    if dataset.path is None or not is_local_path(dataset.path):
        if dataset.path is not None and not HUB_ID.match(dataset.path):
            return [f"{where}.path: '{dataset.path}' is neither a local file nor a Hub dataset id"]
        return []
    local = Path(dataset.path).expanduser()
    if not local.exists():
        return [f"{where}.path: '{dataset.path}' does not exist; check the path (relative to where you run recipe)"]
    if local.is_file() and not local.name.endswith(LOCAL_DATA_SUFFIXES):
        return [f"{where}.path: '{dataset.path}' is not a {'/'.join(LOCAL_DATA_SUFFIXES)} file"]
    return []


def generation_batch(trainer: dict[str, Any]) -> tuple[int, int, str]:
    """GRPO's generation batch size, ``num_generations``, and how the batch was computed (as TRL does)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = trainer.get("per_device_train_batch_size", 8)
    steps = trainer.get("steps_per_generation") or trainer.get("gradient_accumulation_steps", 1)
    num_generations = trainer.get("num_generations", 8)
    if trainer.get("generation_batch_size"):
        return trainer["generation_batch_size"], num_generations, "generation_batch_size"
    source = "steps_per_generation" if trainer.get("steps_per_generation") else "gradient_accumulation_steps"
    how = f"per_device_train_batch_size {per_device} x {source} {steps}"
    if world > 1:
        how += f" x {world} processes"
    return per_device * steps * world, num_generations, how


def _check_generation_batch(trainer: dict[str, Any]) -> list[str]:
    if trainer.get("generation_batch_size") and trainer.get("steps_per_generation"):
        return ["grpo.trainer: set generation_batch_size or steps_per_generation, not both"]
    batch, num_generations, how = generation_batch(trainer)
    if num_generations is None or num_generations < 2:
        return [f"grpo.trainer.num_generations: {num_generations}; GRPO compares at least 2 completions per prompt"]
    if batch % num_generations:
        divisors = [g for g in range(2, batch + 1) if batch % g == 0]
        fits = f"num_generations in {divisors}" if divisors else "a larger batch"
        multiples = [num_generations * k for k in range(1, 4)]
        return [
            f"grpo.trainer.num_generations: {num_generations} does not divide the generation batch of {batch} "
            f"({how}); use {fits}, or make the batch a multiple of {num_generations} (e.g. {multiples})"
        ]
    return []
