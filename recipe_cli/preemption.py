"""Preemption: on SIGTERM or SIGINT, finish the current step, save a checkpoint and stop; a second signal exits now.

Schedulers (Slurm, Kubernetes, spot instances) send SIGTERM and wait a grace period before
SIGKILL; a step plus a save fits in it, so at most the current step is lost.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from contextlib import contextmanager

from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Test hook: seconds to sleep at the end of every optimizer step, so a test can signal a
# running step. Unset in normal runs.
STEP_PAUSE_ENV = "RECIPE_TEST_STEP_PAUSE_SECONDS"


class PreemptionFlag:
    """Which signal asked the run to stop, if any."""

    def __init__(self):
        self.signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal (143 for SIGTERM)."""
        return 128 + (self.signum or 0)


@contextmanager
def stop_on_signals(flag: PreemptionFlag):
    """Within the block, a first SIGTERM/SIGINT sets ``flag``; a second one ends the process at once.

    A rank of ``recipe``'s own launch leaves the second signal to the ``recipe`` process that started it
    (``recipe_cli.launch.wait_for_ranks``), which counts the signals sent to the command: one stop request
    often reaches a rank several times, from that process, from accelerate's launcher and directly (systemd
    and Slurm signal every process of a job), and must still save.
    """
    import threading

    from recipe_cli.launch import under_recipe_launch

    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield flag
        return
    repeats_exit = not under_recipe_launch()

    def handle(signum, frame):
        # no logging here: a handler may run while the logging lock is held (the step's callbacks say
        # that the signal was seen); os._exit skips flushing, hence the direct write
        if flag.signum is not None and repeats_exit:
            sys.stderr.write(f"\n{signal.Signals(signum).name} again: exiting now, without saving\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        flag.signum = signum

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def preemption_callback(flag: PreemptionFlag):
    """A TrainerCallback that saves and stops at the end of the step during which a signal arrived.

    With several ranks, a signal may reach them during different steps (or reach only some of
    them): at each step's end the ranks agree on the signal, so they all stop after the same step.
    """
    from transformers import TrainerCallback

    from recipe_cli.ranks import agree_max

    pause = hook_number(STEP_PAUSE_ENV)

    class StopOnSignal(TrainerCallback):
        def __init__(self):
            self.announced = False

        def on_step_end(self, args, state, control, **kwargs):
            if pause:
                time.sleep(pause)
            agreed = agree_max(flag.signum or 0)
            if agreed and flag.signum is None:
                flag.signum = agreed  # another rank was signalled: stop with it
            if flag.signum is not None:
                if not self.announced:  # said here, once: the signal handler must not log
                    self.announced = True
                    log.warning(
                        "%s received: saving a checkpoint after step %d, then stopping (send it again to exit now)",
                        flag.name,
                        state.global_step,
                    )
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopOnSignal()


def hook_number(name: str) -> float:
    """A test hook's number from the environment (0 when unset), read once when its callback is built.

    >>> hook_number("RECIPE_TEST_UNSET_FOR_DOCTEST")
    0.0
    """
    value = os.environ.get(name) or "0"
    try:
        return float(value)
    except ValueError:
        raise RecipeError(f"{name}={value!r} is not a number; unset it (it is a test hook)") from None
