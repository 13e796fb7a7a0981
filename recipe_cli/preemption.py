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
    """Within the block, a first SIGTERM/SIGINT sets ``flag``; a second one ends the process at once."""
    import threading

    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield flag
        return

    def handle(signum, frame):
        if flag.signum is not None:
            # not logging: a handler may run while the logging lock is held, and os._exit skips flushing
            sys.stderr.write(f"\n{signal.Signals(signum).name} again: exiting now, without saving\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        flag.signum = signum
        log.warning(
            "%s received: finishing the current step and saving a checkpoint (send it again to exit now)",
            signal.Signals(signum).name,
        )

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def preemption_callback(flag: PreemptionFlag):
    """A TrainerCallback that saves and stops at the end of the step during which a signal arrived."""
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            pause = float(os.environ.get(STEP_PAUSE_ENV) or 0)
            if pause:
                time.sleep(pause)
            if flag.signum is not None:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopOnSignal()
