"""Waiting for patient-service's outbox relays to catch up (its /health counts the pending rows)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .progress import log


def wait_for_relay(patient_url: str, what: str, *, timeout_seconds: float = 180.0) -> float:
    """Wait until patient-service's outbox has nothing pending (its /health says so); seconds waited."""
    started = time.monotonic()
    pending = -1
    while time.monotonic() - started < timeout_seconds:
        pending = asyncio.run(_pending(patient_url))
        if pending == 0:
            waited = time.monotonic() - started
            if waited > 1:
                log(f"{what}: outbox drained after {waited:.1f}s")
            return waited
        time.sleep(0.25)
    raise RuntimeError(f"{what}: the outbox still has {pending} pending rows after {timeout_seconds:.0f}s")


async def _pending(patient_url: str) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{patient_url}/health") as response,
    ):
        return int((await response.json())["checks"]["outbox"]["pending"])
