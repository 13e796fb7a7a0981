"""The recipe schema: one YAML file describes the whole run, checked before any weights load.

``load_recipe`` reads the file, applies ``--set`` overrides, and reports every problem at once
as one ``RecipeError`` (one line per problem, each with its dotted path and the fix). Nothing
here imports torch or TRL: ``recipe validate`` runs in a fraction of a second.
"""

from __future__ import annotations

import math
import os
import re
import string
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from recipe_cli.checkpoints import is_training_state
from recipe_cli.errors import RecipeError

if typing.TYPE_CHECKING:
    from recipe_cli.foreign import ForeignOptions
from recipe_cli.trainer_settings import (
    REMOVED_KEYS,
    TRAINER_CLASSES,
    TRAINING_STAGES,
    check_trainer_settings,
    effective_setting,
    suggest,
)

DEFAULT_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process and then gives the answer. The reasoning "
    "process and the answer are enclosed within <think> </think> and <answer> </answer> tags, respectively."
)
DEFAULT_COMPLETION = "<think>\n{reasoning}\n</think>\n<answer>{answer}</answer>"
# Hub ids recognised by their adapter; any other dataset is read through its column mapping.
KNOWN_DATASETS = {"openai/gsm8k": "gsm8k", "gsm8k": "gsm8k", "open-r1/OpenThoughts-114k-math": "openthoughts"}
LOCAL_DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")
# the column roles of TRL's dataset formats (recipe_cli.data.trl_formats)
TRL_FORMAT_ROLES = ("messages", "prompt", "completion", "text")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
BRANCH_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")  # apache-2.0, cc-by-nc-4.0, llama3.1, other
# GRPO's divergences to the reference model, by name: what each estimates. Formulas, estimators and
# sources are in recipe_cli.divergence (which imports torch; this table keeps `recipe validate` light).
# The name of the `in: reward` divergence's pseudo-reward is this prefix and the divergence's name (TRL logs
# rewards/divergence_k3/mean); plots and dynamic sampling tell it from the recipe's rewards by it.
DIVERGENCE_REWARD_PREFIX = "divergence_"
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

    @field_validator("target_modules")
    @classmethod
    def _some_target(cls, value):
        if not value:  # peft raises only once the trainer is built, after the data was prepared
            what = "the list is empty" if isinstance(value, list) else "the pattern is empty"
            raise ValueError(f"{what}; name the modules to adapt (e.g. [q_proj, v_proj]) or give all-linear")
        return value


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
    # a Jinja chat template (the text, or a path to a .jinja file) replacing the tokenizer's; saved with every
    # checkpoint, so later stages and the pushed model use it too
    chat_template: str | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.tiny is None):
            raise ValueError("give exactly one of `path` (Hub id or local folder) and `tiny` (build a tiny model)")
        return self

    def trains_lora(self) -> bool:
        """Whether the stages train a LoRA adapter on a frozen base: a new one (``lora``), or the one a local
        ``path`` holds (``adapter_config.json``), which SFT and GRPO train further whatever ``lora`` says."""
        return self.lora is not None or (
            self.path is not None and (Path(self.path).expanduser() / "adapter_config.json").is_file()
        )


class SourceSettings(Strict):
    """Where rows come from and how their columns map to question/answer/reasoning (one dataset)."""

    # Hub id, local .json/.jsonl/.parquet/.csv file, or folder (of such files, a Hub snapshot, or save_to_disk's)
    path: str | None = None
    # default: from a known Hub id, else inferred from a local file's rows (GSM8K, OpenThoughts, TRL's formats), else
    # columns; messages, prompt_completion and text are TRL's dataset formats, trl picks one of them from the columns
    adapter: (
        Literal["gsm8k", "openthoughts", "columns", "arithmetic", "messages", "prompt_completion", "text", "trl"] | None
    ) = None
    config: str | None = None  # Hub dataset config; gsm8k defaults to "main"
    split: str = "train"
    # role -> column: question, answer (the gold), reasoning (worked solution); TRL's formats: messages, prompt,
    # completion, text
    columns: dict[str, str] = {}
    max_samples: int | None = Field(None, gt=0)  # the first N usable rows (arithmetic: the number generated)
    only_correct: bool = True  # openthoughts: keep only traces marked correct
    # arithmetic: share of two-step worked solutions whose answer is the first step's result (a noisy teacher)
    teacher_error_rate: float = Field(0.0, ge=0.0, le=1.0)
    _adapter_inferred: bool = PrivateAttr(False)  # the adapter was read off a local file's rows

    @model_validator(mode="after")
    def _resolve_adapter(self):
        if self._has_no_source():
            return self
        if self.adapter is None:
            if self.path is None:
                raise ValueError("give `path` (Hub id or local file) or `adapter: arithmetic` (generated problems)")
            inferred = _infer_local_adapter(self.path, self.config)
            self.adapter = KNOWN_DATASETS.get(self.path) or inferred or "columns"
            self._adapter_inferred = inferred is not None and self.path not in KNOWN_DATASETS
        if self.adapter == "arithmetic":
            if self.path is not None:
                raise ValueError("`adapter: arithmetic` generates its problems; remove `path`")
            if self.split not in ("train", "test"):
                raise ValueError(f"split {self.split!r}: the arithmetic generator has 'train' and 'test'")
            if self.max_samples is None:
                self.max_samples = 1000
            from recipe_cli.synthetic import ALWAYS_ENOUGH, count_problems

            if self.max_samples > ALWAYS_ENOUGH and self.max_samples > count_problems(self.split):
                raise ValueError(
                    f"max_samples {self.max_samples}: the arithmetic generator has {count_problems(self.split)} "
                    f"distinct {self.split} problems; ask for at most that many"
                )
        elif self.teacher_error_rate:
            raise ValueError("`teacher_error_rate` applies to `adapter: arithmetic` only; remove it")
        elif self.path is None:
            raise ValueError(f"`adapter: {self.adapter}` needs `path` (Hub id or local file)")
        if self.adapter == "gsm8k" and self.config is None and not is_local_path(self.path):
            self.config = "main"
        unknown = set(self.columns) - {"question", "answer", "reasoning", *TRL_FORMAT_ROLES}
        if unknown:
            raise ValueError(
                f"columns: unknown role(s) {sorted(unknown)}; map 'question', 'answer' and 'reasoning' to your columns "
                f"(TRL's formats: {', '.join(TRL_FORMAT_ROLES)})"
            )
        return self

    def _has_no_source(self) -> bool:
        """A stage dataset made of a ``mixture`` names no source itself (see ``DatasetSettings``)."""
        return False

    @property
    def adapter_inferred(self) -> bool:
        return self._adapter_inferred

    def describe_source(self) -> str:
        """The source in a few words, e.g. ``openai/gsm8k (adapter gsm8k), split train``; a dataset's ``config``
        (``open-thoughts/OpenThoughts-114k`` has ``default`` and ``metadata``, with other columns) is named too.

        >>> SourceSettings(path="openai/gsm8k", config="main").describe_source()
        'openai/gsm8k (adapter gsm8k), config main, split train'
        """
        source = self.path or "generated arithmetic problems"
        how = " inferred from the rows" if self.adapter_inferred else ""
        config = f", config {self.config}" if self.config else ""
        return f"{source} (adapter {self.adapter}{how}){config}, split {self.split}"


class MixtureSource(SourceSettings):
    """One dataset of a mixture: its own source and columns, and the share of its rows kept (``weight``)."""

    weight: float = Field(1.0, gt=0.0, le=1.0)  # fraction of this dataset's rows kept (seeded), as open-r1's


