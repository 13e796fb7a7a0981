"""Several processes: ``recipe sft|grpo|run --num-processes N`` runs itself again under ``accelerate launch``.

The ``recipe`` process the user started stays as a small parent: it starts ``accelerate launch
-m recipe_cli <the same command>`` (accelerate with DDP, DeepSpeed or FSDP from one of TRL's
configs, or a config file), forwards SIGTERM and SIGINT to the ranks, and exits with the code its
first rank reports (every rank knows the command's outcome). The ranks run the ordinary pipeline
(``recipe_cli.pipeline``), rank-aware. A command already started by a launcher (``WORLD_SIZE`` > 1)
is not launched again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from recipe_cli.config import (
    LaunchSettings,
    Recipe,
    accelerate_config_path,
    deepspeed_settings,
    json_value,
    read_accelerate_config,
    read_deepspeed_file,
)
from recipe_cli.errors import RecipeError
from recipe_cli.lock import RunLock
from recipe_cli.precision import Machine
from recipe_cli.preemption import SIGNALS
from recipe_cli.ranks import world_size
from recipe_cli.trackers import is_installed, missing_trackers
from recipe_cli.trainer_settings import effective_setting

log = logging.getLogger(__name__)

STATUS_ENV = "RECIPE_LAUNCH_STATUS"  # where the main rank writes the command's exit code for the parent
DEFAULT_PORT = 29500  # accelerate's and torchrun's, for machines that must agree on one
GPU_ONLY = {"DEEPSPEED": "DeepSpeed", "FSDP": "FSDP"}


def needs_launch(recipe: Recipe) -> bool:
    """Whether the command runs as several ranks and has not been launched yet."""
    launch = recipe.launch
    return (launch.num_processes > 1 or launch.num_machines > 1) and world_size() == 1


def on_main_machine(recipe: Recipe) -> bool:
    """Whether this machine runs the main process (``machine_rank`` 0). Over several machines each runs the same
    command; the ``recipe`` process of machine 0 alone holds the run folder's lock and checks the Hub token
    (its main rank writes the run folder and pushes), the others only start their ranks."""
    return recipe.launch.machine_rank == 0


def check_launch(recipe: Recipe, machine: Machine, trains: bool = True) -> None:
    """What can only be checked on the machine that trains: GPUs, DeepSpeed, a launch already under way.
    ``trains``: the command trains a stage (``recipe run`` of a recipe without one only evaluates)."""
    launch = recipe.launch
    if world_size() > 1 and world_size() != launch.num_processes:
        raise RecipeError(
            f"this command runs on {world_size()} processes (WORLD_SIZE) but launch.num_processes is "
            f"{launch.num_processes}; pass --num-processes {world_size()} or launch with {launch.num_processes}"
        )
    kind = _distributed_type(launch)
    if kind in GPU_ONLY and not machine.gpu:
        raise RecipeError(
            f"{launch.config_label} uses {GPU_ONLY[kind]}, which needs GPUs and none "
            "is visible; on CPU leave accelerate_config unset (processes then use the gloo backend)"
        )
    if kind == "DEEPSPEED" and not is_installed("deepspeed"):
        raise RecipeError(
            f"{launch.config_label} uses DeepSpeed, which is not installed; "
            "`pip install deepspeed`, or use multi_gpu (DDP) or fsdp2"
        )
    if machine.gpu:
        import torch

        visible = torch.cuda.device_count()
        if trains and visible > 1 and launch.num_processes == 1 and world_size() == 1:
            # transformers' Trainer takes every visible GPU through nn.DataParallel when not launched
            raise RecipeError(
                f"{visible} GPUs are visible to one process: SFT would train on all of them through DataParallel "
                f"(each batch {visible}x the recipe's) and GRPO refuses DataParallel; pass --num-processes {visible} "
                "to train on every GPU, or set CUDA_VISIBLE_DEVICES=0 to train on one"
            )
        if launch.processes_per_machine > visible:
            raise RecipeError(
                f"{launch.processes_per_machine} processes per machine but {visible} GPU(s) visible; "
                f"pass --num-processes {visible * launch.num_machines} (one process per GPU)"
            )


LOCAL_HOSTS = ("0.0.0.0", "127.0.0.1", "localhost", "::1")


def check_vllm(recipe: Recipe, machine: Machine, visible_gpus: int | None = None) -> None:
    """GRPO's vLLM settings against this machine: vLLM installed, a GPU, and room for the training processes
    plus a server on the same machine."""
    trainer = recipe.grpo.trainer if recipe.grpo is not None else {}
    if not trainer.get("use_vllm"):
        return
    if not is_installed("vllm"):
        raise RecipeError(
            "grpo.trainer.use_vllm: vLLM is not installed here; `pip install vllm` on a machine with an NVIDIA GPU, "
            "or remove use_vllm to generate with transformers"
        )
    if not machine.gpu:
        raise RecipeError("grpo.trainer.use_vllm: vLLM generates on a CUDA GPU and none is visible; remove use_vllm")
    launch, per_machine = recipe.launch, recipe.launch.processes_per_machine
    if visible_gpus is None:
        import torch

        visible_gpus = torch.cuda.device_count()
    if effective_setting("GRPOConfig", trainer, "vllm_mode") == "colocate":
        parallel = effective_setting("GRPOConfig", trainer, "vllm_tensor_parallel_size")
        if per_machine % parallel:
            raise RecipeError(
                f"grpo.trainer.vllm_tensor_parallel_size {parallel} does not divide the {per_machine} processes per "
                "machine (colocated vLLM groups ranks by it); use a divisor of the process count"
            )
        return
    server, host = launch.vllm_server, effective_setting("GRPOConfig", trainer, "vllm_server_host")
    local = host in LOCAL_HOSTS and not trainer.get("vllm_server_base_url")
    if local and not os.environ.get("CUDA_VISIBLE_DEVICES") and per_machine + server.gpus > visible_gpus:
        train = ",".join(str(i) for i in range(visible_gpus - server.gpus))
        serve = ",".join(str(i) for i in range(visible_gpus - server.gpus, visible_gpus))
        raise RecipeError(
            f"{per_machine} training processes plus the vLLM server's {server.gpus} GPU(s) do not fit the "
            f"{visible_gpus} GPUs here; serve on the last ones and train on the rest: "
            f"`CUDA_VISIBLE_DEVICES={serve} recipe serve RECIPE` and "
            f"`CUDA_VISIBLE_DEVICES={train} recipe grpo RECIPE --num-processes {visible_gpus - server.gpus}`"
        )


# Packages that transformers imports only once the model is loading or training starts, where a missing one is a
# traceback: (setting, value) -> (module, pip package). Without flash-attn, transformers would take the kernel from
# the Hub through the `kernels` package, when that is installed.
ATTENTION_PACKAGES = {"flash_attention_2": ("flash_attn", "flash-attn")}


def missing_packages(recipe: Recipe, stages: list[str]) -> list[tuple[str, str, str]]:
    """What the model and the ``stages``' trainers ask of packages this machine lacks: (problem, the commands it
    stops, fix) each, for a GPU attention implementation (every stage loads the model), the Liger kernels, the
    trackers of ``report_to`` and an optimizer from another package (transformers imports both only once the model
    has loaded)."""
    from recipe_cli.trainer_settings import optimizer_package

    missing = []
    attention = recipe.model.attn_implementation
    needed = ATTENTION_PACKAGES.get(attention or "")
    if needed and not is_installed(needed[0]) and not is_installed("kernels"):
        problem = f"model.attn_implementation: {attention} needs {needed[1]}, which is not installed here"
        fix = f"`pip install {needed[1]}` where the model trains (a CUDA GPU), or set model.attn_implementation: sdpa"
        missing.append((problem, _commands_loading_the_model(recipe), fix))
    for stage in stages:
        settings = getattr(recipe, stage, None)
        trainer = settings.trainer if settings is not None else {}
        lacks = []  # (problem, fix)
        if trainer.get("use_liger_kernel") and not is_installed("liger_kernel"):
            lacks.append(
                (
                    "use_liger_kernel: the Liger kernels need liger-kernel, not installed here",
                    "`pip install liger-kernel` where the model trains (a CUDA GPU), or set use_liger_kernel: false",
                )
            )
        for name, package in missing_trackers(trainer.get("report_to")):
            lacks.append(
                (
                    f"report_to: the tracker '{name}' is not installed here",
                    f"run `pip install {package}` where the model trains, or set `report_to: none` to train without it",
                )
            )
        optimizer = trainer.get("optim")
        needed = optimizer_package(str(optimizer)) if optimizer else None
        if needed and not is_installed(needed[0]):
            lacks.append(
                (
                    f"optim: the optimizer {optimizer!r} needs {needed[1]}, which is not installed here",
                    f"run `pip install {needed[1]}` where the model trains, or use adamw_torch",
                )
            )
        missing += [(f"{stage}.trainer.{problem}", f"`recipe {stage}` and `run`", fix) for problem, fix in lacks]
    return missing


def _commands_loading_the_model(recipe: Recipe) -> str:
    """The commands that load the recipe's model: the training ones, eval and rewards, ``data`` when a stage samples
    pass rates (``difficulty``), ``push`` when it merges the LoRA adapter (``push.merge_lora``)."""
    commands = ["`recipe sft`", "`grpo`", "`run`", "`eval`", "`rewards`"]
    stages = [getattr(recipe, stage) for stage in recipe.training_stages]
    if any(settings.dataset.difficulty is not None for settings in stages):
        commands.append("`data` (difficulty samples the model)")
    if recipe.push is not None and recipe.push.merge_lora:
        commands.append("`push` (merge_lora)")
    return ", ".join(commands[:-1]) + " and " + commands[-1]


def check_packages(recipe: Recipe, stages: list[str]) -> None:
    """Stop before any model loads when the model (every command that loads it) or the ``stages``' trainers need a
    package this machine lacks: transformers would raise once the model is loading, or after it loaded."""
    missing = missing_packages(recipe, stages)
    if missing:
        raise RecipeError("; ".join(f"{problem}; {fix}" for problem, _, fix in missing))


def check_machine(
    recipe: Recipe, stages: list[str], *, evaluates: bool = False, machine: Machine | None = None
) -> None:
    """Everything about this machine a training command needs, checked before any process starts.

    Only what the command uses: the packages its model and trainers need, GRPO's vLLM settings when it trains
    GRPO (SFT never generates with vLLM), ``eval.backend`` when it evaluates (``recipe run``).
    """
    machine = machine or Machine.here()
    check_launch(recipe, machine, trains=bool(stages))
    check_packages(recipe, stages)
    if "grpo" in stages:
        check_vllm(recipe, machine)
    if evaluates and recipe.eval is not None:
        from recipe_cli.generation import choose_backend, vllm_installed

        choose_backend(recipe.eval.backend, vllm_available=vllm_installed(), cuda=machine.gpu)


def _distributed_type(launch: LaunchSettings) -> str | None:
    """The ``distributed_type`` of the accelerate config (MULTI_GPU, DEEPSPEED, FSDP...), None without one."""
    return read_accelerate_config(launch).get("distributed_type")


def sharding(launch: LaunchSettings) -> tuple[str, set[str]]:
    """How the launch splits training state over its ranks: a name, and which parts each rank holds 1/N of.

    DDP replicates everything; DeepSpeed ZeRO-1 shards the optimizer state, ZeRO-2 also the
    gradients, ZeRO-3 also the weights (and a reference model); FSDP shards all three.

    >>> sharding(LaunchSettings(num_processes=8))
    ('DDP', set())
    >>> sharding(LaunchSettings(num_processes=8, accelerate_config="zero2"))[1] == {"optimizer", "gradients"}
    True
    """
    if launch.num_processes == 1:
        return "one process", set()
    kind = _distributed_type(launch)
    if kind == "DEEPSPEED":
        stage = deepspeed_settings(read_accelerate_config(launch), launch.config_label).get("zero_stage", 0)
        parts = [set(), {"optimizer"}, {"optimizer", "gradients"}, {"optimizer", "gradients", "weights"}]
        held = parts[min(int(stage), 3)]
        return f"DeepSpeed ZeRO-{stage}", held | ({"reference model"} if "weights" in held else set())
    if kind == "FSDP":
        return "FSDP", {"optimizer", "gradients", "weights", "reference model"}
    return "DDP", set()


def saves_16bit_weights(launch: LaunchSettings) -> bool:
    """Whether the launch saves each stage's model in the dtype it computes with: DeepSpeed (any ZeRO stage) casts
    the model's weights to bf16/fp16 under mixed precision and keeps the float32 masters in its optimizer state,
    which only its resume checkpoints hold (ZeRO-3 gathers the 16-bit weights: ``zero3_save_16bit_model``).

    >>> saves_16bit_weights(LaunchSettings(num_processes=8, accelerate_config="zero2"))
    True
    >>> saves_16bit_weights(LaunchSettings(num_processes=8, accelerate_config="fsdp2"))
    False
    >>> saves_16bit_weights(LaunchSettings(num_processes=1, accelerate_config="zero3"))  # no launch, no DeepSpeed
    False
    """
    return launch.num_processes > 1 and _distributed_type(launch) == "DEEPSPEED"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# DeepSpeed values each stage's trainer settings decide: transformers fills DeepSpeed's "auto" from them, and
# refuses a config whose value disagrees (TRL's zero1 sets gradient_accumulation_steps: 1)
STAGE_DEEPSPEED_KEYS = ("gradient_accumulation_steps", "gradient_clipping")
# The same in a DeepSpeed JSON, with the batch sizes and the precision (model.dtype decides it, as the launch's
# --mixed_precision): accelerate writes 1 for a missing gradient_accumulation_steps, so it is always set "auto".
STAGE_DEEPSPEED_JSON_KEYS = (
    "train_micro_batch_size_per_gpu",
    "train_batch_size",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "fp16.enabled",
    "bf16.enabled",
)
# A DeepSpeed scheduler's length and warmup: transformers fills their "auto" from each stage's step count and
# warmup_steps once the model has loaded, and refuses another number (SFT and GRPO train for different lengths).
# Set "auto" only where the file has them: not every scheduler takes them (WarmupLR has no total_num_steps).
STAGE_DEEPSPEED_SCHEDULER_KEYS = ("scheduler.params.total_num_steps", "scheduler.params.warmup_num_steps")


def launch_config_file(launch: LaunchSettings, folder: Path) -> Path | None:
    """The accelerate config to launch with: the recipe's, or a copy written to ``folder`` without the DeepSpeed
    values that each stage's ``gradient_accumulation_steps``, ``max_grad_norm`` (and, in a DeepSpeed JSON, batch
    size, precision and the scheduler's length) decide: SFT's and GRPO's may differ, and one launch runs both."""
    import yaml

    if launch.accelerate_config is None:
        return None
    path = accelerate_config_path(launch.accelerate_config)
    settings = read_accelerate_config(launch)
    deepspeed = settings.get("deepspeed_config") or {}
    given = {key: deepspeed[key] for key in STAGE_DEEPSPEED_KEYS if key in deepspeed}
    data = read_deepspeed_file(settings, launch.config_label)
    if data is not None:
        json_file = _stage_deepspeed_json(data, Path(deepspeed["deepspeed_config_file"]), folder)
        deepspeed = {**deepspeed, "deepspeed_config_file": str(json_file)}
    elif not given:
        return path
    _say_left_to_stages(given, path)
    kept = {key: value for key, value in deepspeed.items() if key not in given}
    copy = folder / f"accelerate-{path.name}"
    copy.write_text(yaml.safe_dump({**settings, "deepspeed_config": kept}, sort_keys=False))
    return copy


