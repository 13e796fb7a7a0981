"""Check a stage's ``trainer:`` mapping against the TRL config it will build, without importing TRL.

Unknown keys get a did-you-mean, keys that TRL or transformers removed get their replacement,
keys that the recipe sets elsewhere point there, and values are coerced to the field's type
(YAML 1.1 reads ``2e-5`` as a string; the field says it is a float).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from recipe_cli.trackers import check_report_to
from recipe_cli.trainer_fields import ENUMS, TrainerField, enum_values, trainer_fields

# Keys current TRL/transformers no longer accept, and what to write instead.
REMOVED_KEYS = {
    "torch_dtype": "was renamed; set `model.dtype` in the recipe (TRL silently ignores torch_dtype)",
    "max_prompt_length": (
        "was removed from GRPOConfig in TRL 0.28 (GRPO no longer truncates prompts); "
        "set `dataset.max_prompt_tokens` to drop longer prompts"
    ),
    "warmup_ratio": "was removed in transformers 5; write `warmup_steps: 0.1` (a value below 1 is a ratio)",
    "overwrite_output_dir": "was removed in transformers 5; recipe manages the run folder `runs/<name>/`",
    "evaluation_strategy": "was renamed; use `eval_strategy`",
    "max_seq_length": "was renamed in TRL; use `max_length`",
    "vllm_device": (
        "was removed from TRL; vLLM now runs colocated (`vllm_mode: colocate`) or as a server on GPUs of its own "
        "(`vllm_mode: server`, started by `recipe serve`)"
    ),
}

# Keys the recipe sets itself, from another section, so that one value cannot disagree with another.
OWNED_KEYS = {
    "output_dir": "recipe writes each stage to `runs/<name>/<stage>`; set `runs_dir` at the top level",
    "seed": "set `seed` at the top level of the recipe",
    "push_to_hub": "use the recipe's `push:` section (a Hub repo would be created before training starts)",
    "hub_model_id": "use `push.repo_id`",
    "model_init_kwargs": "set `model.dtype` and `model.revision` in the recipe",
    # one place for precision: model.dtype is the compute dtype; master weights stay float32 (recipe_cli.precision)
    "bf16": "set `model.dtype: bfloat16`: it turns on bf16 mixed precision on a GPU (master weights stay float32)",
    "fp16": "set `model.dtype: float16`: it turns on fp16 mixed precision on a GPU (master weights stay float32)",
    "reward_weights": "give each reward its `weight` in `grpo.rewards`",
    # the Trainer itself never reads it (only example scripts do): it would be silently ignored
    "resume_from_checkpoint": "pass --resume to `recipe sft|grpo|run`; it continues from the last complete checkpoint",
    # SFT's rows reach TRL tokenised (recipe_cli.chat): TRL would only change the tokenizer saved with the checkpoint,
    # so GRPO and eval would prompt in a template, or stop at a token, that SFT never trained on
    "chat_template_path": (
        "set `model.chat_template` (a .jinja file or the template text): SFT, GRPO and eval then share one template"
    ),
    "eos_token": "recipe ends each SFT target with the chat template's end-of-turn token, where GRPO and eval stop",
    "dataset_text_field": "recipe tokenises SFT's rows itself; name the text column with `sft.dataset.columns.text`",
    # set by the launcher recipe starts (recipe_cli.launch), which a trainer-level setting would contradict
    "deepspeed": "set `launch.accelerate_config` (zero1, zero2, zero3 or a config file) and `launch.num_processes`",
    "fsdp": "set `launch.accelerate_config` (fsdp1, fsdp2 or a config file) and `launch.num_processes`",
    "fsdp_config": "set `launch.accelerate_config` (fsdp1, fsdp2 or a config file) and `launch.num_processes`",
    # TRL renders GRPO's prompts with them, while SFT's examples and the eval's prompts are rendered without
    "chat_template_kwargs": (
        "SFT, GRPO and eval render prompts with `model.chat_template` alone, so GRPO never prompts otherwise than "
        "SFT trained and eval measures; write the choice into model.chat_template (e.g. a template with thinking off)"
    ),
}

# Values TRL only checks at the first loss computation, after the model has loaded.
CHOICES = {
    ("GRPOConfig", "loss_type"): ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"),
    ("GRPOConfig", "scale_rewards"): ("group", "batch", "none"),
    ("GRPOConfig", "importance_sampling_level"): ("token", "sequence", "sequence_token"),
    ("SFTConfig", "loss_type"): ("nll", "dft"),
    ("SFTConfig", "truncation_mode"): ("keep_start", "keep_end"),
    ("GRPOConfig", "vllm_importance_sampling_mode"): (
        "token_truncate",
        "token_mask",
        "sequence_truncate",
        "sequence_mask",
    ),
}

# Values TRL and transformers take without a word, or refuse only once training has started (a batch of 0, a
# negative learning rate, a temperature of 0): (lowest, whether it is allowed, highest, whether it is allowed)
RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    **dict.fromkeys(
        (
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "steps_per_generation",
            "generation_batch_size",
            "num_iterations",
            "max_completion_length",
            "max_length",
            "ref_model_sync_steps",  # TRL takes the step modulo it: 0 raised ZeroDivisionError at the first step
        ),
        (1, True, None, False),
    ),
    **dict.fromkeys(
        (
            "weight_decay",
            "max_grad_norm",  # 0: no clipping
            "warmup_steps",
            "dataloader_num_workers",
            "neftune_noise_alpha",
            "adam_epsilon",
            "beta",
            "epsilon",
            "epsilon_high",
        ),
        (0, True, None, False),
    ),
    **dict.fromkeys(("adam_beta1", "adam_beta2"), (0, True, 1, False)),
    **dict.fromkeys(
        (
            "learning_rate",  # 0: every step leaves the weights as they were
            "temperature",
            "repetition_penalty",
            "num_train_epochs",
            "logging_steps",
            "save_steps",
            "eval_steps",
        ),
        (0, False, None, False),
    ),
    "top_p": (0, False, 1, True),
    # a share of the tokens: TRL fed 1 - value to torch.quantile at the first loss (below 0 crashed), and took any
    # value from 1 up as "keep every token"
    "top_entropy_quantile": (0, True, 1, True),
    # reference = alpha x policy + (1 - alpha) x reference at each sync: 0 never moves it, above 1 extrapolates
    "ref_model_mixup_alpha": (0, False, 1, True),
    "min_p": (0, True, 1, True),
}
STEP_STRATEGIES = {"logging_steps": "logging_strategy", "save_steps": "save_strategy", "eval_steps": "eval_strategy"}
RANGE_HINTS = {
    "learning_rate": "0 trains nothing: every step leaves the weights as they were",
    "temperature": "GRPO learns from the differences between a prompt's samples (e.g. 0.7-1.0)",
    "top_entropy_quantile": "the share of tokens, by entropy, the policy loss keeps: 0.2 in the paper, 1 keeps all",
    "ref_model_mixup_alpha": "the policy's share of the reference after each sync (TRL's default 0.6)",
    "logging_steps": "a count of steps, or below 1 a share of the run",
    "save_steps": "a count of steps, or below 1 a share of the run",
    "eval_steps": "a count of steps, or below 1 a share of the run",
}


def out_of_range(key: str, value: Any) -> str | None:
    """Why ``value`` is outside what ``key`` can take, or None (also for keys without a range, and for null).

    >>> out_of_range("per_device_train_batch_size", 0)
    '0 is not a value it can take: it must be at least 1'
    >>> out_of_range("adam_beta1", 1.5), out_of_range("top_p", 1.0), out_of_range("max_steps", -1)
    ('1.5 is not a value it can take: it must be at least 0 and below 1', None, None)
    """
    if key == "max_steps" and isinstance(value, int) and value < 1 and value != -1:
        return f"{value} trains nothing: give a number of steps, or -1 to train for num_train_epochs"
    if key not in RANGES or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, low_allowed, high, high_allowed = RANGES[key]
    below = low is not None and (value < low or (value == low and not low_allowed))
    above = high is not None and (value > high or (value == high and not high_allowed))
    if not (below or above):
        return None
    bounds = []
    if low is not None:
        bounds.append(f"at least {low}" if low_allowed else f"above {low}")
    if high is not None:
        bounds.append(f"at most {high}" if high_allowed else f"below {high}")
    hint = f" ({RANGE_HINTS[key]})" if key in RANGE_HINTS else ""
    return f"{value} is not a value it can take: it must be {' and '.join(bounds)}{hint}"


# Optimizers transformers builds from another package, which it imports only when training starts
_BITSANDBYTES = ("bnb", "8bit", "32bit", "paged_", "ademamix", "lion")
OPTIMIZER_PACKAGES = [  # (name starts with, or contains for bitsandbytes), module, pip package
    (("galore_",), "galore_torch", "galore-torch"),
    (("apollo_",), "apollo_torch", "apollo-torch"),
    (("adamw_torch_4bit", "adamw_torch_8bit"), "torchao", "torchao"),
    (("schedule_free_",), "schedulefree", "schedulefree"),
    (("lomo", "adalomo"), "lomo_optim", "lomo-optim"),
    (("grokadamw",), "grokadamw", "grokadamw"),
    (("stable_adamw",), "optimi", "torch-optimi"),
    (("adamw_anyprecision",), "torchdistx", "torchdistx"),
]


def optimizer_package(name: str) -> tuple[str, str] | None:
    """The module and pip package the optimizer ``name`` (an ``optim`` value) needs beyond torch, or None.

    >>> optimizer_package("adamw_8bit"), optimizer_package("galore_adamw"), optimizer_package("adamw_torch_fused")
    (('bitsandbytes', 'bitsandbytes'), ('galore_torch', 'galore-torch'), None)
    """
    for starts, module, package in OPTIMIZER_PACKAGES:  # torchao's adamw_torch_8bit before bitsandbytes' 8bit
        if name.startswith(starts):
            return module, package
    if any(part in name for part in _BITSANDBYTES) or name.startswith("rmsprop_bnb"):
        return "bitsandbytes", "bitsandbytes"
    return None


_TYPE_WORDS = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string"}


def _types(annotation: str) -> set[str]:
    """The plain types an annotation admits: ``'int | str | None'`` -> ``{'int', 'str', 'None'}``.

    >>> sorted(_types("dict[str, Any] | str | None"))
    ['None', 'dict', 'str']
    >>> sorted(_types("SchedulerType | str"))
    ['str']
    """
    types = set()
    for part in re.split(r"\|(?![^\[]*\])", annotation):
        part = part.strip()
        base = part.split("[", 1)[0]
        if base in ("bool", "int", "float", "str", "dict", "list", "None"):
            types.add(base)
        elif base == "Literal":
            types.add("str")
        elif base == "Any":
            types.update({"bool", "int", "float", "str", "dict", "list"})
        elif base.endswith("Config"):  # e.g. ParallelismConfig, given as a mapping
            types.add("dict")
        else:  # enums such as SchedulerType take their string values
            types.add("str")
    return types


def coerce_value(field: TrainerField, value: Any) -> Any:
    """Return ``value`` as the field's type, or raise ``ValueError`` saying what was expected.

    >>> coerce_value(TrainerField("learning_rate", "float", 1e-6), "2e-5")
    2e-05
    >>> coerce_value(TrainerField("max_steps", "int", -1), 10.0)
    Traceback (most recent call last):
    ...
    ValueError: expected a whole number, got 10.0
    >>> coerce_value(TrainerField("save_strategy", "SaveStrategy | str", "steps"), False)  # `save_strategy: no`
    'no'
    >>> coerce_value(TrainerField("scale_rewards", "str", "group"), False)  # as GRPOConfig reads it: no scaling
    'none'
    """
    types = _types(field.annotation)
    if value is None:
        if "None" in types:
            return None
    elif isinstance(value, bool):
        if "bool" in types:
            return value
        if field.name.endswith("_strategy") and value is False:  # YAML 1.1 reads `save_strategy: no` as false
            return "no"
        if field.name == "scale_rewards":  # GRPOConfig's own reading of the older boolean form
            return "group" if value else "none"
    elif isinstance(value, int):
        if "int" in types or "float" in types:  # an int is a valid float; keep 50 as 50, not 50.0
            return value
    elif isinstance(value, float):
        if "float" in types:
            return value
    elif isinstance(value, str):
        for kind, convert in (("int", int), ("float", float)):
            if kind in types:
                try:
                    return convert(value)
                except ValueError:
                    pass
        if "str" in types:
            return value
    elif isinstance(value, dict):
        if "dict" in types:
            return value
    elif isinstance(value, list):
        if "list" in types:
            return value
    wanted = " or ".join(_TYPE_WORDS.get(t, f"a {t}") for t in sorted(types - {"None"}))
    raise ValueError(f"expected {wanted}, got {value!r}")


def suggest(name: str, candidates) -> str:
    """A ``; did you mean 'x'?`` suffix for the closest candidate, or nothing.

    >>> suggest("learning_rat", ["learning_rate", "seed"])
    "; did you mean 'learning_rate'?"
    >>> suggest("evaluation", ["eval", "push"])
    "; did you mean 'eval'?"
    """
    names = list(candidates)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not close:  # a longer or shorter spelling of a key: evaluation -> eval, lr_scheduler -> lr_scheduler_type
        close = [c for c in names if len(c) >= 3 and len(name) >= 3 and (c.startswith(name) or name.startswith(c))]
    return f"; did you mean '{close[0]}'?" if close else ""


TRAINER_CLASSES = {"sft": "SFTConfig", "grpo": "GRPOConfig"}  # the TRL config each stage's `trainer:` fills
STAGE_OF = {class_name: stage for stage, class_name in TRAINER_CLASSES.items()}
TRAINING_STAGES = tuple(TRAINER_CLASSES)  # in training order: SFT, then GRPO from its checkpoint


def _elsewhere(class_name: str, key: str, fields) -> str:
    """Where an unknown key belongs: the other stage's trainer, or the closest key of this one."""
    for other, stage in STAGE_OF.items():
        if other != class_name and key in trainer_fields(other):
            return f"; it is a {other} setting: put it under {stage}.trainer"
    return suggest(key, fields)


