"""Start-up time: seconds from `make up` to every service healthy, with the infrastructure running and stopped."""

from __future__ import annotations

import statistics
import subprocess
import time

from devstack.stack import Stack

from .figures import StartupFigures
from .paths import ROOT
from .progress import log


def measure_startup(stack: Stack | None, repeat: int) -> StartupFigures | None:
    """Seconds from `make up` to every service healthy: with PostgreSQL and Kafka running, and stopped."""
    if stack is None:
        log("start-up: skipped (not the `make up` stack)")
        return None
    services_only: list[float] = []
    cold: list[float] = []
    for round_number in range(1, repeat + 1):
        log(f"start-up, round {round_number}/{repeat}: services stopped, PostgreSQL and Kafka running")
        for service in stack.available():
            stack.stop_service(service)
        services_only.append(_time_make_up())
        log(f"  make up: {services_only[-1]:.1f}s")
        log(f"start-up, round {round_number}/{repeat}: after `make down` (PostgreSQL and Kafka provisioned)")
        subprocess.run(["make", "-s", "down"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        cold.append(_time_make_up())
        log(f"  make up: {cold[-1]:.1f}s")
    return {
        "services_only_seconds": round(statistics.median(services_only), 2),
        "from_stopped_seconds": round(statistics.median(cold), 2),
        "each_services_only_seconds": [round(s, 2) for s in services_only],
        "each_from_stopped_seconds": [round(s, 2) for s in cold],
    }


def _time_make_up() -> float:
    started = time.monotonic()
    subprocess.run(["make", "-s", "up"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started