def _say_left_to_stages(given: dict, source: Path) -> None:
    """Log the DeepSpeed values a launch copy leaves to each stage (``given``: what ``source`` said)."""
    if given:
        log.info(
            "launch: %s left to each stage's trainer settings (DeepSpeed's auto), not %s's",
            ", ".join(f"{key} {value}" for key, value in given.items()),
            source.name,
        )


def _stage_deepspeed_json(data: dict, source: Path, folder: Path) -> Path:
    """A copy of a DeepSpeed JSON in ``folder`` whose stage-decided values (``STAGE_DEEPSPEED_JSON_KEYS``, and the
    ``STAGE_DEEPSPEED_SCHEDULER_KEYS`` it sets) are "auto", where the file gave a number or nothing; its other
    settings are kept as they are."""
    import copy
    import json

    written, given = copy.deepcopy(data), {}
    for dotted in STAGE_DEEPSPEED_JSON_KEYS + STAGE_DEEPSPEED_SCHEDULER_KEYS:
        *parents, key = dotted.split(".")
        node = json_value(written, ".".join(parents)) if parents else written
        if not isinstance(node, dict):
            continue  # no fp16/bf16 section (accelerate adds one from --mixed_precision), no scheduler
        if dotted in STAGE_DEEPSPEED_SCHEDULER_KEYS and key not in node:
            continue
        if node.get(key, "auto") != "auto":
            given[dotted] = node[key]
        node[key] = "auto"
    _say_left_to_stages(given, source)
    target = folder / f"deepspeed-{source.name}"
    target.write_text(json.dumps(written, indent=2) + "\n")
    return target