class DecontaminationSettings(Strict):
    """Training rows whose question overlaps a benchmark question are removed: on by default.

    ``ngram``: a row is contaminated when its question shares a word n-gram with a benchmark
    question, both normalised (lower case, punctuation removed, whitespace collapsed); a question
    shorter than n words counts as one n-gram. ``exact``: only the same normalised question.
    """

    enabled: bool = True
    against_eval: bool = True  # every eval set of the recipe (each of eval.datasets)
    benchmarks: list[str] = []  # more local files (.jsonl/.json/.parquet/.csv) with a question/problem/prompt column
    ngram: int = Field(8, gt=0)  # words; 8 as open-r1's decontaminate.py and the GPT-3 paper's 13 for long texts
    # default ngram; exact for generated problems, which share their templates' n-grams by design
    match: Literal["ngram", "exact"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if isinstance(value, bool):  # `decontaminate: false`
            return {"enabled": value}
        return value


class DifficultySettings(Strict):
    """Keep prompts the stage's starting model solves between ``min_pass_rate`` and ``max_pass_rate`` of the time.

    ``samples`` completions per prompt are drawn with eval's generation code and scored by the
    recipe's ``accuracy`` reward with its parameters; results are cached in ``runs/<name>/data/pass_rates/``.
    """

    samples: int = Field(8, ge=1)
    min_pass_rate: float = Field(0.0, ge=0.0, le=1.0)
    max_pass_rate: float = Field(1.0, ge=0.0, le=1.0)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int | None = Field(None, gt=0)  # default: grpo.trainer.max_completion_length
    batch_size: int = Field(256, gt=0)  # sequences generated together
    backend: Literal["auto", "transformers", "vllm"] = "auto"  # auto: vllm when installed and on a GPU

    @model_validator(mode="after")
    def _range(self):
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(
                f"min_pass_rate {self.min_pass_rate:g} is above max_pass_rate {self.max_pass_rate:g}; swap them"
            )
        return self


class DatasetSettings(SourceSettings):
    """A stage's rows: one source (or a ``mixture``), then the optional steps of ``recipe_cli.data.chain``.

    Order: read through the adapter -> exact duplicates -> near duplicates -> decontamination ->
    token-length filters -> pass-rate filter -> ``fraction`` -> ``max_samples`` (``shuffle``
    reorders the source before all of them).
    """

    mixture: list[MixtureSource] | None = Field(None, min_length=1)  # several datasets instead of `path`
    shuffle: bool = False  # seeded (recipe seed) shuffle of the source rows before any step
    drop_duplicates: bool = False  # questions equal after normalising case, whitespace and punctuation
    near_duplicates: float | None = Field(None, gt=0.0, le=1.0)  # MinHash Jaccard threshold on word 3-grams, e.g. 0.8
    decontaminate: DecontaminationSettings = Field(default_factory=DecontaminationSettings)
    max_prompt_tokens: int | None = Field(None, gt=0)  # drop rows whose rendered prompt is longer
    # sft only: drop rows whose completion (with its end-of-turn token) is longer, e.g. GRPO's max_completion_length
    max_completion_tokens: int | None = Field(None, gt=0)
    difficulty: DifficultySettings | None = None  # pass-rate filter
    fraction: float | None = Field(None, gt=0.0, le=1.0)  # keep this share of the rows left (seeded); reads them all

    def _has_no_source(self) -> bool:
        if self.mixture is None:
            return False
        if self.path is not None or self.adapter is not None:
            raise ValueError("give either `path`/`adapter` or `mixture`, not both")
        return True

    @model_validator(mode="after")
    def _defaults_for_generated(self):
        if self.decontaminate.match is None:
            generated = self.adapter == "arithmetic" or any(s.adapter == "arithmetic" for s in self.mixture or [])
            self.decontaminate.match = "exact" if generated else "ngram"
        return self

    @property
    def sources(self) -> list[SourceSettings]:
        """The datasets read: the mixture's, or this section itself."""
        return list(self.mixture) if self.mixture is not None else [self]

    def describe_source(self) -> str:
        if self.mixture is None:
            return super().describe_source()
        parts = [f"{s.describe_source()} x{s.weight:g}" for s in self.mixture]
        return "mixture of " + "; ".join(parts)


def _infer_local_adapter(path: str, config: str | None = None) -> str | None:
    """The adapter a local file's rows fit (gsm8k, openthoughts, TRL's formats), or a local folder's first data
    file's (a Hub snapshot, save_to_disk's), or None; unreadable files are reported later."""
    if not is_local_path(path):
        return None
    from recipe_cli.data.files import first_data_file, infer_adapter, read_head

    local = Path(path).expanduser()
    file = first_data_file(local, config) if local.is_dir() else local if local.is_file() else None
    if file is None:
        return None
    try:
        return infer_adapter(read_head(file))
    except (RecipeError, OSError, ValueError):
        return None


class PromptSettings(Strict):
    """What every stage and the eval show the model: a conversation (a system and a user message, rendered
    with the model's chat template), or one plain-text ``template`` for a base model without one, as
    DeepSeek-R1-Zero was trained (``"... User: {question}\\nAssistant: <think>"``)."""

    system: str | None = DEFAULT_SYSTEM_PROMPT
    user: str = "{question}"
    template: str | None = None  # plain text with {question}; replaces system and user and the chat template

    @field_validator("user")
    @classmethod
    def _user_placeholders(cls, value: str) -> str:
        _check_placeholders(value, {"question"}, required={"question"})
        return value

    @field_validator("template")
    @classmethod
    def _template_placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            _check_placeholders(value, {"question"}, required={"question"})
        return value

    @model_validator(mode="after")
    def _one_kind(self):
        if self.template is not None and {"system", "user"} & self.model_fields_set:
            raise ValueError("`template` is the whole prompt in plain text; remove `system` and `user` (or template)")
        return self


# Steps of a training stage's data chain that the eval's dataset does not take.


def active_training_steps(dataset: DatasetSettings) -> list[str]:
    """The training-data steps a dataset section turns on (a saved recipe lists every field, defaults included;
    decontamination is about training rows and does nothing to an eval set).

    >>> active_training_steps(DatasetSettings(adapter="arithmetic", fraction=0.5, shuffle=True))
    ['shuffle', 'fraction']
    """
    on = {
        "mixture": dataset.mixture is not None,
        "shuffle": dataset.shuffle,
        "drop_duplicates": dataset.drop_duplicates,
        "near_duplicates": dataset.near_duplicates is not None,
        "difficulty": dataset.difficulty is not None,
        "fraction": dataset.fraction is not None,
    }
    return [name for name, active in on.items() if active]


def _no_completion_filter(dataset: DatasetSettings, stage: str, fix: str) -> None:
    if dataset.max_completion_tokens is not None:
        raise ValueError(f"dataset.max_completion_tokens filters SFT completions; {stage} has none to filter ({fix})")


def _no_plain_text(dataset: DatasetSettings, stage: str) -> None:
    if any(source.adapter == "text" for source in dataset.sources):
        raise ValueError(
            f"dataset: `adapter: text` is plain text for SFT; {stage} needs a question and a gold answer "
            "(adapter columns, prompt_completion or messages with `columns: {answer: ...}`)"
        )


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


class DynamicSamplingSettings(Strict):
    """DAPO's dynamic sampling: groups whose completions all got the same reward are replaced by fresh prompts.

    See ``recipe_cli.dynamic_sampling``. Each round draws as many fresh prompts as the batch still
    lacks informative groups; after ``max_rounds`` the zero-signal groups left stay in the batch.
    """

    enabled: bool = False
    # extra generation rounds per generation batch, at most; 0 measures the zero-signal share and replaces nothing
    max_rounds: int = Field(4, ge=0)


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
    dynamic_sampling: DynamicSamplingSettings = Field(default_factory=DynamicSamplingSettings)
    divergence: DivergenceSettings | None = None  # `js`, or {name: k1, in: reward}; default with beta > 0: k3 in loss

    @field_validator("rewards")
    @classmethod
    def _some_weight(cls, value: list[RewardSettings]) -> list[RewardSettings]:
        # TRL sums weight x score: with every weight 0 each completion's total is 0, every advantage 0
        if all(reward.weight == 0 for reward in value):
            raise ValueError(
                "every reward has weight 0, so every completion's total reward is 0: zero advantage, GRPO learns "
                "nothing; give at least one reward a weight other than 0 (e.g. accuracy 1.0)"
            )
        return value

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
        beta = effective_setting("GRPOConfig", trainer, "beta")
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
        return effective_setting("GRPOConfig", self.trainer, "beta")

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

    @model_validator(mode="after")
    def _prompts_only(self):
        _no_completion_filter(self.dataset, "grpo", "its budget is trainer.max_completion_length")
        _no_plain_text(self.dataset, "grpo")
        return self


class EvalDatasetSettings(DatasetSettings):
    """One of several eval sets: a dataset section with a ``name`` for its results and its table."""

    name: str  # e.g. gsm8k, math500; names eval/<label>@<name>.json

    @field_validator("name")
    @classmethod
    def _set_name(cls, value: str) -> str:
        return _file_name(value, "an eval set name", "eval/<label>@<name>.json")


class EvalSettings(Strict):
    """Evaluation on a held-out split, scored with the accuracy reward's answer checker.

    Greedy accuracy is always measured; ``num_samples > 1`` adds a seeded sampling pass for
    pass@k and maj@k. ``datasets`` evaluates on several sets, each reported in a table of its
    own; the first is the headline set (``dataset``), whose results the model card publishes.
    """

    dataset: DatasetSettings | None = None
    datasets: list[EvalDatasetSettings] = []
    max_new_tokens: int = Field(512, gt=0)  # a completion that reaches it counts as truncated
    batch_size: int = Field(128, gt=0)  # completions generated together (prompts sorted by length, left-padded)
    num_samples: int = Field(1, gt=0)  # sampled completions per problem; 1 = greedy only
    temperature: float = Field(1.0, gt=0.0)  # sampling pass only; greedy is greedy
    top_p: float = Field(1.0, gt=0.0, le=1.0)  # sampling pass only
    pass_k: list[int] = []  # k values for pass@k and maj@k; default 1, powers of two, num_samples
    backend: Literal["auto", "transformers", "vllm"] = "auto"  # auto: vllm when installed and on a GPU

    @model_validator(mode="after")
    def _one_headline_set(self):
        if self.datasets:
            names = [d.name for d in self.datasets]
            if len(set(names)) < len(names):
                raise ValueError(f"datasets: two sets share a name ({names}); give each its own `name`")
            headline = DatasetSettings(**self.datasets[0].model_dump(exclude={"name"}, exclude_unset=True))
            if self.dataset is not None and self.dataset != headline:
                raise ValueError("give `dataset` (one eval set) or `datasets` (several, the first is the headline)")
            self.dataset = headline
        elif self.dataset is None:
            raise ValueError("give `dataset` (the eval set) or `datasets` (several named sets)")
        return self

    @property
    def sets(self) -> list[tuple[str, str, DatasetSettings]]:
        """``(suffix, title, dataset)`` of every eval set: results of a set other than the headline one are
        labelled ``<label>@<name>``; the headline set's keep the plain label.

        >>> settings = EvalSettings(datasets=[{"name": "gsm8k", "path": "openai/gsm8k", "split": "test"},
        ...     {"name": "math500", "path": "HuggingFaceH4/MATH-500", "split": "test"}])
        >>> [(suffix, title) for suffix, title, _ in settings.sets]
        [('', 'gsm8k'), ('@math500', 'math500')]
        """
        headline = self.datasets[0].name if self.datasets else (self.dataset.path or self.dataset.adapter)
        return [("", headline, self.dataset)] + [(f"@{d.name}", d.name, d) for d in self.datasets[1:]]

    @model_validator(mode="after")
    def _ks_fit_the_samples(self):
        for _, _, dataset in self.sets:
            _no_completion_filter(dataset, "eval", "its budget is eval.max_new_tokens")
            _no_plain_text(dataset, "eval")
            steps = active_training_steps(dataset)
            if steps:
                raise ValueError(
                    f"dataset.{steps[0]} is a training-data step; the eval reads its split as it is "
                    "(use max_samples for a subset), so remove it"
                )
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
    # dtype of the pushed weights; auto: the compute dtype the stage trained with (model.dtype), not the
    # float32 master weights its checkpoints keep, so a bf16 recipe publishes bf16 files
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
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


class VLLMServerSettings(Strict):
    """TRL's vLLM server for ``grpo.trainer.vllm_mode: server``; ``recipe serve RECIPE`` starts it with these."""

    host: str = "0.0.0.0"  # where the server listens; training connects to grpo.trainer.vllm_server_host
    port: int = Field(8000, gt=0, lt=65536)
    tensor_parallel_size: int = Field(1, gt=0)
    data_parallel_size: int = Field(1, gt=0)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    max_model_len: int | None = Field(None, gt=0)

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size * self.data_parallel_size


class LaunchSettings(Strict):
    """How training runs: in the ``recipe`` process, or as ``num_processes`` ranks under ``accelerate launch``.

    ``accelerate_config`` is one of the configs TRL ships (DDP ``multi_gpu``, DeepSpeed ``zero1``,
    ``zero2``, ``zero3``, FSDP ``fsdp1``, ``fsdp2``) or a path to an accelerate config file. The
    multi-node settings are accelerate's: each machine runs the same command with its own
    ``machine_rank``.
    """

    num_processes: int = Field(1, gt=0)  # ranks in all, over every machine
    accelerate_config: str | None = None
    num_machines: int = Field(1, gt=0)
    machine_rank: int = Field(0, ge=0)
    main_process_ip: str | None = None  # the machine of rank 0, as the other machines reach it
    main_process_port: int | None = Field(None, gt=0, lt=65536)  # default: a free port (one machine), else 29500
    vllm_server: VLLMServerSettings = Field(default_factory=VLLMServerSettings)

    @model_validator(mode="after")
    def _machines_fit(self):
        if self.machine_rank >= self.num_machines:
            raise ValueError(
                f"machine_rank {self.machine_rank} is not one of the {self.num_machines} machines; "
                f"number them 0 to {self.num_machines - 1}"
            )
        if self.num_processes % self.num_machines:
            raise ValueError(
                f"num_processes {self.num_processes} does not split over {self.num_machines} machines; "
                "give the total, a multiple of num_machines (e.g. 8 GPUs x 2 machines = 16)"
            )
        if self.num_machines > 1 and not self.main_process_ip:
            raise ValueError("num_machines > 1 needs main_process_ip: the address of machine 0 (machine_rank 0)")
        return self

    @property
    def processes_per_machine(self) -> int:
        return self.num_processes // self.num_machines

    @property
    def config_label(self) -> str:
        """How messages name the accelerate config: ``launch.accelerate_config 'zero3'``."""
        return f"launch.accelerate_config {self.accelerate_config!r}"


class Recipe(Strict):
    """A whole run: the starting model, the prompt, and the stages to run in order."""

    name: str  # names the run folder runs_dir/name
    # TRL's seed for both stages, the tiny model's init, generated data; numpy takes 0 to 2**32 - 1
    seed: int = Field(42, ge=0, le=2**32 - 1)
    runs_dir: str = "runs"
    model: ModelSettings
    prompt: PromptSettings = Field(default_factory=PromptSettings)
    sft: SFTSettings | None = None
    grpo: GRPOSettings | None = None
    eval: EvalSettings | None = None
    push: PushSettings | None = None
    launch: LaunchSettings = Field(default_factory=LaunchSettings)

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return _file_name(value, "a run name", "the folder runs_dir/<name>")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def training_stages(self) -> list[str]:
        return [stage for stage in TRAINING_STAGES if getattr(self, stage) is not None]


def _file_name(value: str, what: str, names: str) -> str:
    """A name that becomes part of a path: letters, digits, '_', '.' and '-', a letter or digit first.

    >>> _file_name("math-500", "an eval set name", "eval/<label>@<name>.json")
    'math-500'
    """
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", value):
        raise ValueError(
            f"{value!r} is not {what}; use letters, digits, '_', '.' and '-', starting with a letter or digit "
            f"(it names {names})"
        )
    return value


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


# Required keys whose fix is more than adding them where they are missing.
MISSING_HINTS = {"push.repo_id": "set it to user-or-org/model-name, or pass `recipe push --repo-id`"}


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
        if path in MISSING_HINTS:
            return f"{path}: required but missing; {MISSING_HINTS[path]}"
        where = f"the {_dotted(loc[:-1])} section" if len(loc) == 2 else _dotted(loc[:-1]) or "the recipe"
        return f"{path}: required but missing; add `{loc[-1]}:` to {where}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("value_error", "assertion_error") and "input" in error:
        given = error["input"]
        if not isinstance(given, (dict, list)):
            said = ", got " in message  # pydantic's own words for it: "got a number with a fractional part"
            message = f"{message[0].lower()}{message[1:]}{f' ({given!r})' if said else f', got {given!r}'}"
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


def read_recipe_file(path: str | Path, foreign: ForeignOptions | None = None) -> dict:
    """Read a recipe YAML file into a mapping, with one-line errors for missing or malformed files.

    An open-r1 recipe or a ``trl sft|grpo --config`` file is translated into a recipe mapping
    (``recipe_cli.foreign``; ``foreign`` says how), so every command reads them too.
    """
    from recipe_cli.foreign import OLD_RELEASE, is_foreign, translate

    data, duplicates = read_yaml_file(path)
    if is_foreign(data):  # read as TRL and open-r1 read it: PyYAML keeps the last of a repeated key
        return translate(data, foreign, str(path), duplicates).recipe
    if duplicates:
        raise duplicate_key_error(path, duplicates[0])
    if foreign is not None and foreign.old_defaults:
        raise RecipeError(
            f"{path} is a recipe: --old-defaults reads open-r1 and TRL files with the defaults of {OLD_RELEASE}; "
            "a recipe's settings are its own: drop --old-defaults"
        )
    return data


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping: PyYAML keeps the last without a word (a second ``sft:`` block would
    replace the whole first one)."""

    def __init__(self, key: Any, line: int, first: int):
        super().__init__(f"`{key}` is given twice")
        self.key, self.line, self.first = key, line, first


class _RecordingLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (the last of a repeated key wins), noting every key given twice."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[DuplicateKey] = []


def _mapping_noting_duplicates(loader: _RecordingLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden, as YAML means
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = key in first
        except TypeError:  # an unhashable key: the mapping constructor says so itself
            continue
        if seen:
            loader.duplicates.append(DuplicateKey(key, key_node.start_mark.line + 1, first[key] + 1))
        first[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_RecordingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_noting_duplicates)


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """PyYAML's error (several lines, with the text quoted and a caret) as one phrase: where and what.

    >>> try:
    ...     yaml.safe_load("name: [unclosed\\nmodel: {")
    ... except yaml.YAMLError as error:
    ...     describe_yaml_error(error)
    "not valid YAML at line 2, column 6: expected ',' or ']', but got ':'"
    """
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(error, "problem", None) or "cannot be parsed").split())
    return f"not valid YAML{where}: {problem}"


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file's top-level mapping, with one-line errors for missing or malformed files and repeated keys."""
    data, duplicates = read_yaml_file(path)
    if duplicates:
        raise duplicate_key_error(path, duplicates[0])
    return data


def duplicate_key_error(path: str | Path, duplicate: DuplicateKey) -> RecipeError:
    """The one-line error for a key a recipe gives twice."""
    return RecipeError(
        f"{path}: line {duplicate.line} gives `{duplicate.key}` again (first at line {duplicate.first}), and YAML "
        "would keep only the last; merge the two into one"
    )


def read_yaml_file(path: str | Path) -> tuple[dict, list[DuplicateKey]]:
    """A YAML file's top-level mapping as ``yaml.safe_load`` reads it (a repeated key: the last wins), and every
    repeated key; one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file '{path}' not found; pass the path of a YAML recipe, e.g. recipes/demo.yaml")
    try:
        loader = _RecordingLoader(path.read_text())
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: {describe_yaml_error(error)}; fix the syntax there") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a text file; a recipe is a YAML file") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise RecipeError(f"{path}: the recipe is {kind}; it needs at least `name:` and `model:`")
    return data, loader.duplicates


def load_recipe(
    path: str | Path,
    overrides: list[str] = (),
    options: dict[str, dict[str, Any]] | None = None,
    foreign: ForeignOptions | None = None,
) -> Recipe:
    """Read, override and validate a recipe; raise one ``RecipeError`` listing every problem.

    ``options`` are values of command-line options by section (``{"push": {"revision": "v2"}}``),
    merged after the ``--set`` overrides and taken as given rather than read as YAML. ``foreign``:
    how to read an open-r1 or TRL file (``recipe_cli.foreign``).
    """
    return validate_recipe(recipe_data(path, overrides, options, foreign), source=str(path))


def recipe_data(
    path: str | Path,
    overrides: list[str] = (),
    options: dict[str, dict[str, Any]] | None = None,
    foreign: ForeignOptions | None = None,
) -> dict:
    """The raw recipe mapping with ``--set`` overrides and command-line options applied, not yet validated."""
    data = read_recipe_file(path, foreign)
    for text in overrides:
        apply_override(data, *parse_override(text))
    for section, values in (options or {}).items():
        if values:
            current = data.get(section)
            data[section] = {**(current if isinstance(current, dict) else {}), **values}
    return data


def coerce_trainer_section(stage: str, section: Any) -> tuple[Any, list[str]]:
    """A raw stage section with its ``trainer:`` values read as the TRL config's types (YAML reads ``5e-3`` as a
    string), and the problems found there; a section without a ``trainer:`` mapping comes back as given.

    >>> coerce_trainer_section("sft", {"trainer": {"learning_rate": "5e-3"}})
    ({'trainer': {'learning_rate': 0.005}}, [])
    """
    trainer = section.get("trainer") if isinstance(section, dict) else None
    if not isinstance(trainer, dict):
        return section, []
    coerced, problems = check_trainer_settings(TRAINER_CLASSES[stage], trainer, f"{stage}.trainer")
    return {**section, "trainer": {**trainer, **coerced}}, problems


def validate_recipe(data: dict, source: str = "recipe") -> Recipe:
    """Validate a raw recipe mapping (left as given); every problem found is listed in one ``RecipeError``."""
    problems = []
    data = dict(data)
    for stage in TRAINER_CLASSES:
        if stage not in data:
            continue
        data[stage], found = coerce_trainer_section(stage, data[stage])
        problems += found
        trainer = data[stage].get("trainer") if isinstance(data[stage], dict) else None
        if stage == "grpo" and isinstance(trainer, dict) and not found:
            problems += _check_generation_batch(trainer, _raw_world_size(data))
    problems += _check_rewards(data.get("grpo"))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        problems += [_describe(e) for e in error.errors()]
        problems += _check_files_alone(data)
        recipe = None
    if recipe is not None:
        problems += check_recipe(recipe)
    if problems:
        raise RecipeError(_join(source, problems))
    return recipe


def _check_files_alone(data: dict) -> list[str]:
    """The model folder and the data files of the sections that are valid on their own, for a recipe that failed
    the schema elsewhere: a missing file is reported beside those problems, not only once they are fixed."""
    model = data.get("model")
    path = model.get("path") if isinstance(model, dict) else None
    problems = _check_model_path(path) if isinstance(path, str) else []
    for stage in ("sft", "grpo", "eval"):
        section = data.get(stage)
        if not isinstance(section, dict):
            continue
        sections = [(f"{stage}.dataset", DatasetSettings, section.get("dataset"))]
        if stage == "eval" and isinstance(section.get("datasets"), list):
            sections += [(f"eval.datasets.{i}", EvalDatasetSettings, d) for i, d in enumerate(section["datasets"])]
        for where, cls, raw in sections:
            if not isinstance(raw, dict):
                continue
            try:
                dataset = cls.model_validate(raw)
            except ValidationError:
                continue  # the schema's own messages name what is wrong with it
            problems += _check_dataset(dataset, where)
    return problems


def _check_model_path(path: str) -> list[str]:
    """``model.path``: a Hub id or a local folder that exists (its contents are checked with the recipe)."""
    if not is_local_path(path) and not HUB_ID.match(path):
        return [f"model.path: '{path}' is neither a local folder nor a Hub id"]
    if is_local_path(path) and not Path(path).expanduser().exists():
        return [f"model.path: '{path}' does not exist; give a model folder or a Hub id"]
    return []


def _raw_world_size(data: dict) -> int:
    """``launch.num_processes`` of a raw recipe, 1 when absent or not a number (the schema reports that)."""
    launch = data.get("launch")
    value = launch.get("num_processes", 1) if isinstance(launch, dict) else 1
    return value if isinstance(value, int) and value > 0 else 1


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
    value = effective_setting("GRPOConfig", trainer, "max_completion_length")
    return value if isinstance(value, int) else None


def check_recipe(recipe: Recipe) -> list[str]:
    """Checks across fields and against the outside world (local files)."""
    problems = _check_model_path(recipe.model.path) if recipe.model.path is not None else []
    if not problems and is_local_path(recipe.model.path):
        folder = Path(recipe.model.path).expanduser()
        problems += check_model_folder(folder, recipe, f"model.path: '{recipe.model.path}'")
    template = recipe.model.chat_template
    if template is not None and template.endswith((".jinja", ".j2")) and "{" not in template:
        if not Path(template).expanduser().is_file():
            problems.append(f"model.chat_template: '{template}' does not exist; give a .jinja file or the template")
    for stage in ("sft", "grpo", "eval"):
        settings = getattr(recipe, stage)
        if settings is not None:
            problems += _check_dataset(settings.dataset, f"{stage}.dataset")
    for index, dataset in enumerate(recipe.eval.datasets[1:] if recipe.eval is not None else [], start=1):
        problems += _check_dataset(dataset, f"eval.datasets.{index}")
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
    if recipe.grpo is not None and recipe.model.trains_lora() and recipe.grpo.trainer.get("sync_ref_model"):
        problems.append(
            f"grpo.trainer.sync_ref_model: with {_lora_source(recipe)} the reference is the model with its adapter "
            "switched off, or a frozen copy of it, so there is no reference model to sync (TRL refuses it with "
            "LoRA); remove sync_ref_model"
        )
    if recipe.push is not None and recipe.push.merge_lora and not recipe.model.trains_lora():
        problems.append("push.merge_lora: the recipe trains full weights (no model.lora), so there is nothing to merge")
    problems += _check_runs_dir(recipe.runs_dir)
    problems += _check_vllm_settings(recipe)
    problems += _check_dynamic_sampling(recipe)
    config = recipe.launch.accelerate_config
    if config is not None and accelerate_config_path(config) is None:
        problems.append(
            f"launch.accelerate_config: {config!r} is neither a file nor one of TRL's configs "
            f"({', '.join(shipped_accelerate_configs())}); give a name from that list or a path to a config file"
        )
    else:
        try:
            problems += _check_sharding(recipe, read_accelerate_config(recipe.launch))
        except RecipeError as error:
            problems.append(str(error))
    return problems


def _check_runs_dir(runs_dir: str) -> list[str]:
    """The run folder's parent must be a folder this user can write (or be creatable in one)."""
    folder = Path(runs_dir).expanduser()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return [f"runs_dir: '{folder}' is a file, not a folder; point runs_dir at a folder"]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [f"runs_dir: '{folder}' is not writable; point runs_dir at a folder you can write"]
    return []


