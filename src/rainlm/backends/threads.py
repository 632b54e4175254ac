"""How many CPU threads an in-process model should use on a machine others are using.

torch starts one OpenMP thread per core. When other processes keep those cores busy,
its threads wait for each other at every parallel region, and a model runs slower with
two threads than with one (measured on a 2-core machine with two CPU-bound processes
beside it: decode steps of up to 1.7 s instead of 0.1 s, and a greedy answer 1.75x
slower than on one thread; idle, two threads are 1.6x faster: benchmarks/RESULTS.md,
"The demo's time budget"). ``fit_torch_threads`` counts the CPUs that are idle right
now and lowers torch's thread count to that (never raises it), for one-shot commands
such as ``rain generate``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["fit_torch_threads", "idle_cpus", "threads_for"]

log = logging.getLogger(__name__)
SAMPLE_S = 0.25
"""How long ``idle_cpus`` watches the CPUs."""


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs together, from /proc/stat (None elsewhere)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    values = [float(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])  # user..steal (guest time is counted in user)


def idle_cpus(sample_s: float = SAMPLE_S) -> float | None:
    """CPUs' worth of idle time over the next ``sample_s`` seconds (None where it cannot
    be read: not Linux)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])  # of the whole machine
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return min(share * (os.cpu_count() or 1), usable or os.cpu_count() or 1)


def threads_for(current: int, idle: float | None) -> int:
    """Threads to use: ``current``, lowered to the idle CPUs (rounded), at least 1."""
    if idle is None:
        return current
    return max(1, min(current, int(idle + 0.5)))


def fit_torch_threads() -> int | None:
    """Lower torch's thread count to the CPUs idle now (those this process may run on),
    when torch is loaded; returns the count it leaves (None: torch is not loaded). A
    container's CPU quota (cgroups) is not read: torch's own count is the upper bound."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    current = torch.get_num_threads()
    chosen = threads_for(current, idle_cpus())
    if chosen != current:
        log.info("torch threads: %d -> %d (the other CPUs are busy)", current, chosen)
        torch.set_num_threads(chosen)
    return chosen