def launch_arguments(
    launch: LaunchSettings, mixed_precision: str | None, machine: Machine, config_file: Path | None = None
) -> list[str]:
    """The ``accelerate launch`` options for the recipe's launch settings and precision plan.

    Mixed precision follows ``model.dtype`` (``recipe_cli.precision``), whatever the accelerate
    config says, so the launcher and the trainer never disagree. ``config_file`` replaces the
    recipe's accelerate config file (``launch_config_file``).

    >>> launch_arguments(LaunchSettings(num_processes=2), None, Machine(gpu=False))[:8]
    ['--num_processes', '2', '--num_machines', '1', '--machine_rank', '0', '--mixed_precision', 'no']
    """
    arguments = [
        "--num_processes",
        str(launch.num_processes),
        "--num_machines",
        str(launch.num_machines),
        "--machine_rank",
        str(launch.machine_rank),
        "--mixed_precision",
        mixed_precision or "no",
        "--dynamo_backend",
        "no",
    ]
    if launch.accelerate_config is not None:
        arguments += ["--config_file", str(config_file or accelerate_config_path(launch.accelerate_config))]
    else:
        # plain DDP; without a GPU `--cpu` would start one process, `--multi_gpu` with ACCELERATE_USE_CPU
        # starts the ranks on the gloo backend (see the environment in `relaunch`)
        arguments.append("--multi_gpu")
    if launch.num_machines > 1:
        arguments += ["--main_process_ip", launch.main_process_ip]
        arguments += ["--main_process_port", str(launch.main_process_port or DEFAULT_PORT)]
    else:  # several commands on one machine must not share a rendezvous port
        arguments += ["--main_process_port", str(launch.main_process_port or _free_port())]
    return arguments


