"""Recipes from elsewhere: open-r1's flat recipe files and ``trl sft|grpo --config`` files, read as recipes.

Both are one flat mapping of TRL's ``ScriptArguments``, ``ModelConfig`` and ``SFTConfig`` /
``GRPOConfig`` fields (open-r1 adds its own: ``reward_funcs``, ``cosine_*``, ``dataset_mixture``,
``system_prompt``, ...; a TRL config may add ``accelerate launch`` options). ``translate`` turns
one into a recipe mapping and says what it did, key by key:

- ``translated``: a key that becomes a recipe key (``model_name_or_path`` -> ``model.path``), or
  one that current TRL/transformers removed or renamed (``torch_dtype``, ``max_prompt_length``,
  ``warmup_ratio``, ...) and what does its job now;
- ``meaning``: where recipe does the same job differently (a reward's fixes, the loss mask of a
  conversation, the precision of the weights);
- ``default``: a setting the file left unset whose default changed since the release it was
  written for (open-r1 pins trl 0.18.0 and transformers 4.52.3 in its setup.py); the new value is
  used unless ``old_defaults`` asks for the old one;
- ``dropped``: what has no counterpart, and why.

A key that cannot be carried over faithfully (a reward that runs code in a sandbox, a reward model,
4-bit loading, TRL's mixture ``fraction``) is refused with one line naming it. Every other key is
handed to the stage's ``trainer:`` mapping, so the recipe's own validation checks it against
TRL's config as installed. Nothing here reads files or imports torch: ``translate`` is a pure
function from the file's mapping to a recipe mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipe_cli.atomic import made_folder, write_atomic
from recipe_cli.errors import RecipeError, unwritable_reason

OLD_RELEASE = "TRL 0.18 / transformers 4.52"  # open-r1's setup.py pins trl==0.18.0, transformers==4.52.3
# Keys that current TRL or transformers removed: a TRL config that uses one was written for the old release.
REMOVED_SINCE = (
    "torch_dtype",
    "max_prompt_length",
    "warmup_ratio",
    "overwrite_output_dir",
    "evaluation_strategy",
    "max_seq_length",
    "vllm_device",
)
# Keys only open-r1's scripts read (src/open_r1/configs.py), besides its reward parameters.
OPEN_R1_KEYS = (
    "dataset_mixture",
    "dataset_prompt_column",
    "system_prompt",
    "chat_template",
    "benchmarks",
    "callbacks",
    "hub_model_revision",
    "overwrite_hub_revision",
    "push_to_hub_revision",
    "wandb_entity",
    "wandb_project",
    "wandb_run_group",
    "wandb_log_unique_prompts",
    "pass_rate_min",
    "pass_rate_max",
    "output_dataset_name",
)
# open-r1's reward parameters: key -> (reward, parameter). Defaults: GRPOScriptArguments.
REWARD_PARAMETERS = {
    "cosine_min_value_wrong": ("cosine", "min_value_wrong"),
    "cosine_max_value_wrong": ("cosine", "max_value_wrong"),
    "cosine_min_value_correct": ("cosine", "min_value_correct"),
    "cosine_max_value_correct": ("cosine", "max_value_correct"),
    "cosine_max_len": ("cosine", "max_len"),
    "repetition_n_grams": ("repetition_penalty", "ngram_size"),
    "repetition_max_penalty": ("repetition_penalty", "max_penalty"),
    "max_completion_len": ("soft_overlong_punishment", "max_completion_len"),
    "soft_punish_cache": ("soft_overlong_punishment", "soft_punish_cache"),
}
# Parameters of open-r1's code rewards only.
CODE_PARAMETERS = (
    "code_language",
    "code_eval_test_batch_size",
    "code_eval_scoring_mode",
    "parallel_code_exec_per_proc",
    "e2b_router_url",
    "morph_router_url",
    "code_provider",
    "ioi_provider",
    "enforce_same_language",
)
# open-r1's reward names that are ours too (same semantics, the fixes in recipe_cli.rewards), and what differs.
OPEN_R1_REWARDS = {
    "accuracy": "also reads plain answers (<answer>72</answer>, #### 72), which open-r1's LaTeX-only parse scored 0",
    "format": "any whitespace around the tags (open-r1 demanded exactly one newline around each)",
    "tag_count": "counts the tags whatever whitespace surrounds them (open-r1 counted '<think>\\n', ...)",
    "reasoning_steps": "counts numbered lines anywhere (open-r1's pattern only at the very start)",
    "length": "compares the completions of one prompt (open-r1 compared the whole batch)",
    "cosine": "lengths past max_len count as max_len (open-r1's cosine turned back up past it)",
    "repetition_penalty": "the same word n-grams",
    "soft_overlong_punishment": "the same DAPO ramp, in tokens",
}
# TRL's reward names (trl/scripts/grpo.py) -> (our reward, parameters, what differs).
TRL_REWARDS = {
    "accuracy_reward": ("accuracy", {}, "also reads plain answers (<answer>72</answer>, #### 72), not only LaTeX"),
    "reasoning_accuracy_reward": (
        "accuracy",
        {"answer_after": "</think>"},
        "the answer after the last </think>, 0.0 without one, as TRL's",
    ),
    "think_format_reward": ("think_format", {}, "whitespace before <think> allowed"),
    # trl/scripts/grpo.py builds it with these values
    "get_soft_overlong_punishment": (
        "soft_overlong_punishment",
        {"max_completion_len": 1280, "soft_punish_cache": 256},
        "the values trl grpo fixes (max_completion_len 1280, soft_punish_cache 256)",
    ),
}
# Rewards that need code execution in a sandbox, or only make sense with those.
REFUSED_REWARDS = {
    "code": "runs the completion's code against test cases in a sandbox (E2B, Morph or local)",
    "binary_code": "runs the completion's code against test cases in a sandbox (E2B, Morph or local)",
    "ioi_code": "runs the completion's C++ against IOI test cases on a Piston or Morph server",
    "cf_code": "runs the completion's code against Codeforces test cases on a Piston server",
    "code_format": "checks the fenced code block the code rewards run",
}
# TRL 0.14-0.15 ran vLLM inside the training's main process on the GPU it named ("auto": the one after the
# training GPUs); TRL 0.16 ignored it with a warning (generation moved to a `trl vllm-serve` server) and 0.18
# removed it (huggingface/trl a8cfca6), whose TrlParser drops unknown keys: under TRL 0.18 it did nothing.
VLLM_DEVICE = (
    "ignored since TRL 0.16 (0.14-0.15: vLLM inside the main training process, on a GPU of its own); with "
    "use_vllm, TRL 0.18 generated on a `trl vllm-serve` server (vllm_mode: server). Now: vllm_mode: server "
    "with `recipe serve` on GPUs of their own is that split; colocate (the default) shares the training GPUs"
)
# TRL 0.18 read vllm_gpu_memory_utilization only with vllm_mode: colocate (grpo_trainer.py, "only applies to
# colocation mode"); a file with use_vllm and no vllm_mode generated on a `trl vllm-serve` server, which took its own
# --gpu_memory_utilization (0.9), and TRL 0.14-0.15 gave vLLM that share of a GPU of its own (vllm_device).
VLLM_MEMORY = (
    "TRL 0.18 used it only with vllm_mode: colocate; this file generated on a `trl vllm-serve` server (TRL 0.14-0.15: "
    "on a GPU of its own), which took its own share: launch.vllm_server.gpu_memory_utilization (0.9). Colocated vLLM "
    "would take that share of every training GPU, so TRL's 0.3 is used; set it for vllm_mode: colocate"
)
# open-r1's first GRPO script (src/open_r1/grpo.py, 2025-01-25 to 2025-02-18, 78c197d made the system prompt a
# setting): every prompt was this system turn and the `problem` column; reward_funcs defaulted to accuracy, format
# (also reasoning_steps, cosine from 250ab46 to e4ac3ae, 2025-02-07 to 02-10; tag_count joined on 2025-02-24, 566cfd1,
# when every shipped recipe named its rewards). Its recipes held no key only open-r1 reads and no reward_funcs.
EARLY_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
    "first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think><answer> answer here </answer>"
)
EARLY_REWARDS = ["accuracy", "format"]
# its format reward: re.match(r"^<think>.*?</think><answer>.*?</answer>$") without re.DOTALL
EARLY_FORMAT = (
    "any whitespace around the tags and text over several lines (open-r1's first pattern allowed no whitespace "
    "between the tags and, without re.DOTALL, scored every completion with a line break 0)"
)
NOT_READ = "no script read it after open-r1's first week (January 2025): TRL's parser dropped it"
LAUNCH_KEYS = ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port")
LORA_EXTRAS = (
    "lora_modules_to_save",
    "lora_target_parameters",
    "use_rslora",
    "use_dora",
    "load_in_8bit",
    "load_in_4bit",
    "use_bnb_nested_quant",
)
DTYPES = ("auto", "bfloat16", "float16", "float32")
FLAT_MARKERS = ("model_name_or_path", "dataset_name", "dataset_mixture", "datasets", "reward_funcs")


@dataclass(frozen=True)
class Note:
    """One thing the translation did: ``kind`` is translated, meaning, default or dropped."""

    kind: str
    key: str
    becomes: str
    old: Any = None  # default notes: the value of the old release, and the one in force now
    new: Any = None


@dataclass(frozen=True)
class ForeignOptions:
    """How to read a foreign file: the stage when the file does not say (the command), and the old defaults."""

    stage: str | None = None
    old_defaults: bool = False


@dataclass
class Translation:
    """A foreign file as a recipe mapping, and every translation, changed default and dropped key."""

    source: str  # "open-r1" or "TRL"
    stage: str  # "sft" or "grpo"
    written_for: str | None  # the old release the file was written for; None: the installed TRL
    old_defaults: bool
    recipe: dict
    notes: list[Note] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Note]:
        return [note for note in self.notes if note.kind == kind]

    def describe(self) -> str:
        """``an open-r1 GRPO recipe written for TRL 0.18 / transformers 4.52``."""
        if self.source == "open-r1":
            what = f"an open-r1 {self.stage.upper()} recipe"
        else:
            what = f"a `trl {self.stage} --config` file"
        when = f" written for {self.written_for}" if self.written_for else ""
        return f"{what}{when}"


def is_foreign(data: dict) -> bool:
    """Whether a mapping is a flat open-r1/TRL file rather than a recipe (which has a ``model:`` section).

    >>> is_foreign({"model_name_or_path": "Qwen/Qwen2.5-0.5B", "dataset_name": "trl-lib/Capybara"})
    True
    >>> is_foreign({"name": "demo", "model": {"path": "Qwen/Qwen2.5-0.5B"}})
    False
    """
    native = {"model", "sft", "grpo", "eval", "prompt"}
    return not native & set(data) and any(key in data for key in FLAT_MARKERS)


def detect_source(data: dict) -> str:
    """``open-r1`` when the file uses a key or a reward name only open-r1 reads, else ``TRL``.

    >>> detect_source({"reward_funcs": ["accuracy", "format"]}), detect_source({"reward_funcs": ["accuracy_reward"]})
    ('open-r1', 'TRL')
    """
    rewards = data.get("reward_funcs")
    names = rewards if isinstance(rewards, list) else [rewards] if isinstance(rewards, str) else []
    open_r1_rewards = set(OPEN_R1_REWARDS) | set(REFUSED_REWARDS)
    uses = set(OPEN_R1_KEYS) | set(REWARD_PARAMETERS) | set(CODE_PARAMETERS)
    return "open-r1" if uses & set(data) or open_r1_rewards & set(names) else "TRL"


def _stage_keys() -> tuple[set[str], set[str]]:
    """Keys that only a GRPO file, and only an SFT file, can hold."""
    from recipe_cli.trainer_fields import trainer_fields

    grpo, sft = set(trainer_fields("GRPOConfig")), set(trainer_fields("SFTConfig"))
    grpo_only = grpo - sft
    grpo_only |= {"reward_funcs", "reward_model_name_or_path", "dataset_prompt_column", "max_prompt_length"}
    grpo_only |= {"vllm_device", "pass_rate_min", "pass_rate_max", *REWARD_PARAMETERS, *CODE_PARAMETERS}
    grpo_only |= {"use_liger_loss"}
    return grpo_only, (sft - grpo) | {"max_seq_length", "use_liger"}


def translate(
    data: dict, options: ForeignOptions | None = None, source: str = "recipe", duplicates: list = ()
) -> Translation:
    """The recipe mapping of a flat open-r1/TRL file, with every translation; one ``RecipeError`` lists every
    key that cannot be carried over. ``source`` names the file in that message; ``duplicates``: the keys the
    file gives twice (``recipe_cli.config.DuplicateKey``), of which ``data`` holds the last, as PyYAML reads it."""
    options = options or ForeignOptions()
    translator = _Translator(dict(data), options)
    translation = translator.run()
    if translation is not None:
        for duplicate in duplicates:  # TRL's and open-r1's parsers read the file with yaml.safe_load
            translation.notes.append(
                Note(
                    "dropped",
                    f"{duplicate.key} at line {duplicate.first}",
                    f"given again at line {duplicate.line}; that one counts, as in TRL and open-r1 (PyYAML keeps "
                    "the last)",
                )
            )
    if translator.problems:
        what = translation.describe() if translation is not None else "a flat TRL/open-r1 file"
        head = f"{source} ({what})"
        if len(translator.problems) == 1:
            raise RecipeError(f"{head}: {translator.problems[0]}")
        lines = "\n".join(f"  {problem}" for problem in translator.problems)
        raise RecipeError(f"{head}: {len(translator.problems)} keys cannot be carried over\n{lines}")
    if options.old_defaults and translation.written_for is None:
        raise RecipeError(
            f"{source} ({translation.describe()}): --old-defaults: the file reads as current TRL (it uses no key "
            f"removed since {OLD_RELEASE}), so no default changed under it; drop --old-defaults, or, if it was "
            "written for TRL 0.18, write the old values into it (README: Coming from open-r1 or TRL)"
        )
    return translation


def _run_name(path: str) -> str:
    """A run name from an output folder: its last part, in the characters a run name may hold.

    >>> _run_name("data/Qwen2.5-1.5B-Open-R1-GRPO"), _run_name("out/my run/")
    ('Qwen2.5-1.5B-Open-R1-GRPO', 'my-run')
    """
    name = re.sub(r"[^\w.-]+", "-", Path(str(path).rstrip("/")).name).strip("-.")
    return name or "run"


class _Translator:
    """Takes the keys it knows off the file, one group at a time; what is left goes to the stage's trainer."""

    def __init__(self, data: dict, options: ForeignOptions):
        self.data, self.options = data, options
        self.notes: list[Note] = []
        self.problems: list[str] = []
        self.precision_unset = False

    def note(self, kind: str, key: str, becomes: str, old: Any = None, new: Any = None) -> None:
        self.notes.append(Note(kind, key, becomes, old, new))

    def take(self, key: str, default: Any = None) -> Any:
        return self.data.pop(key, default)

    def run(self) -> Translation | None:
        self.source = detect_source(self.data)
        self.stage = self._stage()
        if self.stage is None:
            return None
        self.old = self.source == "open-r1" or any(key in self.data for key in REMOVED_SINCE)
        # an old GRPO file naming no reward: `trl grpo` had no default rewards, open-r1's first script had
        self.early = (
            self.stage == "grpo"
            and self.source == "TRL"
            and self.old
            and not {"reward_funcs", "reward_model_name_or_path"} & set(self.data)
        )
        if self.early:
            self.source = "open-r1"
        self.recipe: dict[str, Any] = {"name": None, "model": {}, "prompt": {}}
        self.section: dict[str, Any] = {"dataset": {}}
        self.recipe[self.stage] = self.section
        self._model()
        self._prompt()
        self._dataset()
        if self.stage == "grpo":
            self._rewards()
        self._run()
        self._push()
        self._launch()
        self._trainer()
        self._defaults()
        written_for = OLD_RELEASE if self.old else None
        return Translation(self.source, self.stage, written_for, self.options.old_defaults, self.recipe, self.notes)

    def _stage(self) -> str | None:
        grpo_only, sft_only = _stage_keys()
        grpo = sorted(grpo_only & set(self.data))
        sft = sorted(sft_only & set(self.data))
        if grpo and sft:
            self.problems.append(
                f"holds GRPO keys ({', '.join(grpo[:3])}) and SFT keys ({', '.join(sft[:3])}); "
                "a file is one stage: split it, or write a recipe with sft: and grpo: sections"
            )
            return None
        found = "grpo" if grpo else "sft" if sft else None
        hint = self.options.stage
        if found and hint and hint != found:
            keys = ", ".join((grpo or sft)[:3])
            self.problems.append(
                f"is a {found.upper()} config ({keys}); run `recipe {found}` on it, or `recipe run` (its one stage)"
            )
            return None
        if found is None:
            found = hint or "sft"
            self.note(
                "translated",
                "(no SFT- or GRPO-only key)",
                f"read as {found.upper()}"
                + ("" if hint else ", as `trl sft --config` would; `recipe grpo FILE` reads it as GRPO"),
            )
        return found

    def _model(self) -> None:
        model = self.recipe["model"]
        path = self.take("model_name_or_path")
        if path is None:
            self.problems.append("model_name_or_path: missing; name the model to train (a Hub id or a local folder)")
        else:
            model["path"] = str(path)
            self.note("translated", "model_name_or_path", "model.path")
        init = self.take("model_init_kwargs") or {}
        if not isinstance(init, dict):
            self.problems.append("model_init_kwargs: give a mapping (dtype, revision, attn_implementation)")
            init = {}
        init = dict(init)
        for key, target in (
            ("model_revision", "revision"),
            ("attn_implementation", "attn_implementation"),
            ("trust_remote_code", "trust_remote_code"),
        ):
            value = self.take(key, init.pop(target, None))
            if value is not None:
                model[target] = value
                self.note("translated", key, f"model.{target}")
        self._precision(init)
        for key in init:
            self.problems.append(
                f"model_init_kwargs.{key}: recipe loads the model itself (model.dtype, revision, attn_implementation, "
                "trust_remote_code); remove it"
            )
        self._lora()
        template = self.take("chat_template")
        template_path = self.take("chat_template_path")
        if template is None and template_path is not None and not str(template_path).endswith((".jinja", ".j2")):
            # TRL reads a .jinja/.j2 file; anything else is a tokenizer whose template, special tokens and eos
            # clone_chat_template copies into the model (resizing its embeddings): not a template recipe can use.
            self.problems.append(
                f"chat_template_path: '{template_path}' names a tokenizer, whose chat template and special tokens TRL "
                "copies into the model; recipe takes a template: give the path of that tokenizer's chat_template.jinja "
                f"(from the Hub: `hf download {template_path} chat_template.jinja`)"
            )
            return
        if template is not None or template_path is not None:
            model["chat_template"] = template if template is not None else template_path
            key = "chat_template" if template is not None else "chat_template_path"
            self.note("translated", key, "model.chat_template (saved with every checkpoint)")

    def _precision(self, init: dict) -> None:
        key = next((k for k in ("torch_dtype", "dtype") if k in self.data), None)
        init_load = init.pop("torch_dtype", None) or init.pop("dtype", None)  # TRL's model_init_kwargs spelling
        load = self.take(key) if key else init_load
        key = key or ("model_init_kwargs.dtype" if load is not None else None)
        bf16, fp16 = self.take("bf16"), self.take("fp16")
        self.take("mixed_precision")
        if load is not None and load not in DTYPES:
            self.problems.append(f"{key}: {load!r} is not one of {', '.join(DTYPES)}")
            return
        compute = "bfloat16" if bf16 else "float16" if fp16 else load
        if compute is None and bf16 is False:
            compute = "float32"
        if compute is None:
            self.precision_unset = True  # TRL 0.18: float32 weights (transformers 4.52's load default), bf16 off
            return
        self.recipe["model"]["dtype"] = compute
        flag = "bf16: true" if bf16 else "fp16: true" if fp16 else None
        given = " + ".join(part for part in (f"{key}: {load}" if key else None, flag) if part)
        if compute in ("bfloat16", "float16"):
            self.note(
                "meaning",
                given,
                f"model.dtype: {compute}: float32 master weights, {compute} mixed precision (TRL 0.18 trained the "
                f"weights loaded in {compute} in place, which rounds small updates away)",
            )
        else:
            self.note("translated", given or "bf16: false", f"model.dtype: {compute}")

    def _lora(self) -> None:
        use_peft = self.take("use_peft", False)
        values = {key: self.take(f"lora_{key}") for key in ("r", "alpha", "dropout", "target_modules", "task_type")}
        for key in LORA_EXTRAS:
            if self.take(key):
                self.problems.append(
                    f"{key}: recipe trains plain LoRA adapters (r, alpha, dropout, target_modules); remove {key}"
                )
        for key in ("bnb_4bit_quant_type", "bnb_4bit_quant_storage"):
            if self.take(key) is not None:
                self.note("dropped", key, "used only with load_in_4bit")
        given = {key: value for key, value in values.items() if value is not None}
        if not use_peft:
            if given:
                self.note("dropped", ", ".join(f"lora_{key}" for key in given), "TRL ignores them without use_peft")
            return
        if values["task_type"] not in (None, "CAUSAL_LM"):
            self.problems.append(f"lora_task_type: {values['task_type']!r}; recipe trains causal LMs (CAUSAL_LM)")
        lora = {key: values[key] for key in ("r", "alpha", "dropout") if values[key] is not None}
        lora["target_modules"] = values["target_modules"] or "all-linear"
        self.recipe["model"]["lora"] = lora
        self.note("translated", "use_peft + lora_*", "model.lora")
        if values["target_modules"] is None:
            self.note(
                "meaning",
                "lora_target_modules (unset)",
                "all-linear; peft chose the model type's default (q_proj, v_proj for Llama and Qwen)",
            )

    def _prompt(self) -> None:
        system = self.take("system_prompt")  # early: not a setting yet, so TRL's parser would have refused it
        tool = "open-r1" if self.source == "open-r1" else "TRL"
        if self.early:
            system = EARLY_SYSTEM_PROMPT
            self.note(
                "translated",
                "(no reward_funcs: open-r1's first GRPO script)",
                "prompt.system: the system prompt it gave every prompt (<think>/<answer> tags), until 2025-02-18",
            )
        elif system is not None:
            where = "" if self.stage == "grpo" else " (for GRPO and the eval; SFT rows keep their own turns)"
            self.note("translated", "system_prompt", f"prompt.system{where}")
        else:
            self.note("translated", "(no system_prompt)", f"prompt.system: null ({tool} adds no system prompt)")
        self.recipe["prompt"] = {"system": system, "user": "{question}"}

    def _dataset(self) -> None:
        dataset = self.section["dataset"]
        adapter, columns = self._format()
        mixture, datasets = self.take("dataset_mixture"), self.take("datasets")
        name, config = self.take("dataset_name"), self.take("dataset_config")
        split = self.take("dataset_train_split", self.take("dataset_split", "train"))
        for key, why in (
            ("dataset_test_split", "TRL reads it for an eval loss only (eval_strategy); add an eval: section"),
            ("dataset_streaming", "recipe reads the dataset without streaming"),
            ("streaming", "recipe reads the dataset without streaming"),
            ("test_split_size", "a held-out share for an eval loss; recipe's eval: measures accuracy on a split"),
            ("ignore_bias_buffers", "a DDP workaround recipe does not need"),
            # alignment-handbook's DataArguments, read by open-r1 only until its first refactor (2025-01-25, ca8f35c);
            # since then TrlParser dropped them, as it drops every key no dataclass has
            ("dataset_configs", f"{NOT_READ}; a dataset's config is dataset_config (unset: its default config)"),
            ("preprocessing_num_workers", f"{NOT_READ}; the workers that prepare the data are dataset_num_proc"),
        ):
            if self.take(key) not in (None, False):
                self.note("dropped", key, why)
        if mixture is not None or datasets:
            if mixture is not None:
                self._open_r1_mixture(mixture, adapter, columns, name)
            else:
                self._trl_datasets(datasets, adapter, columns, name)
            # like dataset_name, read only for dataset_name's dataset: the list names each dataset's config and split
            which = "dataset_mixture" if mixture is not None else "`datasets`"
            if config is not None:
                self.note("dropped", "dataset_config", f"{which} names each dataset's config")
            if split != "train":
                self.note("dropped", "dataset_train_split", f"{which} names each dataset's split")
        elif name is not None:
            dataset.update(path=str(name), adapter=adapter)
            if columns:
                dataset["columns"] = columns
            self.note("translated", "dataset_name", f"{self.stage}.dataset.path")
            if isinstance(config, (dict, list)):  # TRL passes it to load_dataset as the config's name
                self.problems.append(
                    f"dataset_config: {config!r}; give the name of one of the dataset's configs, e.g. "
                    "dataset_config: main"
                )
            elif config is not None:
                dataset["config"] = str(config)
                self.note("translated", "dataset_config", f"{self.stage}.dataset.config")
            if split != "train":
                dataset["split"] = split
                self.note("translated", "dataset_train_split", f"{self.stage}.dataset.split")
        else:
            self.problems.append("dataset_name: missing; name the training dataset (a Hub id or a local file)")
        self._prompt_length(dataset)
        self._pass_rates(dataset)

    def _format(self) -> tuple[str, dict]:
        """The adapter and columns a stage's rows are read with, as the foreign script read them."""
        text_field = self.take("dataset_text_field")
        prompt_column = self.take("dataset_prompt_column")
        if self.stage == "sft":
            columns = {"text": text_field} if text_field not in (None, "text") else {}
            self.note(
                "meaning",
                "SFT data",
                "adapter trl: TRL's format read off the columns (messages, prompt/completion, text); a "
                "conversation's last assistant turn is trained on, the turns before it are the masked prompt "
                "(TRL trained on the whole conversation unless assistant_only_loss)",
            )
            if text_field is not None:
                self.note("translated", "dataset_text_field", "sft.dataset.columns.text")
            return "trl", columns
        if self.early:
            self.note(
                "translated",
                "(no reward_funcs: open-r1's first GRPO script)",
                "grpo.dataset.columns.question: problem, answer: solution, the columns it read",
            )
            return "columns", {"question": "problem", "answer": "solution"}
        if self.source == "open-r1":
            column = prompt_column or "prompt"  # GRPOScriptArguments.dataset_prompt_column
            self.note(
                "translated",
                "dataset_prompt_column" if prompt_column else "(dataset_prompt_column unset)",
                f"grpo.dataset.columns.question: {column}; the gold from `solution`, as open-r1's rewards read it",
            )
            return "columns", {"question": column, "answer": "solution"}
        self.note("translated", "GRPO data", "adapter prompt_completion: the `prompt` column as given, gold `solution`")
        return "prompt_completion", {}

    def _open_r1_mixture(self, mixture: Any, adapter: str, columns: dict, name: Any) -> None:
        entries = mixture.get("datasets") if isinstance(mixture, dict) else None
        if not isinstance(entries, list) or not entries:
            self.problems.append("dataset_mixture: give `datasets:`, a list of {id, config, split, weight}")
            return
        sources = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry:
                self.problems.append(f"dataset_mixture.datasets.{index}: give the dataset's `id`")
                continue
            source = {"path": str(entry["id"]), "adapter": adapter, "weight": entry.get("weight", 1.0)}
            for key, target in (("config", "config"), ("split", "split")):
                if entry.get(key) is not None:
                    source[target] = entry[key]
            if columns:
                source["columns"] = dict(columns)
            sources.append(source)
        dataset = self.section["dataset"]
        dataset.update(mixture=sources, shuffle=True)
        self.note(
            "translated",
            "dataset_mixture",
            f"{self.stage}.dataset.mixture (weight: the seeded share of each dataset kept, as open-r1) + shuffle",
        )
        seed = mixture.get("seed", 0)
        self.note("meaning", f"dataset_mixture.seed: {seed}", "the recipe's seed draws the shares and the order")
        if any(isinstance(e, dict) and e.get("columns") for e in entries):
            self.note("dropped", "dataset_mixture.datasets.*.columns", "the adapter reads only the columns it uses")
        if mixture.get("test_split_size") is not None:
            self.note(
                "dropped",
                "dataset_mixture.test_split_size",
                "open-r1 held that share of the mixture out of training for an eval loss; recipe trains on all of it "
                "(its eval: measures accuracy on a split of its own)",
            )
        if name is not None:
            self.note("dropped", "dataset_name", "dataset_mixture wins, as in open-r1")

    def _trl_datasets(self, entries: Any, adapter: str, columns: dict, name: Any) -> None:
        if not isinstance(entries, list):
            self.problems.append("datasets: give a list of {path, name, split}")
            return
        sources = []
        for index, entry in enumerate(entries):
            where = f"datasets.{index}"
            if not isinstance(entry, dict) or "path" not in entry:
                self.problems.append(f"{where}: give the dataset's `path`")
                continue
            path = str(entry["path"])
            files = entry.get("data_files")
            if path in ("json", "csv", "parquet") and isinstance(files, str):
                path = files  # a datasets builder with one local file: the file itself
            elif files is not None or entry.get("data_dir") is not None:
                self.problems.append(
                    f"{where}: data_files/data_dir with path {path!r}; give one local file as `path` (or a Hub id)"
                )
                continue
            if entry.get("fraction") is not None:
                self.problems.append(
                    f"{where}.fraction: TRL's share of the final mixture depends on every dataset's size; give each "
                    "dataset's kept share as `weight` in a recipe mixture (`recipe convert`, then edit)"
                )
            source = {"path": path, "adapter": adapter}
            if entry.get("name") is not None:
                source["config"] = entry["name"]
            if entry.get("split", "train") != "train":
                source["split"] = entry["split"]
            if columns:
                source["columns"] = dict(columns)
            sources.append(source)
        dataset = self.section["dataset"]
        if len(sources) == 1:
            dataset.update(sources[0])
        elif sources:
            dataset["mixture"] = [{**source, "weight": 1.0} for source in sources]
        self.note("translated", "datasets", f"{self.stage}.dataset" + (".mixture" if len(sources) > 1 else ""))
        if name is not None:
            self.note("dropped", "dataset_name", "`datasets` wins, as in TRL")

    def _prompt_length(self, dataset: dict) -> None:
        length = self.take("max_prompt_length")
        if length is None:
            return
        if self.stage != "grpo":
            self.note("dropped", "max_prompt_length", "not an SFT setting")
            return
        dataset["max_prompt_tokens"] = length
        self.note(
            "translated",
            "max_prompt_length",
            "grpo.dataset.max_prompt_tokens: longer prompts are dropped (TRL 0.18 cut them from the left; "
            "TRL 0.28 removed the setting and cuts nothing)",
        )

    def _pass_rates(self, dataset: dict) -> None:
        low, high = self.take("pass_rate_min"), self.take("pass_rate_max")
        if low is None and high is None:
            return
        difficulty = {"samples": self.data.get("num_generations", 8)}
        # an unset bound is open-r1's (compute_pass_rate.py's PassRateScriptArguments), not recipe's 0.0 / 1.0
        for key, value, target, default in (
            ("pass_rate_min", low, "min_pass_rate", 0.1),
            ("pass_rate_max", high, "max_pass_rate", 0.9),
        ):
            difficulty[target] = default if value is None else value
            if value is None:
                self.note("translated", f"({key} unset)", f"{target}: {default}, open-r1's filter default")
        for key in ("temperature", "top_p"):
            if key in self.data:
                difficulty[key] = self.data[key]
        dataset["difficulty"] = difficulty
        self.note(
            "translated",
            "pass_rate_min, pass_rate_max",
            f"{self.stage}.dataset.difficulty: prompts the starting model solves within the range are kept "
            "(bounds included; open-r1's filter script excluded them)",
        )
        if self.take("output_dataset_name") is not None:
            self.note("dropped", "output_dataset_name", "`recipe data` writes the kept rows to runs/<name>/data/")

    def _rewards(self) -> None:
        names = self.take("reward_funcs")
        weights = self.take("reward_weights")
        if self.take("reward_model_name_or_path") is not None:
            self.problems.append(
                "reward_model_name_or_path: recipe scores completions with verifiable reward functions, not a reward "
                "model; remove it"
            )
        params = {key: self.take(key) for key in REWARD_PARAMETERS if key in self.data}
        code = [key for key in CODE_PARAMETERS if self.take(key) is not None]
        if names is None:
            if self.source != "open-r1":
                self.problems.append("reward_funcs: missing; name the rewards (e.g. [accuracy_reward])")
                return
            if self.early:
                names = EARLY_REWARDS
                self.note(
                    "translated",
                    "(reward_funcs unset)",
                    "open-r1's default when its recipes left it unset (until 2025-02-24): accuracy, format",
                )
            else:
                names = ["accuracy", "format", "tag_count"]  # GRPOScriptArguments.reward_funcs' default
                self.note("translated", "(reward_funcs unset)", "open-r1's default: accuracy, format, tag_count")
        names = [names] if isinstance(names, str) else list(names)
        if weights is None:
            weights = [1.0] * len(names)
        elif not isinstance(weights, list) or len(weights) != len(names):
            self.problems.append(f"reward_weights: give one weight per reward ({len(names)}: {', '.join(names)})")
            return
        else:
            self.note("translated", "reward_weights", "each reward's weight in grpo.rewards")
        rewards = []
        for index, (name, weight) in enumerate(zip(names, weights, strict=True)):
            entry = self._reward(str(name), index)
            if entry is not None:
                entry["weight"] = weight
                rewards.append(entry)
        used = {entry["name"] for entry in rewards}
        for key, value in params.items():
            reward, parameter = REWARD_PARAMETERS[key]
            if reward not in used:
                self.note("dropped", key, f"no {reward} reward uses it")
                continue
            for entry in rewards:
                if entry["name"] == reward:
                    entry.setdefault("params", {})[parameter] = value
            self.note("translated", key, f"grpo.rewards[{reward}].params.{parameter}")
        if code and not used & set(REFUSED_REWARDS):
            self.note("dropped", ", ".join(code), "parameters of the code rewards only")
        self.section["rewards"] = [{"name": e.pop("name"), "weight": e.pop("weight"), **e} for e in rewards]

    def _reward(self, name: str, index: int) -> dict | None:
        where = f"reward_funcs.{index}"
        if name in REFUSED_REWARDS:
            self.problems.append(
                f"{where}: '{name}' {REFUSED_REWARDS[name]}; recipe has no code-execution reward: remove it"
            )
            return None
        if name in OPEN_R1_REWARDS:
            differs = EARLY_FORMAT if self.early and name == "format" else OPEN_R1_REWARDS[name]
            self.note("meaning", f"reward {name}", f"{name}: {differs}")
            return {"name": name}
        if name in TRL_REWARDS:
            ours, params, why = TRL_REWARDS[name]
            self.note("translated", f"reward {name}", f"{ours}: {why}")
            return {"name": ours, **({"params": dict(params)} if params else {})}
        if "." in name:
            module, function = name.rsplit(".", 1)
            self.note(
                "translated",
                f"reward {name}",
                f"{module}:{function} (your function; the gold comes as the `answer` column, not `solution`)",
            )
            return {"name": f"{module}:{function}"}
        known = ", ".join([*OPEN_R1_REWARDS, *TRL_REWARDS])
        self.problems.append(f"{where}: unknown reward '{name}'; known here: {known}, or a dotted import path")
        return None

    def _run(self) -> None:
        output_dir = self.take("output_dir")
        seed = self.take("seed")
        if seed is not None:
            self.recipe["seed"] = seed
            self.note("translated", "seed", "seed")
        if output_dir is not None:
            self.recipe["name"] = _run_name(output_dir)
            self.note("translated", "output_dir", f"name: {self.recipe['name']} (the run folder runs/<name>/)")
        else:
            hub = self.data.get("hub_model_id")
            model = self.recipe["model"].get("path") or "model"
            self.recipe["name"] = _run_name(hub if hub else f"{Path(model).name}-{self.stage}")
            self.note("translated", "(no output_dir)", f"name: {self.recipe['name']}")
        if self.take("overwrite_output_dir") is not None:
            self.note(
                "translated",
                "overwrite_output_dir",
                "removed in transformers 5; `--overwrite` starts a stage again, `--resume` continues it",
            )
        if self.take("resume_from_checkpoint") not in (None, False):
            self.note("translated", "resume_from_checkpoint", "`--resume`: continues from the last complete checkpoint")

    def _push(self) -> None:
        on = self.take("push_to_hub", False)
        repo = self.take("hub_model_id")
        revision = self.take("hub_revision")  # TRL/transformers: the branch of the final push
        checkpoint_branches = self.take("hub_model_revision")  # open-r1: the prefix of its checkpoint branches
        private = self.take("hub_private_repo")
        strategy = self.take("hub_strategy")
        callbacks = self.take("callbacks") or []
        if isinstance(callbacks, str):  # one name; a list of names is what open-r1 reads
            callbacks = [callbacks]
        elif not isinstance(callbacks, list):
            self.problems.append(f"callbacks: {callbacks!r}; give a list of open-r1 callback names")
            callbacks = []
        for key in ("hub_always_push", "overwrite_hub_revision", "push_to_hub_revision"):
            self.take(key)
        if self.take("hub_token") is not None:
            self.note("dropped", "hub_token", "log in with `hf auth login` or set HF_TOKEN; recipes hold no tokens")
        for callback in [c for c in callbacks if c != "push_to_hub_revision"]:
            self.note("dropped", f"callbacks: {callback}", "open-r1's callback has no counterpart")
        if not on:
            if repo is not None:
                self.note("dropped", "hub_model_id", "push_to_hub is off")
            return
        if repo is None or "/" not in str(repo):
            named = f"'{repo}'" if repo else "(none)"
            self.note(
                "dropped",
                "push_to_hub",
                f"hub_model_id {named} names no user or organisation (TRL pushed to the token's user): add "
                f"push: {{repo_id: <you>/{repo or self.recipe['name']}}}, or run `recipe push --repo-id <you>/...`",
            )
            return
        push: dict[str, Any] = {"repo_id": str(repo), "revision": revision or "main"}
        self.note("translated", "push_to_hub + hub_model_id", "push.repo_id (recipe pushes once the stage finished)")
        self.note("translated", "hub_revision" if revision else "(hub_revision unset)", "push.revision")
        if checkpoint_branches is not None:
            # open-r1's push_to_hub_revision callback pushes checkpoint N to f"{hub_model_revision}-step-{N:09d}";
            # its final trainer.push_to_hub goes to hub_revision (main unless set)
            self.note(
                "meaning",
                "hub_model_revision",
                f"open-r1 named its checkpoint branches {checkpoint_branches}-step-N with it and pushed the final "
                f"model to {revision or 'main'}, as recipe does; recipe's checkpoint branches are <stage>-step-N",
            )
        if private is not None:
            push["private"] = bool(private)
            self.note("translated", "hub_private_repo", "push.private")
        else:
            self._default("push.private", "a repo the push creates", False, True, lambda v: push.update(private=v))
        if "push_to_hub_revision" in callbacks:
            push["push_checkpoints"] = True
            self.note("translated", "callbacks: push_to_hub_revision", "push.push_checkpoints (<stage>-step-N)")
        elif strategy not in (None, "end"):
            self.note("meaning", f"hub_strategy: {strategy}", "the checkpoint is pushed once the stage finished")
        self.recipe["push"] = push

    def _launch(self) -> None:
        launch = {}
        config = self.take("accelerate_config", self.take("config_file"))
        if config is not None:
            launch["accelerate_config"] = config
            if "num_processes" in self.data:
                self.note("translated", "accelerate_config", "launch.accelerate_config")
            else:  # `trl` hands the file to `accelerate launch`, which starts the processes the file names
                self.note(
                    "meaning",
                    "accelerate_config (no num_processes)",
                    "launch.accelerate_config, used from 2 processes on: recipe trains in one process, where TRL "
                    "launched as many as the config names (8 in TRL's multi-GPU ones); add --num-processes N",
                )
        for key in LAUNCH_KEYS:
            if key in self.data:
                launch[key] = self.take(key)
                self.note("translated", key, f"launch.{key}")
        if launch:
            self.recipe["launch"] = launch

    def _trainer(self) -> None:
        trainer: dict[str, Any] = {}
        ratio = self.take("warmup_ratio")
        if ratio is not None:
            if self.data.get("warmup_steps"):
                self.note("dropped", "warmup_ratio", "warmup_steps is set and wins, as in transformers")
            else:
                trainer["warmup_steps"] = ratio
                becomes = f"{self.stage}.trainer.warmup_steps: {ratio} (below 1: a ratio; removed in transformers 5)"
                self.note("translated", "warmup_ratio", becomes)
        length = self.take("max_seq_length")
        if length is not None:
            trainer["max_length"] = length
            self.note("translated", "max_seq_length", "sft.trainer.max_length (renamed in TRL)")
        for key, gone in (("use_liger", "removed in TRL 0.18"), ("use_liger_loss", "removed in TRL 0.28")):
            liger = self.take(key)
            if liger is not None:  # TRL set use_liger_kernel from it, over the file's own use_liger_kernel
                self.data.pop("use_liger_kernel", None)
                trainer["use_liger_kernel"] = liger
                self.note("translated", key, f"{self.stage}.trainer.use_liger_kernel ({gone})")
        if "evaluation_strategy" in self.data:
            self.note("translated", "evaluation_strategy", "eval_strategy (renamed in transformers)")
        strategy = self.take("evaluation_strategy", self.take("eval_strategy"))
        do_eval = self.take("do_eval")
        if strategy not in (None, "no") or do_eval:
            self.note("dropped", "eval_strategy / do_eval", "no eval loss: recipe's eval: section measures accuracy")
        if self.take("vllm_device") is not None:
            self.note("dropped", "vllm_device", VLLM_DEVICE)
        if self.old and self.data.get("use_vllm") and "vllm_mode" not in self.data:
            share = self.take("vllm_gpu_memory_utilization")
            if share is not None:
                self.note("dropped", f"vllm_gpu_memory_utilization: {share}", VLLM_MEMORY)
        scale = self.data.get("scale_rewards")
        if isinstance(scale, bool):
            self.data["scale_rewards"] = "group" if scale else "none"
            given = f"scale_rewards: {str(scale).lower()}"
            self.note("translated", given, f"scale_rewards: {self.data['scale_rewards']}")
        if self.take("eos_token") is not None:
            self.note("dropped", "eos_token", "recipe ends each SFT target with the chat template's end-of-turn token")
        if self.take("assistant_only_loss"):
            self.note("dropped", "assistant_only_loss", "SFT trains on the last assistant turn, prompt masked")
        env = self.take("env")
        if env:
            self.note("dropped", "env", f"set {', '.join(map(str, env))} in the shell")
        benchmarks = self.take("benchmarks")
        if benchmarks:
            self.note("dropped", "benchmarks", "open-r1's lighteval runs; recipe evaluates with eval: sections")
        project = self.take("wandb_project")
        if project is not None and "project" not in self.data:  # recipe passes it on as WANDB_PROJECT
            self.data["project"] = project
            self.note("translated", f"wandb_project: {project}", f"{self.stage}.trainer.project: {project}")
        elif project is not None:
            self.note("dropped", "wandb_project", "the file's project setting names the tracker project")
        for key in ("wandb_entity", "wandb_run_group"):
            if self.take(key) is not None:
                self.note("dropped", key, f"set {key.upper()} in the environment")
        logging_only = ["wandb_log_unique_prompts"] + (["num_completions_to_print"] if self.stage == "sft" else [])
        for key in logging_only:  # num_completions_to_print is a GRPOConfig setting now
            if key in self.data:
                self.take(key)
                self.note("dropped", key, "open-r1's logging option")
        if self.data:
            passed = ", ".join(sorted(self.data))
            self.note("translated", passed, f"{self.stage}.trainer (checked against TRL's config)")
        trainer.update(self.data)
        self.data.clear()
        if trainer:
            self.section["trainer"] = trainer

    def _default(self, key: str, what: str, old: Any, new: Any, keep) -> None:
        """A setting the file left unset whose default changed since the old release: keep the old one if asked."""
        if not self.old:
            return
        self.note("default", key, what, old, new)
        if self.options.old_defaults:
            keep(old)

    def _defaults(self) -> None:
        """Every default that changed under a setting the file left unset: TRL 0.18.0's GRPOConfig and
        SFTConfig and transformers 4.52.3's TrainingArguments against the installed ones, open-r1's
        GRPOScriptArguments against recipe's rewards (the README's table gives each source)."""
        trainer = self.section.setdefault("trainer", {})

        def set_trainer(key):
            return lambda value: trainer.__setitem__(key, value)

        if self.stage == "grpo":
            self._grpo_defaults(trainer, set_trainer)
        else:
            self._sft_defaults(trainer, set_trainer)
        if self.precision_unset:
            self._default(
                "bf16",
                "compute precision: old float32 throughout; now bf16 mixed precision on a GPU that has it "
                "(model.dtype auto; --old-defaults: model.dtype float32)",
                False,
                True,
                lambda value: self.recipe["model"].__setitem__("dtype", "float32"),
            )
        if "gradient_checkpointing" not in trainer and "activation_checkpointing" not in trainer:
            what = "on a GPU: activations recomputed in the backward pass, less memory, slower steps"
            self._default("gradient_checkpointing", what, False, True, set_trainer("gradient_checkpointing"))
        if "report_to" not in trainer:
            self._default("report_to", "trackers (transformers 5: none)", "all", "none", set_trainer("report_to"))
        if not trainer:
            self.section.pop("trainer")

    def _sft_defaults(self, trainer: dict, set_trainer) -> None:
        if "average_tokens_across_devices" not in trainer:
            self._default(
                "average_tokens_across_devices",
                "with several processes, the loss is the mean over every process's tokens (old: each process's "
                "own mean, then averaged)",
                False,
                True,
                set_trainer("average_tokens_across_devices"),
            )
        if trainer.get("packing") and "packing_strategy" not in trainer:
            what = "old: the rows cut into max_length chunks; now: whole rows fitted best-fit-decreasing"
            self._default("packing_strategy", what, "wrapped", "bfd", set_trainer("packing_strategy"))

    def _grpo_defaults(self, trainer: dict, set_trainer) -> None:
        if "beta" not in trainer:
            self._default("beta", "KL coefficient (0.0: no reference model)", 0.04, 0.0, set_trainer("beta"))
        if "use_bias_correction_kl" not in trainer and trainer.get("beta", 0.04) != 0:
            self._default(
                "use_bias_correction_kl",
                "the KL term weighted by the ratio of the policy's probability to the sampling policy's "
                "(with beta > 0; TRL 0.18 did not weight it)",
                False,
                True,
                set_trainer("use_bias_correction_kl"),
            )
        if "loss_type" not in trainer:
            self._default("loss_type", "loss normalisation", "bnpo", "dapo", set_trainer("loss_type"))
        if "max_completion_length" not in trainer:
            self._default("max_completion_length", "tokens", 256, 512, set_trainer("max_completion_length"))
        if trainer.get("use_vllm") and "vllm_mode" not in trainer:
            what = "with use_vllm (server: `recipe serve` starts it)"
            self._default("vllm_mode", what, "server", "colocate", set_trainer("vllm_mode"))
        if trainer.get("use_vllm") and "vllm_importance_sampling_correction" not in trainer:
            self._default(
                "vllm_importance_sampling_correction",
                "with use_vllm: the loss weighted by the trainer's to vLLM's probability of each completion, "
                "completions past the bounds masked (TRL 0.18 trained on vLLM's samples as if the trainer drew them)",
                False,
                True,
                set_trainer("vllm_importance_sampling_correction"),
            )
        dataset = self.section["dataset"]
        if "max_prompt_tokens" not in dataset:
            self._default(
                "max_prompt_length",
                "prompt tokens (old: cut from the left; kept: longer prompts dropped)",
                512,
                "none cut",
                lambda value: dataset.__setitem__("max_prompt_tokens", value),
            )
        if self.source != "open-r1":
            return
        for entry in self.section.get("rewards", []):
            params = entry.get("params", {})

            def set_param(value, parameter, entry=entry):
                entry.setdefault("params", {})[parameter] = value

            if entry["name"] == "soft_overlong_punishment":
                for parameter, old, new in (
                    ("max_completion_len", 16384, "max_completion_length"),
                    ("soft_punish_cache", 4096, "a quarter of it"),
                ):
                    if parameter not in params:
                        self._default(
                            f"soft_overlong_punishment.{parameter}",
                            "open-r1's script default",
                            old,
                            new,
                            lambda value, p=parameter: set_param(value, p),
                        )
            if entry["name"] == "cosine" and "min_value_wrong" not in params:
                self._default(
                    "cosine.min_value_wrong",
                    "open-r1's script default: a short wrong answer scored 0.0, a long one max_value_wrong "
                    "(now -1.0, the paper's: short wrong answers pay most)",
                    0.0,
                    -1.0,
                    lambda value: set_param(value, "min_value_wrong"),
                )


