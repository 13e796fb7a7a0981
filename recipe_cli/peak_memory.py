"""The peak memory of a training process, logged beside its loss at every logging step.

``memory/peak_rss_gib`` is the process's peak resident set size (host memory, always logged);
``memory/peak_gpu_gib`` is, on a GPU, the most memory PyTorch's caching allocator held on the
process's device (``torch.cuda.max_memory_reserved``: what runs out first; the CUDA context, about
0.5 GiB, is not in it). Both are peaks since the stage began training (its trainer built, model and
reference loaded), so a resumed stage measures only the steps it ran, and GRPO in ``recipe run``
does not report the peak of the SFT stage before it in the same process (on Linux; elsewhere the
resident peak is the process's since it started). Each process logs its own; the run folder keeps
the main process's log.
``recipe report`` prints each stage's peaks; ``--dry-run``'s memory estimate is the number to set
beside them (``scripts/check_real_size.py`` and ``scripts/bench_gpu.py`` do).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

GIB = 2**30
RSS_KEY, GPU_KEY = "memory/peak_rss_gib", "memory/peak_gpu_gib"


PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def peak_memory() -> dict[str, float]:
    """This process's peaks since the last ``reset_peak_memory`` (else since it started), in GiB, under their keys.

    >>> peaks = peak_memory()
    >>> peaks[RSS_KEY] > 0.01  # the interpreter alone is some MiB
    True
    """
    import torch

    peaks = {RSS_KEY: round(peak_rss_bytes() / GIB, 3)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peaks[GPU_KEY] = round(torch.cuda.max_memory_reserved() / GIB, 3)
    return peaks


def peak_rss_bytes() -> int:
    """The peak resident memory: Linux's ``VmHWM`` (which ``reset_peak_memory`` resets), else ``ru_maxrss``.

    ``ru_maxrss`` is no substitute on Linux: it also keeps the peak of the process's exited threads.
    """
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss * (1 if sys.platform == "darwin" else 1024)


def reset_peak_memory() -> None:
    """Start this process's peaks afresh: a stage's log gives its own, not an earlier stage's in the same process.

    On Linux, writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM`` to the current resident memory;
    elsewhere the resident peak stays the process's since it started.
    """
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    try:
        PROC_CLEAR_REFS.write_text("5")
    except OSError:
        pass


class PeakMemoryMixin:
    """A TRL trainer mixin that adds ``peak_memory()`` to every training log (not to evaluation logs), peaks
    counted from the start of ``train``."""

    def train(self, *args, **kwargs):
        reset_peak_memory()
        return super().train(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if not any(key.startswith("eval_") for key in logs):
            logs = {**logs, **peak_memory()}
        super().log(logs, start_time)


def with_peak_memory(trainer_class: type) -> type:
    """``trainer_class`` (SFTTrainer, GRPOTrainer or a subclass) logging its peak memory."""
    return type(trainer_class.__name__, (PeakMemoryMixin, trainer_class), {"__doc__": trainer_class.__doc__})


def stage_peaks(history: list[dict]) -> dict[str, float]:
    """The highest peak each key reached over a stage's log history.

    >>> stage_peaks([{RSS_KEY: 1.5, "step": 1}, {RSS_KEY: 2.25, GPU_KEY: 7.0}, {"loss": 0.1}])
    {'memory/peak_rss_gib': 2.25, 'memory/peak_gpu_gib': 7.0}
    """
    peaks: dict[str, float] = {}
    for row in history:
        for key in (RSS_KEY, GPU_KEY):
            if isinstance(row.get(key), (int, float)):
                peaks[key] = max(peaks.get(key, 0.0), row[key])
    return peaks


def describe_peaks(history: list[dict]) -> str:
    """The stage's peaks in words, for the report and the model card ("" when none was logged).

    >>> describe_peaks([{RSS_KEY: 2.25, GPU_KEY: 7.0}])
    'peak GPU memory 7.00 GiB, peak resident memory 2.25 GiB'
    """
    peaks = stage_peaks(history)
    named = ((GPU_KEY, "GPU memory"), (RSS_KEY, "resident memory"))
    return ", ".join(f"peak {what} {peaks[key]:.2f} GiB" for key, what in named if key in peaks)
