"""What requests get when PostgreSQL drops its connections or restarts (the price of pool pre-ping off).

Runs against the `make up` stack (it stops and starts that stack's PostgreSQL; nothing else):

    uv run --no-sync python bench/restart_check.py

patient-service and analytics-service do not ping pooled connections before use (DATABASE_POOL_PRE_PING
false). Expected: a read that meets a dropped connection is retried once and answers 200; a write may get a
clean 503 (never a 500); the pools recover by themselves; analytics counts every patient created.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp

from devstack.cli import default_stack

# `python bench/restart_check.py` puts bench/ first on sys.path, so the package is `harness`; mypy, run from
# the repository root with explicit package bases, knows the same directory as `bench.harness`.
if TYPE_CHECKING:
    from bench.harness.database import connected, counted_at
    from bench.harness.endpoints import Endpoints
    from bench.harness.patients import patient_body
    from bench.harness.progress import log
else:
    from harness.database import connected, counted_at
    from harness.endpoints import Endpoints
    from harness.patients import patient_body
    from harness.progress import log

STACK = default_stack()
ENDPOINTS = Endpoints.of(STACK)
PATIENT = ENDPOINTS.patient
GATEWAY = ENDPOINTS.gateway


async def create(session: aiohttp.ClientSession, tag: str) -> tuple[int, str | None]:
    """POST one patient directly to patient-service; (status, id or None)."""
    body = patient_body(
        name="Restart Probe",
        email=f"restart-{tag}-{uuid.uuid4().hex[:10]}@bench.example.com",
        address="1 Restart Road",
        date_of_birth="1980-01-01",
    )
    try:
        async with session.post(f"{PATIENT}/patients", json=body) as response:
            payload = await response.json(content_type=None)
            return response.status, payload.get("id") if response.status == 201 else None
    except (aiohttp.ClientError, TimeoutError):
        return 0, None


async def get(session: aiohttp.ClientSession, patient_id: str) -> int:
    """GET one patient directly from patient-service; its status (0: no answer)."""
    try:
        async with session.get(f"{PATIENT}/patients/{patient_id}") as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def burst(session: aiohttp.ClientSession, ids: list[str], *, reads: int, writes: int) -> collections.Counter[str]:
    """Concurrent reads and writes; counts of 'GET 200', 'POST 503', ..."""
    tasks: list[Any] = [get(session, ids[n % len(ids)]) for n in range(reads)]
    tasks += [create(session, "burst") for _ in range(writes)]
    results = await asyncio.gather(*tasks)
    counts: collections.Counter[str] = collections.Counter()
    for n, result in enumerate(results):
        status = result if n < reads else result[0]
        counts[f"{'GET' if n < reads else 'POST'} {status}"] += 1
        if n >= reads and result[1]:
            ids.append(result[1])
    return counts


async def terminate_backends(database: str) -> int:
    """Close every server connection of one database (what a failover or an idle timeout does)."""
    async with connected(ENDPOINTS.database("postgres")) as connection:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(rows)


async def main() -> int:
    problems: list[str] = []
    created: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        for _ in range(20):
            status, patient_id = await create(session, "setup")
            if status != 201 or patient_id is None:
                raise SystemExit(f"setup: POST answered {status}; is the stack up (`make up`)?")
            created.append(patient_id)
        log(f"warm-up (fills the pools): {dict(await burst(session, created, reads=200, writes=20))}")

        # 1. Every connection of both services closed by the server, PostgreSQL itself stays up.
        dropped = await terminate_backends("patient_service") + await terminate_backends("analytics_service")
        log(f"terminated {dropped} server connections of patient_service and analytics_service")
        sequential = collections.Counter([await get(session, created[0]) for _ in range(5)])
        log(f"  5 sequential GETs right after: {dict(sequential)}")
        if set(sequential) != {200}:
            problems.append(f"GET after dropped connections: {dict(sequential)}")
        await terminate_backends("patient_service")
        status, patient_id = await create(session, "first-write")
        created.extend([patient_id] if patient_id else [])
        log(f"  a POST as the first request after another drop: {status} (a 503 is allowed here)")
        if status not in (201, 503):
            problems.append(f"first POST after a drop: {status}")
        await terminate_backends("patient_service")
        after_drop = await burst(session, created, reads=64, writes=16)
        log(f"  64 GETs + 16 POSTs at once after another drop: {dict(after_drop)}")

        # 2. PostgreSQL restarted (fast shutdown), requests sent during and after.
        started = time.monotonic()
        STACK.postgres.stop()
        down = await burst(session, created, reads=8, writes=4)
        STACK.postgres.start()
        log(f"PostgreSQL stopped and started in {time.monotonic() - started:.1f}s; while it was down: {dict(down)}")
        first = collections.Counter([await get(session, created[0]) for _ in range(5)])
        log(f"  5 sequential GETs after the restart: {dict(first)}")
        if set(first) != {200}:
            problems.append(f"GET after restart: {dict(first)}")
        after_restart = await burst(session, created, reads=64, writes=16)
        log(f"  64 GETs + 16 POSTs at once after the restart: {dict(after_restart)}")
        recovered = await burst(session, created, reads=200, writes=40)
        log(f"  then 200 GETs + 40 POSTs: {dict(recovered)}")
        for label, counts in (("down", down), ("after drop", after_drop), ("after restart", after_restart)):
            if any(key.endswith(" 500") or key.endswith(" 0") for key in counts):
                problems.append(f"{label}: a 500 or no answer: {dict(counts)}")
        if set(recovered) != {"GET 200", "POST 201"}:
            problems.append(f"pools did not recover: {dict(recovered)}")

        async with session.get(f"{GATEWAY}/health") as response:
            log(f"gateway /health: {response.status}")
        async with session.get(f"{PATIENT}/health") as response:
            log(f"patient-service /health: {response.status}")

    # 3. The consumer got through as well: every patient created above is counted.
    number = len(await counted_at(ENDPOINTS.database("analytics_service"), created, timeout_seconds=60))
    log(f"analytics counted {number} of the {len(created)} patients created")
    if number != len(created):
        problems.append(f"analytics counted {number}/{len(created)}")
    print("\nOK: no 500s, reads retried, pools recovered, every event counted" if not problems else "\nPROBLEMS:")
    for problem in problems:
        print(f"  - {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