def _comment(text: str) -> str:
    return text.replace("\n", " ")


def converted_text(translation: Translation, source: str, target: str, overrides: list[str] = ()) -> str:
    """The recipe YAML ``recipe convert`` writes to ``target``: a header listing every translation, then the recipe."""
    import yaml

    lines = [
        f"# {translation.recipe['name']}: converted by `recipe convert` from {source},",
        f"# {translation.describe()}.",
        f"# Run it: recipe run {target}",
    ]
    lines += [f"# With --set {text}" for text in overrides]
    lines += ["#", "# Translated:"]
    lines += [f"#   {n.key} -> {_comment(n.becomes)}" for n in translation.notes if n.kind in ("translated", "meaning")]
    defaults = translation.of_kind("default")
    if defaults:
        kept = "kept here (--old-defaults)" if translation.old_defaults else "the new ones are in force"
        lines += ["#", f"# Defaults that changed since {translation.written_for} ({kept}):"]
        lines += [f"#   {n.key}: {n.old!r} -> {n.new!r} ({_comment(n.becomes)})" for n in defaults]
    dropped = translation.of_kind("dropped")
    if dropped:
        lines += ["#", "# Not carried over:"]
        lines += [f"#   {n.key}: {_comment(n.becomes)}" for n in dropped]
    body = yaml.safe_dump(translation.recipe, sort_keys=False, allow_unicode=True, width=120)
    return "\n".join(lines) + "\n\n" + body


