"""The fields of TRL's ``SFTConfig`` and ``GRPOConfig``, read from the installed source.

Importing ``trl`` pulls in torch and takes seconds; ``recipe validate`` must not. The configs
are plain dataclasses (``GRPOConfig -> _BaseConfig -> transformers.TrainingArguments``), so
their field names, annotations and literal defaults can be read from the source with ``ast``.
Reading the installed files, not a copied list, keeps the check true to the TRL version the
run will use.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from recipe_cli.errors import RecipeError

_NO_DEFAULT = object()

# Where each config class is defined, relative to its package, and its base class.
_SOURCES = {
    "SFTConfig": ("trl", "trainer/sft_config.py", "_BaseConfig"),
    "GRPOConfig": ("trl", "trainer/grpo_config.py", "_BaseConfig"),
    "_BaseConfig": ("trl", "trainer/base_config.py", "TrainingArguments"),
    "TrainingArguments": ("transformers", "training_args.py", None),
}


@dataclass(frozen=True)
class TrainerField:
    """One dataclass field: its name, annotation as written, and literal default if it has one."""

    name: str
    annotation: str
    default: object = _NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RecipeError(f"the package '{package}' is not installed; run `pip install -e .` (or `make install`)")
    return Path(next(iter(spec.submodule_search_locations)))


def _literal_default(value: ast.expr) -> object:
    """The default of ``name: T = <value>`` or ``name: T = field(default=<value>)``, when it is a literal."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        for keyword in value.keywords:
            if keyword.arg == "default":
                value = keyword.value
                break
        else:
            return _NO_DEFAULT
    try:
        return ast.literal_eval(value)
    except ValueError:
        return _NO_DEFAULT


def _class_fields(class_name: str) -> dict[str, TrainerField]:
    package, relative, _ = _SOURCES[class_name]
    tree = ast.parse((package_dir(package) / relative).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    fields = {}
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            name = statement.target.id
            if name.startswith("_"):
                continue
            default = _literal_default(statement.value) if statement.value is not None else _NO_DEFAULT
            fields[name] = TrainerField(name, ast.unparse(statement.annotation), default)
    return fields


@cache
def trainer_fields(class_name: str) -> dict[str, TrainerField]:
    """All fields of a TRL config class, inherited ones included, subclass definitions winning."""
    _, _, base = _SOURCES[class_name]
    fields = dict(trainer_fields(base)) if base else {}
    fields.update(_class_fields(class_name))
    return fields


# Settings whose value names a member of a transformers enum, which TrainingArguments checks only when it is built
ENUMS = {
    "lr_scheduler_type": ("transformers", "trainer_utils.py", "SchedulerType", "a scheduler"),
    "optim": ("transformers", "training_args.py", "OptimizerNames", "an optimizer"),
}


@cache
def enum_values(key: str) -> tuple[str, ...]:
    """The values the enum behind setting ``key`` accepts (``ENUMS``), read from the installed source; () for others.

    >>> "cosine" in enum_values("lr_scheduler_type"), "adamw_torch" in enum_values("optim"), enum_values("seed")
    (True, True, ())
    """
    if key not in ENUMS:
        return ()
    package, relative, class_name, _ = ENUMS[key]
    tree = ast.parse((package_dir(package) / relative).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return tuple(
        statement.value.value
        for statement in node.body
        if isinstance(statement, ast.Assign)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )
