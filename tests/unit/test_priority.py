"""cmr.priority: background work raises its nice value (threads started afterwards inherit it) and never
lowers it. Each case runs in a fresh interpreter: a nice value cannot be taken back in this one."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import os, sys, threading
from cmr.priority import lower_priority
start = int(sys.argv[1]); target = int(sys.argv[2])
os.nice(start)
got = lower_priority(target)
seen = []
t = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))
t.start(); t.join()
print(got, os.nice(0), seen[0])
"""


def _run(start: int, target: int) -> tuple[int, int, int]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(start), str(target)], capture_output=True, text=True,
                         check=True, timeout=60)
    got, now, thread = (int(x) for x in out.stdout.split())
    return got, now, thread


def test_raises_the_nice_value_for_the_process_and_its_new_threads() -> None:
    base = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True, text=True,
                          check=True).stdout.strip()
    want = max(10, int(base))
    assert _run(0, 10) == (want, want, want)


def test_never_lowers_a_higher_nice_value() -> None:
    got, now, _ = _run(15, 10)
    assert got == now and now >= 15