VLLM_MODES = ("colocate", "server")  # TRL's VLLMGeneration takes these and raises on anything else


def _check_vllm_settings(recipe: Recipe) -> list[str]:
    """GRPO's vLLM settings that TRL checks only once vLLM starts (on the GPU machine, after the model loaded).

    The tensor-parallel size is checked against the processes per machine only when the launch settings give
    them (``launch.num_processes`` or ``--num-processes``): a recipe validated on a laptop is often trained with
    ``--num-processes`` on the cluster. The training command checks it again with the real count.
    """
    trainer = recipe.grpo.trainer if recipe.grpo is not None else {}
    problems = []
    mode = effective_setting("GRPOConfig", trainer, "vllm_mode")
    if mode not in VLLM_MODES:
        problems.append(f"grpo.trainer.vllm_mode: {mode!r} is not a vLLM mode; use colocate or server")
    memory = trainer.get("vllm_gpu_memory_utilization")
    if memory is not None and not (isinstance(memory, int | float) and 0 < memory <= 1):
        problems.append(
            f"grpo.trainer.vllm_gpu_memory_utilization: {memory} is not a fraction of the GPU's memory; "
            "give a number in (0, 1], e.g. 0.3 when vLLM shares the GPU with training"
        )
    parallel = effective_setting("GRPOConfig", trainer, "vllm_tensor_parallel_size")
    if isinstance(parallel, int) and parallel < 1:
        problems.append(f"grpo.trainer.vllm_tensor_parallel_size: {parallel}; give 1 or more GPUs per vLLM engine")
    elif mode == "colocate" and isinstance(parallel, int) and "num_processes" in recipe.launch.model_fields_set:
        per_machine = recipe.launch.processes_per_machine
        if per_machine % parallel:
            problems.append(
                f"grpo.trainer.vllm_tensor_parallel_size {parallel} does not divide the {per_machine} processes per "
                "machine (colocated vLLM groups ranks by it); use a divisor of the process count"
            )
    return problems + _check_vllm_server(trainer, recipe.launch)


