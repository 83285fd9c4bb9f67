"""CPU accounting from /proc (Linux; psutil is not a dependency): seconds of CPU used by a process and its
descendants (the encoder service's Triton and its Python backend stubs are grandchildren), and the machine's busy
time, so each step can say how many of the 2 cores each part used, the load generator included, and how many
went to other jobs on the shared machine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    return text[text.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f is not None:
                kids.setdefault(int(f[1]), []).append(int(name))  # f[1] is the ppid
    return kids


def tree_cpu_s(pid: int, kids: Mapping[int, list[int]] | None = None) -> float:
    """user + system CPU seconds of pid and every live descendant (plus what they reaped from dead children)."""
    kids = _children() if kids is None else kids
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        f = _stat_fields(p)
        if f is None:
            continue
        total += sum(int(x) for x in f[11:15]) / _TICK  # utime, stime, cutime, cstime
        todo += kids.get(p, [])
    return total


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already inside user
    return (total - idle) / _TICK, total / _TICK


@dataclass
class CpuSnapshot:
    parts: dict[str, float]  # CPU seconds per named process tree
    busy: float
    total: float


def own_cpu_s() -> float:
    """This process only (every thread), not the services it started: the load generator's own cost."""
    t = os.times()
    return t.user + t.system


def snapshot(pids: Mapping[str, int]) -> CpuSnapshot:
    """pids: part name -> root pid of its process tree; this process's own pid counts only itself."""
    kids = _children()
    busy, total = machine_busy_s()
    me = os.getpid()
    return CpuSnapshot({name: own_cpu_s() if pid == me else tree_cpu_s(pid, kids) for name, pid in pids.items()},
                       busy, total)


def cores_used(before: CpuSnapshot, after: CpuSnapshot, wall_s: float) -> dict[str, float]:
    """Cores each part kept busy over wall_s; 'machine' = all cores' busy time, 'other' = what none of the
    named parts used (other jobs on a shared machine, the kernel)."""
    if wall_s <= 0:
        return {}
    out = {name: round((after.parts[name] - before.parts.get(name, 0.0)) / wall_s, 3) for name in after.parts}
    cores = os.cpu_count() or 1
    span = after.total - before.total
    machine = (after.busy - before.busy) / span * cores if span > 0 else 0.0
    out["machine"] = round(machine, 3)
    out["other"] = round(max(0.0, machine - sum(v for k, v in out.items() if k != "machine")), 3)
    return out
