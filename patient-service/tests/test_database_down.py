"""Without PostgreSQL: /health is 503 naming the database, requests get 503 (never a bare 500)."""

from __future__ import annotations

import uuid

import pytest

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
