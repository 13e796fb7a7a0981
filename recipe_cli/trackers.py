"""Live experiment trackers (``trainer.report_to``): checked at validate time, named for the run when on.

transformers sends the trainer's logs to the trackers named in ``report_to`` (trackio, TensorBoard,
Weights & Biases, ...), but it finds out that one is missing only when the trainer is built, after
the model has loaded. recipe checks each named tracker with ``importlib.util.find_spec`` instead:
nothing is imported, so ``recipe validate`` stays fast.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from typing import Any

from recipe_cli.trainer_fields import package_dir

# report_to name -> (modules, any of which makes it available as transformers checks it; what to pip install).
# From transformers.integrations.integration_utils (is_<name>_available), for the trackers people install.
TRACKER_PACKAGES = {
    "trackio": (("trackio",), "trackio"),
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet-ml"),
    "clearml": (("clearml",), "clearml"),
    "neptune": (("neptune",), "neptune"),
    "dvclive": (("dvclive",), "dvclive"),
    "swanlab": (("swanlab",), "swanlab"),
    "codecarbon": (("codecarbon",), "codecarbon"),
    "flyte": (("flytekit",), "flytekit"),
}
SPECIAL = ("none", "all")  # no tracker; every installed one (transformers' own meaning)


def named_trackers(value: Any) -> list[str]:
    """The trackers a ``report_to`` value names (``none`` and ``all`` name none).

    >>> named_trackers("none"), named_trackers("all"), named_trackers(None)
    ([], [], [])
    >>> named_trackers("wandb"), named_trackers(["trackio", "tensorboard"])
    (['wandb'], ['trackio', 'tensorboard'])
    """
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    return [name for name in names if name not in SPECIAL]


def is_installed(module: str) -> bool:
    """Whether a module can be imported, found without importing it (a dotted name's parent must exist)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent of a dotted name is missing
        return False


@cache
def supported_trackers() -> tuple[str, ...]:
    """The ``report_to`` names the installed transformers knows, read from its source without importing it."""
    source = package_dir("transformers") / "integrations" / "integration_utils.py"
    tree = ast.parse(source.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "INTEGRATION_TO_CALLBACK" for t in node.targets
        ):
            return tuple(key.value for key in node.value.keys if isinstance(key, ast.Constant))
    return tuple(TRACKER_PACKAGES)  # a transformers that moved the table: at least the known ones


def check_report_to(value: Any, where: str) -> list[str]:
    """Problems with a ``report_to`` value: unknown tracker names, trackers that are not installed."""
    from recipe_cli.trainer_settings import suggest

    names = [value] if isinstance(value, str) else list(value or [])
    if len(names) > 1 and any(name in SPECIAL for name in names):
        return [f"{where}: {names}: 'none' and 'all' stand alone; give them alone or list tracker names only"]
    problems = []
    for name in named_trackers(value):
        if name not in supported_trackers():
            known = ", ".join(sorted({*supported_trackers(), *SPECIAL}))
            hint = suggest(name, supported_trackers()) or f"; one of {known}"
            problems.append(f"{where}: '{name}' is not a tracker transformers knows{hint}")
            continue
        modules, package = TRACKER_PACKAGES.get(name, ((), ""))
        if modules and not any(is_installed(module) for module in modules):
            problems.append(
                f"{where}: the tracker '{name}' is not installed; run `pip install {package}`, "
                "or set `report_to: none` to train without it"
            )
    return problems


def tracker_defaults(recipe_name: str, stage: str, report_to: Any) -> dict[str, Any]:
    """Names for the run in the trackers, when any is on: the project is the recipe, the run is its stage.

    >>> tracker_defaults("demo", "grpo", ["trackio"])
    {'project': 'demo', 'run_name': 'demo-grpo'}
    >>> tracker_defaults("demo", "grpo", "none")
    {}
    """
    if not named_trackers(report_to) and report_to != "all":
        return {}
    return {"project": recipe_name, "run_name": f"{recipe_name}-{stage}"}
