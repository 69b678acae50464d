"""Resident memory of each service: RSS and PSS summed over its processes, from /proc/<pid>/smaps_rollup."""

from __future__ import annotations

from pathlib import Path

from .figures import MemoryFigures, ServiceMemory
from .processes import StackProcesses
from .progress import log


def memory_by_service(processes: StackProcesses) -> dict[str, ServiceMemory]:
    """Per service: RSS and PSS (MiB) summed over its processes, and how many processes it has."""
    result: dict[str, ServiceMemory] = {}
    for name, pids in processes.service_pids().items():
        rss = pss = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                continue
        result[name] = {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1), "processes": len(pids)}
    return result


def measure_memory(processes: StackProcesses, key: str) -> MemoryFigures | None:
    """Resident memory of each service now (the caller makes sure the stack is idle); None: not our stack."""
    services = memory_by_service(processes)
    if not services:
        log("memory: skipped (no pid files of a `make up` stack)")
        return None
    figures: MemoryFigures = {
        "services": services,
        "total_rss_mib": round(sum(s["rss_mib"] for s in services.values()), 1),
        "total_pss_mib": round(sum(s["pss_mib"] for s in services.values()), 1),
    }
    log(f"memory ({key}): {figures['total_rss_mib']:.0f} MiB RSS in total")
    return figures
