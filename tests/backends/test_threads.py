"""Busy CPUs lower the thread count of an in-process model (never raise it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rainlm.backends.threads import idle_cpus, threads_for
from tests.needs import require


@pytest.mark.parametrize(("current", "idle", "chosen"), [
    (2, 1.9, 2),  # an idle machine keeps torch's count
    (2, 0.1, 1),  # both CPUs busy: one thread, never none
    (2, 1.0, 1),
    (4, 2.6, 3),
    (1, 2.0, 1),  # never more than asked for (OMP_NUM_THREADS, set_num_threads)
    (4, None, 4),  # unknown (not Linux): unchanged
])
def test_threads_follow_the_idle_cpus(current, idle, chosen):
    assert threads_for(current, idle) == chosen


def test_busy_processes_show_as_busy_cpus():
    require(os.path.exists("/proc/stat"), "/proc/stat (Linux's CPU counters)", "run on Linux")
    cpus = os.cpu_count() or 1
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        time.sleep(0.5)
        idle = idle_cpus(0.5)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert idle is not None and idle < cpus / 2
