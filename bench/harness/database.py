"""The services' databases: one connection per `async with`, and what analytics-service has counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database at `url`, closed on the way out."""
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def counted_at(analytics_db: str, patient_ids: list[str], timeout_seconds: float) -> dict[str, float]:
    """Patient id -> epoch seconds analytics counted its PATIENT_CREATED event; waits up to `timeout_seconds`."""
    async with connected(analytics_db) as connection:
        deadline = time.monotonic() + timeout_seconds
        while True:
            rows = await connection.fetch(
                "SELECT patient_id, extract(epoch FROM processed_at)::float8 AS at FROM processed_events "
                "WHERE event_type = 'PATIENT_CREATED' AND patient_id = ANY($1::text[])",
                patient_ids,
            )
            if len(rows) >= len(patient_ids) or time.monotonic() > deadline:
                return {str(r["patient_id"]): float(r["at"]) for r in rows}
            await asyncio.sleep(0.5)
