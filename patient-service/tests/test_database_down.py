"""Without PostgreSQL: /health is 503 naming the database, requests get 503 (never a bare 500)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from devstack.process import free_port
from patient_service.outbox.relay import backoff_seconds

from .conftest import running_service, service_settings


@pytest.mark.fault
async def test_database_unreachable() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    async with running_service(service_settings(url)) as service:
        health = await service.http.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "DOWN"
        assert health.json()["checks"]["database"] == "DOWN"
        for method, path in (
            ("GET", "/patients"),
            ("GET", f"/patients/{uuid.uuid4()}"),
            ("DELETE", f"/patients/{uuid.uuid4()}"),
        ):
            response = await service.http.request(method, path)
            assert response.status_code == 503, (method, path, response.text)
            assert response.json() == {"message": "Service temporarily unavailable"}
        # Bad input is still answered without touching the database.
        assert (await service.http.post("/patients", json={})).status_code == 400


def test_backoff_is_exponential_capped_and_jittered() -> None:
    delays = [backoff_seconds(attempts, initial_seconds=0.5, max_seconds=30) for attempts in range(12)]
    assert 0.4 <= delays[0] <= 0.6
    assert 3.2 <= delays[3] <= 4.8
    assert all(d <= 36 for d in delays)
    assert 24 <= delays[-1] <= 36
    assert backoff_seconds(10_000, initial_seconds=0.5, max_seconds=30) <= 36  # no overflow for very old rows


@pytest.mark.fault
async def test_reads_survive_dropped_connections(migrated_url: str) -> None:
    """Reads run on the driver (pm_common.database.DriverRead): a connection PostgreSQL closed is invalidated
    and the read goes on with another connection, so no caller sees an error."""
    async with running_service(service_settings(migrated_url, outbox_relay_enabled=False)) as service:
        created = await service.create()
        engine = service.app.state.engine
        for _ in range(5):
            # Several connections in the pool (concurrent reads each check one out), then all of them killed.
            reads = await asyncio.gather(*(service.http.get(f"/patients/{created['id']}") for _ in range(8)))
            assert {read.status_code for read in reads} == {200}
            async with engine.connect() as connection:
                terminated = await connection.scalar(_TERMINATE_THE_OTHERS)
            assert terminated >= 1
            one = await service.http.get(f"/patients/{created['id']}")
            assert one.status_code == 200, one.text
            assert one.json()["id"] == created["id"]
            async with engine.connect() as connection:
                await connection.execute(_TERMINATE_THE_OTHERS)
            listed = await service.http.get("/patients", params={"size": 5})
            assert listed.status_code == 200, listed.text
            assert listed.headers["X-Total-Count"] != "0"


_TERMINATE_THE_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
