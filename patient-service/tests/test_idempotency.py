"""Idempotency-Key on POST /patients against real PostgreSQL: replay, conflicts, races, expiry."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token

from .conftest import Service, running_service, service_settings


def body() -> dict[str, str]:
    return {
        "name": "Retry Patient",
        "email": f"retry-{uuid.uuid4().hex[:12]}@example.com",
        "address": "1 Retry Road",
        "dateOfBirth": "1970-02-03",
    }


def caller(sub: str) -> dict[str, str]:
    token = issue_token(key=base64.b64decode(DEMO_JWT_SECRET), email=sub, role="STAFF", lifetime_seconds=600)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def service(module_database_url: str) -> AsyncIterator[Service]:
    settings = service_settings(
        module_database_url, outbox_relay_enabled=False, idempotency_key_ttl_seconds=2, purge_interval_seconds=0.2
    )
    async with running_service(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(module_database_url)
    yield engine
    await engine.dispose()


async def patients_with(db: AsyncEngine, email: str) -> int:
    async with db.connect() as connection:
        query = text("SELECT count(*) FROM patients WHERE lower(email) = lower(:e)")
        return int((await connection.execute(query, {"e": email})).scalar_one())


async def test_a_repeat_replays_the_first_answer(service: Service, db: AsyncEngine) -> None:
    sent = body()
    headers = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    first = await service.http.post("/patients", json=sent, headers=headers)
    again = await service.http.post("/patients", json=sent, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await patients_with(db, sent["email"]) == 1


async def test_the_same_key_with_another_body_is_422(service: Service) -> None:
    key = {"Idempotency-Key": f"mismatch-{uuid.uuid4()}"}
    assert (await service.http.post("/patients", json=body(), headers=key)).status_code == 201
    other = await service.http.post("/patients", json=body(), headers=key)
    assert other.status_code == 422
    assert set(other.json()) == {"message"}


async def test_keys_belong_to_their_actor(service: Service) -> None:
    key = f"shared-{uuid.uuid4()}"
    mine = await service.http.post("/patients", json=body(), headers={**caller("a@test"), "Idempotency-Key": key})
    theirs = await service.http.post("/patients", json=body(), headers={**caller("b@test"), "Idempotency-Key": key})
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


async def test_concurrent_repeats_create_once(service: Service, db: AsyncEngine) -> None:
    sent = body()
    headers = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(service.http.post("/patients", json=sent, headers=headers) for _ in range(8)))

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert await patients_with(db, sent["email"]) == 1


@pytest.mark.parametrize(
    "key", [b"", b"x" * 256, b"tab\there", "é".encode()], ids=["empty", "too-long", "control", "non-ascii"]
)
async def test_a_malformed_key_is_400(service: Service, key: bytes) -> None:
    response = await service.http.post("/patients", json=body(), headers={b"Idempotency-Key": key})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["message"]


async def test_a_refused_create_stores_no_key(service: Service) -> None:
    """A 400 rolls the key back with the create: fixing the request and retrying with the key works."""
    taken = body()
    assert (await service.http.post("/patients", json=taken)).status_code == 201
    headers = {"Idempotency-Key": f"refused-{uuid.uuid4()}"}
    assert (await service.http.post("/patients", json=taken, headers=headers)).status_code == 400
    assert (await service.http.post("/patients", json=taken, headers=headers)).status_code == 400  # not replayed


async def test_expired_keys_are_free_again_and_deleted(service: Service, db: AsyncEngine) -> None:
    sent = body()
    key = f"expiring-{uuid.uuid4()}"
    assert (await service.http.post("/patients", json=sent, headers={"Idempotency-Key": key})).status_code == 201

    async def stored() -> Any:
        async with db.connect() as connection:
            query = text("SELECT count(*) FROM idempotency_keys WHERE key = :k")
            return (await connection.execute(query, {"k": key})).scalar_one()

    assert await stored() == 1
    for _ in range(50):  # TTL 2 s, purge every 0.2 s
        await asyncio.sleep(0.1)
        if await stored() == 0:
            break
    assert await stored() == 0
    again = await service.http.post("/patients", json=sent, headers={"Idempotency-Key": key})
    assert again.status_code == 400  # executed anew: the email is taken now (no replay after expiry)