def _check_vllm_server(trainer: dict[str, Any], launch: LaunchSettings) -> list[str]:
    """GRPO's server mode talks to the server `recipe serve` starts: same port, and use_vllm on."""
    if trainer.get("vllm_mode") == "server" and not trainer.get("use_vllm"):
        return ["grpo.trainer.vllm_mode: server does nothing without use_vllm: true; set use_vllm: true"]
    if not trainer.get("use_vllm") or effective_setting("GRPOConfig", trainer, "vllm_mode") != "server":
        return []
    port, served = effective_setting("GRPOConfig", trainer, "vllm_server_port"), launch.vllm_server.port
    if trainer.get("vllm_server_base_url") is None and port != served:
        return [
            f"grpo.trainer.vllm_server_port {port} is not launch.vllm_server.port {served}, where `recipe serve` "
            "listens; make them the same"
        ]
    return []


def shipped_accelerate_configs() -> list[str]:
    """The accelerate configs TRL ships (``trl/accelerate_configs/*.yaml``), by name, read without importing trl."""
    from recipe_cli.trainer_fields import package_dir

    return sorted(path.stem for path in (package_dir("trl") / "accelerate_configs").glob("*.yaml"))


def accelerate_config_path(config: str) -> Path | None:
    """The file of ``launch.accelerate_config``: a path as given, or the TRL config of that name; None if neither."""
    from recipe_cli.trainer_fields import package_dir

    given = Path(config).expanduser()
    if given.is_file():
        return given
    shipped = package_dir("trl") / "accelerate_configs" / f"{config}.yaml"
    return shipped if shipped.is_file() else None