def relaunch(recipe: Recipe, argv: list[str], lock: RunLock | None = None) -> int:
    """Run ``recipe <argv>`` as this machine's ranks of ``launch.num_processes``; return the exit code they reported.

    SIGTERM and SIGINT sent to this process go to every rank of this machine (the launcher itself
    runs in its own session, so a Ctrl-C in the terminal reaches the ranks once, through here).
    ``lock``: the run folder's lock this process holds, which the launcher holds too until it ends.
    """
    from recipe_cli.training import stage_precision

    machine = Machine.here()
    check_launch(recipe, machine)
    precision = stage_precision(recipe, machine)
    with tempfile.TemporaryDirectory(prefix="recipe-launch-") as scratch:
        config_file = launch_config_file(recipe.launch, Path(scratch))
        command = [sys.executable, "-m", "accelerate.commands.launch"]
        command += launch_arguments(recipe.launch, precision.mixed_precision, machine, config_file)
        command += ["-m", "recipe_cli", *argv]
        status = Path(scratch) / "status.json"
        env = {**os.environ, STATUS_ENV: str(status)}
        if not machine.gpu:
            env["ACCELERATE_USE_CPU"] = "1"
        if "OMP_NUM_THREADS" not in env:  # torchrun would set 1 and warn; share the cores instead
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // recipe.launch.processes_per_machine))
        log.info("launching %d processes: %s", recipe.launch.processes_per_machine, " ".join(command[1:]))
        held = lock.file_descriptor() if lock is not None else None
        launcher = start_launcher(command, env, () if held is None else (held,))
        if held is not None:
            lock.name_holder(f"and the launcher of its ranks, pid {launcher.pid}")
        return wait_for_ranks(launcher, status)


