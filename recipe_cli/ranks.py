"""Which process does what when a command runs on several ranks (``accelerate launch``).

Under ``accelerate launch`` every rank runs the same ``recipe`` command. All ranks train; the
main process (global rank 0) alone writes the run folder's records, builds the base model,
evaluates and pushes. The other ranks wait at a barrier meanwhile, and learn from the main
process whether its part succeeded: a user mistake found by the main process stops every rank
with the same outcome instead of leaving them waiting.

Outside a launch (one process) every function here is a plain call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from recipe_cli.errors import RecipeError, TrainingStopped

T = TypeVar("T")
# How long ranks wait at a barrier for the main process (an evaluation of 1319 GSM8K problems with
# long completions can take an hour with transformers generation); the default 30 minutes of
# torch.distributed would stop a long run at its first evaluation.
BARRIER_TIMEOUT = timedelta(hours=6)


class OtherRankStopped(Exception):
    """The main process stopped the command; this rank ends quietly with the same exit code."""

    def __init__(self, exit_code: int):
        super().__init__(f"stopped by the main process (exit code {exit_code})")
        self.exit_code = exit_code


def shared(error: BaseException) -> BaseException:
    """Mark an error every rank raises alike (an agreed stop, the main process's outcome).

    Such an error ends each rank quietly with exit code 0 under ``recipe``'s own launch (the main
    process reports the outcome); any other error ends its rank with its code, so that the
    launcher stops the ranks still waiting for it.
    """
    error.shared_by_ranks = True
    return error


def is_shared(error: BaseException) -> bool:
    return getattr(error, "shared_by_ranks", False) or isinstance(error, OtherRankStopped)


def world_size() -> int:
    """Processes taking part in this command: ``WORLD_SIZE`` as the launcher sets it, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def launched() -> bool:
    """Whether this process is one of several ranks started by a launcher."""
    return world_size() > 1


def is_local_main() -> bool:
    """Whether this process is the first rank of its machine (``LOCAL_RANK`` 0), the one that reports the
    command's outcome to the ``recipe`` process that started the machine's ranks."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def is_main() -> bool:
    """Whether this process writes the run folder, evaluates and pushes (global rank 0)."""
    return rank() == 0


def _process_group():
    """The process group of the launch, created on first use with a timeout that outlasts an evaluation.

    transformers' TrainingArguments later finds the group initialised and uses it.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState(timeout=BARRIER_TIMEOUT)
    return dist


def _exit_code(error: BaseException) -> int:
    if isinstance(error, RecipeError):
        return 2
    if isinstance(error, TrainingStopped):
        return error.exit_code
    if isinstance(error, OtherRankStopped):
        return error.exit_code
    return 1


def on_main(action: Callable[[], T]) -> T:
    """Run ``action`` on the main process only; every rank gets its result, or stops as the main process did.

    The result must be picklable (paths, plans): it is broadcast to the other ranks.
    """
    if not launched():
        return action()
    dist = _process_group()
    payload: list = [None]
    failure = None
    if is_main():
        try:
            payload[0] = ("ok", action())
        except BaseException as error:  # told to the other ranks, then raised here as it was
            failure = error
            payload[0] = ("stopped", _exit_code(error))
    dist.broadcast_object_list(payload, src=0)
    if failure is not None:
        raise shared(failure)
    status, value = payload[0]
    if status != "ok":
        raise OtherRankStopped(value)
    return value


def on_every(action: Callable[[], T]) -> T:
    """Run ``action`` on every rank; when it fails on any, every rank stops as the first rank that failed did.

    For what each rank does on its own (reading its data and tokenizer, on its own machine): a user
    mistake found there by one rank (a model missing from one machine's cache) would otherwise end that
    rank alone, its message unprinted (only the main process prints), while the others waited for it at
    their next collective until the launcher stopped them with tracebacks. A user mistake stops every
    rank with its message, which the main process prints naming the rank; any other error keeps its
    traceback on the rank that raised it, and the other ranks stop with its exit code. ``action`` must
    hold no collective (TRL's trainers wait for each other as they prepare their data; DeepSpeed ZeRO-3
    loads a model with them): a rank that failed would be waiting here for the others there.
    """
    if not launched():
        return action()
    dist = _process_group()
    failure, outcome = None, None
    try:
        value = action()
    except BaseException as error:  # told to every rank, then raised as agreed
        failure = error
        outcome = (rank(), _exit_code(error), str(error) if isinstance(error, RecipeError) else None)
    outcomes: list = [None] * world_size()
    dist.all_gather_object(outcomes, outcome)
    first = next((found for found in outcomes if found is not None), None)
    if first is None:
        return value
    failed_rank, exit_code, message = first
    if failed_rank == rank():
        raise shared(failure) if message is not None else failure
    if message is not None:
        raise shared(RecipeError(message if failed_rank == 0 else f"rank {failed_rank}: {message}"))
    raise OtherRankStopped(exit_code)


def agree_max(value: int) -> int:
    """The largest of every rank's ``value`` (a preemption signal's number, a non-finite flag), on every rank.

    Ranks must stop at the same step, or the ones still training wait forever for the others.
    """
    if not launched():
        return value
    import torch
    from accelerate import PartialState

    dist = _process_group()
    tensor = torch.tensor([value], device=PartialState().device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def barrier() -> None:
    if launched():
        _process_group().barrier()