def read_accelerate_config(launch: LaunchSettings) -> dict:
    """The accelerate config that ``launch.accelerate_config`` names, as a mapping ({} without one)."""
    path = accelerate_config_path(launch.accelerate_config) if launch.accelerate_config else None
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        problem = describe_yaml_error(error) if isinstance(error, yaml.YAMLError) else str(error).splitlines()[0]
        raise RecipeError(
            f"launch.accelerate_config: cannot read {path} ({problem}); give an accelerate config file"
        ) from None
    return data if isinstance(data, dict) else {}


# Where accelerate reads its DeepSpeed settings in a DeepSpeed JSON (DeepSpeedPlugin, accelerate 1.15); DeepSpeed
# also takes gather_16bit_weights_on_model_save for the last.
DEEPSPEED_JSON_KEYS = {
    "zero_stage": "zero_optimization.stage",
    "offload_optimizer_device": "zero_optimization.offload_optimizer.device",
    "offload_param_device": "zero_optimization.offload_param.device",
    "zero3_save_16bit_model": "zero_optimization.stage3_gather_16bit_weights_on_model_save",
}
# accelerate config keys that accelerate refuses beside deepspeed_config_file (they belong in the JSON); the
# launch leaves out gradient_accumulation_steps and gradient_clipping itself (recipe_cli.launch)
DEEPSPEED_FILE_CONFLICTS = (
    "zero_stage",
    "offload_optimizer_device",
    "offload_param_device",
    "offload_param_nvme_path",
    "offload_optimizer_nvme_path",
    "zero3_save_16bit_model",
)
# DeepSpeed JSON values transformers checks against each stage's trainer settings once the model has loaded
# (HfTrainerDeepSpeedConfig.trainer_config_process, transformers 5.23): a number there must be every stage's.
DEEPSPEED_TRAINER_VALUES = {
    "optimizer.params.lr": ("learning_rate",),
    "optimizer.params.betas": ("adam_beta1", "adam_beta2"),
    "optimizer.params.eps": ("adam_epsilon",),
    "optimizer.params.weight_decay": ("weight_decay",),
    "scheduler.params.warmup_max_lr": ("learning_rate",),
}


