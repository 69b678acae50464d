"""A paced load: creates sent through the gateway at a fixed rate, each answer's arrival time noted."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp

from .patients import gateway_session, patient_body


async def paced_creates(gateway_url: str, token: str, rate: int, seconds: int) -> tuple[dict[str, float], int, float]:
    """(patient id -> wall time its 201 arrived, failures, achieved send rate)."""
    answered: dict[str, float] = {}
    failures = 0
    tag = uuid.uuid4().hex[:8]
    total = rate * seconds
    async with gateway_session(token, timeout_seconds=10, connections=0) as session:

        async def create(n: int) -> None:
            nonlocal failures
            body = patient_body(
                name=f"Lag Patient {n}",
                email=f"lag-{tag}-{n}@bench.example.com",
                address="1 Lag Lane",
                date_of_birth="1990-01-01",
            )
            try:
                async with session.post(f"{gateway_url}/api/patients", json=body) as response:
                    at = time.time()
                    if response.status == 201:
                        answered[str((await response.json())["id"])] = at
                    else:
                        failures += 1
            except (aiohttp.ClientError, TimeoutError):
                failures += 1

        start = time.monotonic()
        tasks = []
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(create(n)))
        last_sent = time.monotonic()
        await asyncio.gather(*tasks)
    achieved = (total - 1) / (last_sent - start) if total > 1 and last_sent > start else float(total)
    return answered, failures, achieved
