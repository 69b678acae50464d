"""CPU seconds each stack process and everything else used during a run, and whether others disturbed it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .processes import TICKS, ProcInfo, StackProcesses, proc_table

# A run during which processes outside the stack (other people's tests, ...) used more than this share
# of one core is "disturbed": it is repeated (--retries) and, if kept, marked in the JSON and the table.
DISTURBED_CPU_SHARE = 0.25


def load_average() -> float:
    """The 1-minute load average (2 cores: above ~1 someone else is busy too)."""
    return os.getloadavg()[0]


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - values[3] - values[4]) / TICKS


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (wrk)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class CpuWindow:
    """CPU seconds used per role between start() and stop(), and by everything else on the machine."""

    processes: StackProcesses
    started: float = 0.0
    _table: dict[int, ProcInfo] = field(default_factory=dict)
    _busy: float = 0.0
    _self: float = 0.0

    def start(self) -> None:
        """Note where the counters stand."""
        self._table = proc_table()
        self._busy = _machine_busy_seconds()
        self._self = _own_cpu_seconds()
        self.started = time.monotonic()

    def stop(self) -> dict[str, float]:
        """{role: cpu-s, ..., "bench+wrk": cpu-s, "others": cpu-s, "elapsed_seconds": s}."""
        elapsed = time.monotonic() - self.started
        table = proc_table()
        busy = _machine_busy_seconds() - self._busy
        own = _own_cpu_seconds() - self._self
        result: dict[str, float] = {}
        for role, pids in self.processes.roles(table).items():
            used = sum(table[p].cpu_seconds - (self._table[p].cpu_seconds if p in self._table else 0.0) for p in pids)
            result[role] = round(used, 2)
        result["bench+wrk"] = round(own, 2)
        result["others"] = round(max(0.0, busy - sum(result.values())), 2)
        result["elapsed_seconds"] = round(elapsed, 2)
        return result


def disturbed(cpu: dict[str, float]) -> bool:
    """True when processes outside the stack and the bench used a noticeable share of a core."""
    return cpu.get("others", 0.0) > DISTURBED_CPU_SHARE * max(cpu.get("elapsed_seconds", 1.0), 1.0)