def start_launcher(command: list[str], env: dict[str, str], inherit: tuple[int, ...] = ()) -> subprocess.Popen:
    """Start ``command`` (accelerate's launcher) in its own session, to end with this process.

    Its own session: a Ctrl-C in the terminal reaches the ranks once, through this process
    (``wait_for_ranks``). Ending with this process: should it be killed outright (SIGKILL, the OOM
    killer), the launcher gets SIGTERM and passes it on to the ranks, which save at the end of the step
    and stop, instead of training on unseen. ``inherit``: descriptors it keeps open, the run folder's
    lock among them, so that no other command takes the run folder while the ranks still write it.
    """
    ending_with_this = [sys.executable, "-m", "recipe_cli.launch", str(os.getpid()), *command]
    return subprocess.Popen(ending_with_this, env=env, start_new_session=True, pass_fds=inherit)


PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent ends


def _exec_ending_with(parent: int, command: list[str]) -> None:
    """Become ``command``, which gets SIGTERM when ``parent`` ends (on Linux; elsewhere it just runs)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it ended before the request took effect
            sys.exit(128 + signal.SIGTERM)
    os.execv(command[0], command)


def wait_for_ranks(launcher: subprocess.Popen, status: Path) -> int:
    """Wait for the launcher's ranks, passing SIGTERM and SIGINT on to them; return the command's exit code.

    A first signal asks the ranks to save at the end of the step; a second one ends them, and the launcher,
    at once. This process counts the signals: the ranks also get them from the launcher and from whoever
    signals every process of the job, so they take every signal after the first as the same request.

    The code is the one the first rank reports in ``status``; without a report, 128 + the signal when one
    was passed on (the ranks ended by it outside a training step, which a scheduler's requeue reads as one
    process ended by that signal), else the launcher's.
    """
    received: list[int] = []
    previous = {signum: signal.signal(signum, _forwarder(launcher, received)) for signum in SIGNALS}
    try:
        code = launcher.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if status.is_file():
        return int(json.loads(status.read_text())["exit_code"])
    if received:
        return 128 + received[-1]
    return 128 - code if code < 0 else code or 1  # a launcher ended by signal N: -N, as a shell says it 128 + N


def _forwarder(launcher: subprocess.Popen, received: list[int]):
    """A signal handler that passes the signal on to the launcher's ranks (not to the launcher), noting it in
    ``received``; the second one kills the ranks, their own processes and the launcher.

    The ranks finish their step and save; the launcher would instead stop them after a grace period.
    """
    import psutil

    def forward(signum, frame):
        received.append(signum)
        try:
            ranks = psutil.Process(launcher.pid).children()
        except psutil.Error:
            return
        if len(received) > 1:  # no logging in a handler (see recipe_cli.preemption)
            sys.stderr.write(f"\n{signal.Signals(signum).name} again: exiting now, without saving\n")
            sys.stderr.flush()
            for process in [child for rank in ranks for child in _with_descendants(rank)] + [launcher]:
                try:
                    process.kill()
                except (psutil.Error, ProcessLookupError):
                    continue
            return
        for process in ranks:
            try:
                process.send_signal(signum)
            except psutil.Error:
                continue

    return forward


def _with_descendants(process) -> list:
    """A ``psutil.Process`` and every process it started (a rank's data loader workers, a vLLM engine)."""
    import psutil

    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def report_status(exit_code: int) -> None:
    """This machine's first rank's exit code, for the ``recipe`` process that launched the machine's ranks
    (nothing otherwise). Every rank knows the command's outcome (``recipe_cli.ranks.on_main`` shares it)."""
    path = os.environ.get(STATUS_ENV)
    if path:
        Path(path).write_text(json.dumps({"exit_code": exit_code}) + "\n")


def under_recipe_launch() -> bool:
    """Whether a ``recipe`` parent started this rank and reads its status."""
    return bool(os.environ.get(STATUS_ENV))


if __name__ == "__main__":  # `python -m recipe_cli.launch PARENT_PID COMMAND...`, see start_launcher
    _exec_ending_with(int(sys.argv[1]), sys.argv[2:])