def read_translation(path: str | Path, options: ForeignOptions | None = None) -> Translation | None:
    """The translation of the file at ``path``, or None when it is a recipe."""
    from recipe_cli.config import duplicate_key_error, read_yaml_file

    data, duplicates = read_yaml_file(path)
    if is_foreign(data):
        return translate(data, options, str(path), duplicates)
    if duplicates:
        raise duplicate_key_error(path, duplicates[0])
    return None


def convert_file(
    source: str | Path,
    output: str | Path | None,
    options: ForeignOptions | None = None,
    overrides: list[str] = (),
    *,
    overwrite: bool = False,
) -> tuple[Translation, Path]:
    """``recipe convert``: translate ``source``, apply ``--set`` overrides, validate, write; returns what was written.

    Nothing is written when the file is a recipe already, the recipe does not validate, or ``output``
    exists (without ``overwrite``).
    """
    from recipe_cli.config import apply_override, parse_override, validate_recipe

    source = Path(source)
    translation = read_translation(source, options)
    if translation is None:
        raise RecipeError(f"{source} is a recipe already (it has a model: section); nothing to convert")
    for text in overrides:
        apply_override(translation.recipe, *parse_override(text))
    target = Path(output) if output is not None else source.with_name(target_name(source))
    if target.resolve() == source.resolve():
        raise RecipeError(f"--output {target} is the file being converted; write the recipe elsewhere")
    if target.is_dir():  # --overwrite replaces a file, never a folder
        raise RecipeError(
            f"--output {target} is a folder; give the recipe file's path, e.g. --output {target / target_name(source)}"
        )
    if target.exists() and not overwrite:
        raise RecipeError(f"{target} exists; pass --overwrite to replace it, or --output another path")
    import copy

    validate_recipe(copy.deepcopy(translation.recipe), source=f"{source} as a recipe")
    text = converted_text(translation, str(source), str(target), list(overrides))
    try:
        with made_folder(target.parent):  # a failed write leaves no half recipe behind, nor the folders it made
            write_atomic(target, text)
    except OSError as error:
        reason = unwritable_reason(target, error)
        raise RecipeError(f"cannot write {target} ({reason}); give --output a path in a writable folder") from None
    return translation, target


def target_name(source: Path) -> str:
    """The file ``recipe convert`` writes by default, next to ``source``.

    >>> target_name(Path("config_demo.yaml"))
    'config_demo.recipe.yaml'
    """
    return f"{source.stem}.recipe.yaml"
