"""Prometheus metrics of the outbox: relay attempts and failures per destination, and the backlog
(pending rows, age of the oldest, parked rows) read from the database when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from prometheus_client import Counter, Gauge

from patient_service.outbox.models import Destination

RELAY_ATTEMPTS = Counter("outbox_relay_attempts", "Outbox rows the relay tried to deliver", ["destination"])
RELAY_FAILURES = Counter(
    "outbox_relay_failures", "Outbox deliveries that failed (retried later) or were parked", ["destination", "kind"]
)
BACKLOG = Gauge("outbox_pending_rows", "Outbox rows waiting for delivery")
OLDEST_PENDING = Gauge("outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox row (0: none)")
PARKED = Gauge("outbox_parked_rows", "Outbox rows parked as poison")

# Pre-bound children: the relay records every pass.
_attempts = {d.value: RELAY_ATTEMPTS.labels(d.value) for d in Destination}
_failed = {d.value: RELAY_FAILURES.labels(d.value, "failed") for d in Destination}
_parked = {d.value: RELAY_FAILURES.labels(d.value, "parked") for d in Destination}


def record_pass(destination: str, *, claimed: int, failed: int, parked: int) -> None:
    """Count one relay pass (claimed rows are the attempts)."""
    if claimed:
        _attempts[destination].inc(claimed)
    if failed:
        _failed[destination].inc(failed)
    if parked:
        _parked[destination].inc(parked)


def backlog_scrape(
    backlog: Callable[[Request], Awaitable[dict[str, Any] | None]],
) -> Callable[[Request], Awaitable[None]]:
    """A scrape hook setting the backlog gauges from `backlog` (the /health query: a few index probes)."""

    async def outbox_backlog(request: Request) -> None:
        values = await backlog(request)
        if values is None:  # database down: NaN rather than a stale figure
            values = {"pending": float("nan"), "oldestPendingSeconds": float("nan"), "parked": float("nan")}
        BACKLOG.set(values["pending"])
        OLDEST_PENDING.set(values["oldestPendingSeconds"])
        PARKED.set(values["parked"])

    return outbox_backlog
