"""The stack's processes by role, from /proc and the launcher's pid files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from devstack.services import SERVICES
from devstack.stack import Stack

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    """What /proc says about one process."""

    pid: int
    ppid: int
    pgrp: int
    cpu_seconds: float


def proc_table() -> dict[int, ProcInfo]:
    """Every process alive now, by pid."""
    table: dict[int, ProcInfo] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        table[pid] = ProcInfo(pid, int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS)
    return table


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class StackProcesses:
    """The stack's processes by role: each service's process group (uvicorn workers included),
    PostgreSQL (postmaster and its backends) and Kafka. Empty when the stack is not the launcher's."""

    def __init__(self, stack: Stack | None) -> None:
        self.stack = stack

    def roles(self, table: dict[int, ProcInfo]) -> dict[str, set[int]]:
        """role -> pids alive now."""
        if self.stack is None:
            return {}
        roles: dict[str, set[int]] = {}
        supervisor = self.stack.supervisor  # each program is its own process group: its pid is the group id
        for service in SERVICES:
            groups = {supervisor.pid(instance.name) for instance in self.stack.instances(service)} - {None}
            if groups:
                roles[service.name] = {p.pid for p in table.values() if p.pgrp in groups}
        kafka = supervisor.pid("kafka")
        if kafka is not None:
            roles["kafka"] = {p.pid for p in table.values() if p.pgrp == kafka}
        postmaster = _read_int(self.stack.postgres.data_dir / "postmaster.pid")
        if postmaster is not None:
            roles["postgresql"] = {p.pid for p in table.values() if postmaster in (p.pid, p.ppid)}
        return {role: pids for role, pids in roles.items() if pids}

    def service_pids(self) -> dict[str, set[int]]:
        """Service name -> pids of its process group."""
        service_names = {s.name for s in SERVICES}
        return {r: pids for r, pids in self.roles(proc_table()).items() if r in service_names}