def check_trainer_settings(class_name: str, settings: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """Coerce ``settings`` for ``class_name``; return the coerced mapping and every problem found.

    ``where`` is the dotted path of the mapping in the recipe, used to name each problem.
    """
    fields = trainer_fields(class_name)
    coerced, problems = {}, []
    for key, value in settings.items():
        path = f"{where}.{key}"
        if key in REMOVED_KEYS:
            problems.append(f"{path}: '{key}' {REMOVED_KEYS[key]}")
        elif key in OWNED_KEYS:
            problems.append(f"{path}: not allowed here; {OWNED_KEYS[key]}")
        elif key not in fields:
            problems.append(f"{path}: unknown {class_name} setting{_elsewhere(class_name, key, fields)}")
        else:
            try:
                coerced[key] = coerce_value(fields[key], value)
            except ValueError as error:
                problems.append(f"{path}: {error}")
                continue
            strategy = STEP_STRATEGIES.get(key)  # an interval is read only when its strategy counts steps
            applies = strategy is None or str(effective_setting(class_name, settings, strategy)) == "steps"
            problem = out_of_range(key, coerced[key]) if applies else None
            if problem:
                problems.append(f"{path}: {problem}")
            choices = CHOICES.get((class_name, key))
            if choices and coerced[key] not in choices:
                problems.append(f"{path}: {coerced[key]!r} is not one of {', '.join(choices)}")
            named = enum_values(key)
            if named and isinstance(coerced[key], str) and coerced[key] not in named:
                hint = suggest(coerced[key], named) or f"; one of {', '.join(named)}"
                problems.append(f"{path}: {coerced[key]!r} is not {ENUMS[key][3]} transformers knows{hint}")
            if key == "report_to":
                problems += check_report_to(coerced[key], path)
    problems += refused_pairs(class_name, coerced, where)
    return coerced, problems


def effective_setting(class_name: str, trainer: dict, key: str):
    """The stage's value for a TRL setting: the recipe's, else TRL's literal default.

    >>> effective_setting("SFTConfig", {}, "max_length"), effective_setting("SFTConfig", {"packing": 1}, "packing")
    (1024, 1)
    """
    if key in trainer:
        return trainer[key]
    field = trainer_fields(class_name).get(key)
    return field.default if field is not None and field.has_default else None


def refused_pairs(class_name: str, settings: dict[str, Any], where: str) -> list[str]:
    """Settings that each pass alone but that the trainer refuses together, once the model has loaded (TRL 1.16).

    >>> refused_pairs("SFTConfig", {"padding_free": True}, "sft.trainer")  # doctest: +ELLIPSIS
    ['sft.trainer.padding_free: ... max_length (1024, by default) ... set max_length: null ...']
    >>> refused_pairs("SFTConfig", {"padding_free": True, "max_length": None}, "sft.trainer")
    []
    >>> refused_pairs("GRPOConfig", {"sync_ref_model": True}, "grpo.trainer")  # doctest: +ELLIPSIS
    ['grpo.trainer.sync_ref_model: beta is 0, by default, so no reference model is loaded to sync; ...']
    >>> refused_pairs("GRPOConfig", {"loss_type": "vespo", "use_vllm": True}, "grpo.trainer")  # doctest: +ELLIPSIS
    ['grpo.trainer.loss_type: vespo with vLLM needs ... token_mask (it is sequence_mask, by default)']
    """

    def value(key: str) -> tuple[Any, str]:  # the effective value, and ", by default" when the recipe left it
        return effective_setting(class_name, settings, key), "" if key in settings else ", by default"

    problems = []
    if settings.get("eval_strategy", "no") != "no" or settings.get("do_eval"):
        key = "eval_strategy" if "eval_strategy" in settings else "do_eval"
        problems.append(
            f"{where}.{key}: recipe passes the trainer no eval_dataset, so TRL's eval loop has nothing to run (the "
            "recipe's eval: section measures accuracy after each stage); remove it"
        )
    if class_name == "SFTConfig":
        (max_length, default), packing = value("max_length"), value("packing")[0]
        if settings.get("padding_free") and not packing and max_length is not None:
            problems.append(
                f"{where}.padding_free: TRL does not cut padding-free batches to max_length ({max_length}{default}) "
                "and refuses the pair; set max_length: null (sft.dataset.max_prompt_tokens and max_completion_tokens "
                "bound each example) or packing: true"
            )
        if packing and max_length is None:
            problems.append(f"{where}.packing: packing fills rows of max_length tokens, and max_length is null; set it")
        if settings.get("assistant_only_loss"):
            problems.append(
                f"{where}.assistant_only_loss: recipe builds each SFT example with its prompt masked, so the loss "
                "already covers the completion only, and TRL refuses the option on built examples; remove it"
            )
    if class_name == "GRPOConfig":
        beta, default = value("beta")
        if settings.get("sync_ref_model") and not beta:
            problems.append(
                f"{where}.sync_ref_model: beta is {beta:g}{default}, so no reference model is loaded to sync; set "
                "beta above 0 or remove sync_ref_model"
            )
        mode, default = value("vllm_importance_sampling_mode")
        vespo_with_vllm = value("loss_type")[0] == "vespo" and value("use_vllm")[0]
        if (
            vespo_with_vllm
            and value("vllm_importance_sampling_correction")[0]
            and mode not in ("token_truncate", "token_mask")
        ):
            problems.append(
                f"{where}.loss_type: vespo with vLLM needs vllm_importance_sampling_mode: token_truncate or "
                f"token_mask (it is {mode}{default})"
            )
    return problems


def non_default_settings(class_name: str, settings: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings whose value differs from TRL's default, as ``{key: (value, default)}``."""
    fields = trainer_fields(class_name)
    out = {}
    for key, value in sorted(settings.items()):
        field = fields.get(key)
        default = field.default if field and field.has_default else "(computed)"
        if value != default:
            out[key] = (value, default)
    return out