def read_deepspeed_file(settings: dict, name: str) -> dict | None:
    """The DeepSpeed JSON an accelerate config names (``deepspeed_config.deepspeed_config_file``); None without one.

    accelerate opens it from the folder the command runs in, as here.
    """
    import json

    file = (settings.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if not file or str(file).lower() == "none":
        return None
    path = Path(str(file)).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(
            f"{name}: its deepspeed_config_file {str(file)!r} does not exist (read from {Path.cwd()}); give the path "
            "of a DeepSpeed JSON config"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RecipeError(
            f"{name}: cannot read its deepspeed_config_file {file} ({str(error).splitlines()[0]}); give a DeepSpeed "
            "JSON config"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("zero_optimization"), dict):
        raise RecipeError(
            f"{name}: its deepspeed_config_file {file} has no zero_optimization section, which accelerate requires; "
            'add one, e.g. "zero_optimization": {"stage": 2}'
        )
    return data


def json_value(data: dict, dotted: str) -> Any:
    """The value at a dotted path of nested mappings, None where a level is missing.

    >>> json_value({"zero_optimization": {"stage": 3}}, "zero_optimization.stage"), json_value({}, "a.b")
    (3, None)
    """
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def deepspeed_settings(settings: dict, name: str) -> dict:
    """An accelerate config's DeepSpeed settings under accelerate's names (``zero_stage``,
    ``zero3_save_16bit_model``...), read from its DeepSpeed JSON when it names one."""
    inline = settings.get("deepspeed_config") or {}
    data = read_deepspeed_file(settings, name)
    if data is None:
        return inline
    found = {key: json_value(data, dotted) for key, dotted in DEEPSPEED_JSON_KEYS.items()}
    if found["zero3_save_16bit_model"] is None:
        found["zero3_save_16bit_model"] = json_value(data, "zero_optimization.gather_16bit_weights_on_model_save")
    return {**{key: value for key, value in found.items() if value is not None}, "zero_stage": found["zero_stage"] or 0}


def _check_deepspeed_file(recipe: Recipe, settings: dict, name: str) -> list[str]:
    """A DeepSpeed JSON config must work beside the accelerate config and agree with every stage's trainer settings
    where transformers compares them; the launch itself leaves batch sizes, clipping and precision to the stages
    (``recipe_cli.launch.launch_config_file``)."""
    data = read_deepspeed_file(settings, name)
    if data is None:
        return []
    file = settings["deepspeed_config"]["deepspeed_config_file"]
    problems = []
    beside = [key for key in DEEPSPEED_FILE_CONFLICTS if key in settings["deepspeed_config"]]
    if beside:
        problems.append(
            f"{name}: deepspeed_config sets {', '.join(beside)} beside deepspeed_config_file, which accelerate "
            f"refuses; set them in {file} (under zero_optimization) and remove them from the accelerate config"
        )
    for dotted, keys in DEEPSPEED_TRAINER_VALUES.items():
        value = json_value(data, dotted)
        if value is None or value == "auto":
            continue
        for stage in recipe.training_stages:
            trainer = getattr(recipe, stage).trainer
            wanted = [effective_setting(TRAINER_CLASSES[stage], trainer, key) for key in keys]
            wanted = wanted if len(wanted) > 1 else wanted[0]
            if value != wanted:
                problems.append(
                    f"{name}: {file} sets {dotted} {value} but {stage} trains with {wanted} "
                    f"({', '.join(f'{stage}.trainer.{key}' for key in keys)}), which transformers refuses once the "
                    f'model has loaded; set it to "auto" in {file}, and the value in each stage\'s trainer settings'
                )
                break
    return problems


def _lora_source(recipe: Recipe) -> str:
    """Where the adapter the stages train comes from, for messages: ``model.lora`` or ``model.path``'s adapter."""
    return "model.lora" if recipe.model.lora is not None else "the LoRA adapter in model.path"


def _check_sharding(recipe: Recipe, settings: dict) -> list[str]:
    """A sharded launch (``settings``: its accelerate config) must save a model the next stage can load, and
    LoRA must not meet a sharding that needs one dtype across the weights it shards together: a 16-bit base
    beside a float32 adapter (peft's default, what recipe_cli.precision plans) breaks FSDP1 and ZeRO-3."""
    launch = recipe.launch
    if launch.num_processes == 1:
        return []
    name = launch.config_label
    kind, problems = settings.get("distributed_type"), []
    fsdp = settings.get("fsdp_config") or {}
    deepspeed = deepspeed_settings(settings, name) if kind == "DEEPSPEED" else {}
    if kind == "DEEPSPEED":
        problems += _check_deepspeed_file(recipe, settings, name)
    version = str(fsdp.get("fsdp_version", 1))
    zero3 = str(deepspeed.get("zero_stage")) == "3"
    if kind == "FSDP":  # accelerate's default: full for FSDP1, sharded for FSDP2
        state = str(fsdp.get("fsdp_state_dict_type", "FULL_STATE_DICT" if version == "1" else "SHARDED_STATE_DICT"))
        if state.upper() != "FULL_STATE_DICT":
            problems.append(
                f"{name}: fsdp_state_dict_type {state} saves no model file (transformers writes one only from a full "
                "state dict), so the next stage, the eval and push would find none; set fsdp_state_dict_type: "
                "FULL_STATE_DICT in its fsdp_config (TRL's fsdp1 and fsdp2 do)"
            )
    if kind == "DEEPSPEED" and zero3 and str(deepspeed.get("zero3_save_16bit_model")).lower() != "true":
        file = (settings.get("deepspeed_config") or {}).get("deepspeed_config_file")
        fix = (
            f"set stage3_gather_16bit_weights_on_model_save: true under zero_optimization in {file}"
            if file and str(file).lower() != "none"  # read above (deepspeed_settings)
            else "set zero3_save_16bit_model: true in its deepspeed_config (TRL's zero3 does)"
        )
        problems.append(
            f"{name}: ZeRO-3 without zero3_save_16bit_model saves no model file, only DeepSpeed's own checkpoint, "
            f"so the next stage, the eval and push would find none; {fix}"
        )
    if not recipe.model.trains_lora() or recipe.model.dtype == "float32":
        return problems
    lora = _lora_source(recipe)
    if kind == "FSDP" and version == "1":
        problems.append(
            f"{name} (FSDP1) with {lora}: FSDP1 flattens each layer's weights into one tensor of one dtype, and "
            "a layer holds the 16-bit base and the float32 adapter; use fsdp2 (it shards each weight on its own) or DDP"
        )
    if kind == "DEEPSPEED" and zero3:
        problems.append(
            f"{name} (ZeRO-3) with {lora}: ZeRO-3 needs one dtype across the weights, so TRL trains a 16-bit "
            "adapter (small updates round away) and DeepSpeed refuses the float32 adapter SFT hands to GRPO; use "
            "zero2 or DDP (the frozen 16-bit base is small enough to keep whole on each GPU)"
        )
    return problems


WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def check_model_folder(folder: Path, recipe: Recipe, where: str) -> list[str]:
    """A local model folder holds a config, readable weights, a tokenizer and, for conversational prompts, a chat
    template; ``where`` names it in the messages (``model.path: 'DIR'``, ``--model 'DIR'``).

    Read from the files alone (no weights load), so a folder copied without its weights or its
    tokenizer, or with a weights file cut off, fails at validate time instead of minutes into a run.
    """
    if not folder.is_dir():
        return [f"{where} is not a folder; give a saved checkpoint folder (save_pretrained), e.g. runs/<name>/sft"]
    adapter = (folder / "adapter_config.json").is_file()
    has_weights = holds_weights(folder)
    has_tokenizer = holds_tokenizer(folder)
    is_model = (folder / "config.json").is_file() or adapter
    if is_model and not has_weights and not has_tokenizer and not adapter:  # a config copied alone: one line
        return [
            f"{where} holds neither weights (*.safetensors, *.bin) nor a tokenizer (tokenizer.json...); copy the "
            "whole folder the model and its tokenizer were saved to (save_pretrained)"
        ]
    problems = check_saved_weights(folder, where)
    if not is_model:
        return problems
    if not has_tokenizer and not adapter:
        problems.append(no_tokenizer(where))
    elif not adapter:
        problems += tokens_beyond_embeddings(folder, where)
    needs_template = recipe.prompt.template is None and recipe.model.chat_template is None
    if has_tokenizer and needs_template and not _has_chat_template(folder):
        problems.append(
            f"{where} has no chat template and the recipe's prompt is a conversation; set model.chat_template "
            "(a Jinja template or a .jinja file), or prompt.template for a plain-text prompt (R1-Zero style)"
        )
    return problems


def check_saved_weights(folder: Path, where: str) -> list[str]:
    """A folder holds a saved model: its config (or an adapter's) and weights files that are whole.

    What a push needs before it publishes a folder, and the first half of ``check_model_folder``.
    """
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        return [f"{where} has no config.json or adapter_config.json; is it a saved model folder?"]
    problems = []
    if not holds_weights(folder):
        problems.append(f"{where} holds no weights (*.safetensors, *.bin); copy the whole saved model folder")
    broken = unreadable_weights(folder)
    if broken is not None:
        problems.append(f"{where}: {broken}")
    return problems


def holds_weights(folder: Path) -> bool:
    """Whether a folder holds a weights file (``WEIGHT_FILES``), not counting the training state a trainer saves
    beside the model (``training_args.bin``, ``optimizer.pt``: they match the same patterns)."""
    return any(not is_training_state(path.name) for pattern in WEIGHT_FILES for path in folder.glob(pattern))


def tokens_beyond_embeddings(folder: Path, where: str) -> list[str]:
    """A tokenizer (``tokenizer.json``) with ids the model's embeddings have no row for: tokens added, a chat
    template's, without ``resize_token_embeddings``. The first text holding one fails in the embedding lookup
    with an IndexError; read from the files alone, and only when both say their size."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return []  # loading says what is wrong with them
    rows = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    vocab = (tokenizer.get("model") or {}).get("vocab")
    ids = [*(vocab.values() if isinstance(vocab, dict) else [])]
    ids += [token.get("id") for token in tokenizer.get("added_tokens") or [] if isinstance(token, dict)]
    ids = [i for i in ids if isinstance(i, int)]
    if not isinstance(rows, int) or not ids or max(ids) < rows:
        return []
    return [
        f"{where}: its tokenizer has ids up to {max(ids)} but the model's embeddings have {rows} rows (vocab_size "
        "in config.json); tokens were added without resizing the embeddings: call "
        "model.resize_token_embeddings(len(tokenizer)) and save the model again"
    ]


def holds_tokenizer(folder: Path) -> bool:
    """Whether a folder holds a saved tokenizer (``TOKENIZER_FILES``)."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def no_tokenizer(where: str) -> str:
    """The message for a model folder saved without its tokenizer (``where`` names the folder)."""
    return (
        f"{where} holds no tokenizer (tokenizer.json, tokenizer_config.json...); save the tokenizer with the "
        "model (tokenizer.save_pretrained) into that folder"
    )


def unreadable_weights(folder: Path) -> str | None:
    """What is wrong with the first ``*.safetensors`` file of ``folder`` that is cut off or not safetensors, and how
    to mend it, or None."""
    broken = damaged_weights(folder)
    if broken is None:
        return None
    return f"{broken}; copy it again from where the model was saved (or save the model again with save_pretrained)"


def damaged_weights(folder: Path) -> str | None:
    """What is wrong with the first ``*.safetensors`` file of ``folder`` that is cut off or not safetensors, or None.

    Reads the headers only: a safetensors file is an 8-byte little-endian header length, a JSON
    header giving each tensor's byte range, then the tensors (huggingface/safetensors, "Format").
    """
    for path in sorted(folder.glob("*.safetensors")):
        try:
            problem = _safetensors_problem(path)
        except OSError as error:  # a link to a blob that is gone (a copied cache snapshot), a file it cannot read
            problem = f"cannot be read ({error.strerror or error})"
        if problem is not None:
            return f"the weights file {path.name} {problem}: it is cut off or not a safetensors file"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with one safetensors file's header against its size, or None."""
    import json
    import struct

    size = path.stat().st_size
    with path.open("rb") as handle:
        length = struct.unpack("<Q", handle.read(8))[0] if size >= 8 else None
        if length is None or length > size - 8:
            return f"is {size} bytes, too short for its header"
        try:
            header = json.loads(handle.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "has no readable safetensors header"
    if size < 8 + length + end:
        return f"is {size} bytes where its header says {8 + length + end}"
    return None


def _has_chat_template(folder: Path) -> bool:
    import json

    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    try:
        return bool(config.is_file() and json.loads(config.read_text()).get("chat_template"))
    except (ValueError, UnicodeDecodeError):
        return False


def _check_dataset(dataset: DatasetSettings, where: str) -> list[str]:
    """Every source of a stage's dataset, its benchmark files, and the rows of local files (read, not loaded)."""
    if dataset.mixture is None:
        problems = _check_source(dataset, where)
    else:
        problems = [
            p for i, source in enumerate(dataset.mixture) for p in _check_source(source, f"{where}.mixture.{i}")
        ]
    for index, path in enumerate(dataset.decontaminate.benchmarks):
        local = Path(path).expanduser()
        if not local.is_file() or not local.name.endswith(LOCAL_DATA_SUFFIXES):
            problems.append(
                f"{where}.decontaminate.benchmarks.{index}: '{path}' is not a "
                f"{'/'.join(LOCAL_DATA_SUFFIXES)} file; give the path of a local benchmark file"
            )
    return problems


def _check_source(source: SourceSettings, where: str) -> list[str]:
    if source.path is None or not is_local_path(source.path):
        if source.path is not None and not HUB_ID.match(source.path):
            return [f"{where}.path: '{source.path}' is neither a local file nor a Hub dataset id"]
        return []
    local = Path(source.path).expanduser()
    if not local.exists():
        return [f"{where}.path: '{source.path}' does not exist; check the path (relative to where you run recipe)"]
    if local.is_file() and not local.name.endswith(LOCAL_DATA_SUFFIXES):
        return [f"{where}.path: '{source.path}' is not a {'/'.join(LOCAL_DATA_SUFFIXES)} file"]
    from recipe_cli.data.sources import check_local_source

    problem = check_local_source(source, where)
    return [f"{where}: {problem}"] if problem else []


def _check_dynamic_sampling(recipe: Recipe) -> list[str]:
    """Dynamic sampling swaps whole groups inside each process's share of the generation batch."""
    if recipe.grpo is None or not recipe.grpo.dynamic_sampling.enabled:
        return []
    world = recipe.launch.num_processes
    batch, generations, _ = generation_batch(recipe.grpo.trainer, world)
    per_process = batch // world
    if per_process % generations:
        return [
            f"grpo.dynamic_sampling: each process generates {per_process} completions, not whole groups of "
            f"num_generations={generations}; make per_device_train_batch_size x steps_per_generation a multiple of "
            f"{generations}"
        ]
    return []


def generation_batch(trainer: dict[str, Any], world: int = 1) -> tuple[int, int, str]:
    """GRPO's generation batch size over ``world`` processes, ``num_generations``, and how it was computed (as TRL
    does)."""

    def setting(key: str):
        return effective_setting("GRPOConfig", trainer, key)

    per_device, num_generations = setting("per_device_train_batch_size"), setting("num_generations")
    steps = setting("steps_per_generation") or setting("gradient_accumulation_steps")
    if trainer.get("generation_batch_size"):
        return trainer["generation_batch_size"], num_generations, "generation_batch_size"
    source = "steps_per_generation" if trainer.get("steps_per_generation") else "gradient_accumulation_steps"
    how = f"per_device_train_batch_size {per_device} x {source} {steps}"
    if world > 1:
        how += f" x {world} processes"
    return per_device * steps * world, num_generations, how


def too_few_grpo_prompts(prompts: int, trainer: dict[str, Any], world: int = 1) -> str | None:
    """Why ``prompts`` GRPO prompts would train no step, or None.

    TRL's sampler serves whole generation batches only: fewer prompts than one batch make no batch,
    and the trainer ended the stage at step 0 as finished.

    >>> too_few_grpo_prompts(5, {"per_device_train_batch_size": 24, "num_generations": 4})  # doctest: +ELLIPSIS
    'the 5 prompts are fewer than one generation batch of 6 (24 completions: ...), so GRPO would train no step; ...'
    >>> too_few_grpo_prompts(6, {"per_device_train_batch_size": 24, "num_generations": 4}) is None
    True
    """
    batch, generations, how = generation_batch(trainer, world)
    if prompts >= batch // generations:
        return None
    return (
        f"the {prompts} prompts are fewer than one generation batch of {batch // generations} ({batch} completions: "
        f"{how}), so GRPO would train no step; TRL generates for whole batches of prompts only: give more prompts "
        "or make the batch smaller"
    )


def _check_generation_batch(trainer: dict[str, Any], world: int) -> list[str]:
    if trainer.get("generation_batch_size") and trainer.get("steps_per_generation"):
        return ["grpo.trainer: set generation_batch_size or steps_per_generation, not both"]
    batch, num_generations, how = generation_batch(trainer, world)
    if num_generations is None or num_generations < 2:
        return [f"grpo.trainer.num_generations: {num_generations}; GRPO compares at least 2 completions per prompt"]
    micro = effective_setting("GRPOConfig", trainer, "per_device_train_batch_size") * world
    if trainer.get("generation_batch_size") and batch % micro:  # GRPOConfig refuses it when the stage starts
        step = math.lcm(micro, num_generations)
        below, above = batch // step * step, (batch // step + 1) * step
        fits = f"{below} or {above}" if below else str(above)
        processes = f" x {world} processes" if world > 1 else ""
        return [
            f"grpo.trainer.generation_batch_size: {batch} does not split into micro-batches of {micro} completions "
            f"(per_device_train_batch_size {micro // world}{processes}); use a multiple of {micro} that "
            f"num_generations {num_generations} divides, e.g. {fits}"
        ]
    if batch % num_generations:
        divisors = [g for g in range(2, batch + 1) if batch % g == 0]
        fits = f"num_generations in {divisors}" if divisors else "a larger batch"
        multiples = [num_generations * k for k in range(1, 4)]
        processes = num_generations // math.gcd(batch, num_generations)  # the fewest that make the batch fit
        launch = (
            f", or train on {processes} processes (--num-processes {processes}: a recipe written for several GPUs "
            "counts the batch over all of them)"
            if world == 1 and not trainer.get("generation_batch_size") and processes <= 16
            else ""
        )
        return [
            f"grpo.trainer.num_generations: {num_generations} does not divide the generation batch of {batch} "
            f"({how}); use {fits}, or make the batch a multiple of {num_generations} (e.g. {multiples}){launch}"
        ]
    return []
