"""The audit trail against real PostgreSQL: what each access records, append-only, and GET /audit."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token

from .conftest import Service, running_service, service_settings

KEY = base64.b64decode(DEMO_JWT_SECRET)


def bearer(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(key=KEY, email=sub, role=role, lifetime_seconds=600)}


@pytest.fixture(scope="module")
async def service(module_database_url: str) -> AsyncIterator[Service]:
    """A service whose audit writer flushes every 50 ms (the production code path, shorter interval)."""
    settings = service_settings(module_database_url, outbox_relay_enabled=False, audit_flush_interval_seconds=0.05)
    async with running_service(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(module_database_url)
    yield engine
    await engine.dispose()


async def trail(service: Service, **params: Any) -> list[dict[str, Any]]:
    """GET /audit as an ADMIN after the writer's next flush."""
    await service.app.state.audit_writer.flush()
    response = await service.http.get("/audit", params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def test_every_access_is_recorded_with_who_what_and_outcome(service: Service) -> None:
    actor = f"staff-{uuid.uuid4().hex[:8]}@test"
    staff = bearer("STAFF", actor)
    created = (await service.http.post("/patients", headers=staff, json=_body())).json()
    patient_id = created["id"]
    await service.http.get(f"/patients/{patient_id}", headers=staff)
    listed = (await service.http.get("/patients", headers=staff)).json()
    await service.http.put(f"/patients/{patient_id}", headers=staff, json=_body())
    await service.http.delete(f"/patients/{patient_id}", headers=staff)  # STAFF may not: 403
    await service.http.delete(f"/patients/{patient_id}", headers=bearer("ADMIN", actor))
    await service.http.get(f"/patients/{patient_id}", headers=staff)  # gone: 404
    await service.http.get(f"/patients/{patient_id}", headers={"Authorization": ""})  # no token: 401

    events = await trail(service, actor=actor)
    seen = [(e["action"], e["role"], e["status"], e["patientId"], e["rows"]) for e in reversed(events)]
    assert seen == [
        ("CREATE", "STAFF", 201, patient_id, None),
        ("READ", "STAFF", 200, patient_id, None),
        ("LIST", "STAFF", 200, None, len(listed)),
        ("UPDATE", "STAFF", 200, patient_id, None),
        ("DENIED", "STAFF", 403, patient_id, None),
        ("DELETE", "ADMIN", 204, patient_id, None),
        ("DENIED", "STAFF", 404, patient_id, None),
    ]
    anonymous = [e for e in await trail(service, patientId=patient_id) if e["actor"] is None]
    assert [(e["action"], e["status"]) for e in anonymous] == [("DENIED", 401)]
    assert all(e["requestId"] for e in events)
    assert {key for e in events for key in e} == {
        "at",
        "actor",
        "role",
        "action",
        "patientId",
        "rows",
        "status",
        "requestId",
    }


async def test_records_carry_no_patient_data(service: Service, db: AsyncEngine) -> None:
    marker = f"Marker{uuid.uuid4().hex[:10]}"
    created = (await service.http.post("/patients", json=_body(name=marker, email=f"{marker}@example.com"))).json()
    await service.http.get(f"/patients/{created['id']}")
    await service.app.state.audit_writer.flush()
    async with db.connect() as connection:
        dumped = (
            await connection.execute(text("SELECT string_agg(audit_events::text, ' ') FROM audit_events"))
        ).scalar()
    assert marker.lower() not in str(dumped).lower()


async def test_the_request_id_of_the_caller_is_kept(service: Service) -> None:
    created = (await service.http.post("/patients", json=_body(), headers={"X-Request-ID": "req-audit-1"})).json()
    events = await trail(service, patientId=created["id"])
    assert [(e["action"], e["requestId"]) for e in events] == [("CREATE", "req-audit-1")]


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET status = 200", "DELETE FROM audit_events"])
async def test_the_trail_is_append_only(service: Service, db: AsyncEngine, statement: str) -> None:
    await service.http.get("/patients")
    await service.app.state.audit_writer.flush()
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin() as connection:
            await connection.execute(text(statement))


async def test_only_an_admin_reads_the_trail(service: Service) -> None:
    for role in ("STAFF", "ANALYST", "PATIENT"):
        response = await service.http.get("/audit", headers=bearer(role, "someone@test"))
        assert response.status_code == 403
    assert (await service.http.get("/audit", headers={"Authorization": ""})).status_code == 401


async def test_filters_limit_and_cursor(service: Service) -> None:
    actor = f"pager-{uuid.uuid4().hex[:8]}@test"
    headers = bearer("ADMIN", actor)
    created = (await service.http.post("/patients", headers=headers, json=_body())).json()
    for _ in range(4):
        await service.http.get(f"/patients/{created['id']}", headers=headers)
    await service.app.state.audit_writer.flush()

    first = (await service.http.get("/audit", params={"actor": actor, "limit": 2})).json()
    second = (
        await service.http.get("/audit", params={"actor": actor, "limit": 2, "cursor": first["nextCursor"]})
    ).json()
    third = (
        await service.http.get("/audit", params={"actor": actor, "limit": 2, "cursor": second["nextCursor"]})
    ).json()
    pages = [first["events"], second["events"], third["events"]]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert third["nextCursor"] is None
    everything = [e for page in pages for e in page]
    assert [e["action"] for e in everything] == ["READ"] * 4 + ["CREATE"]
    assert [e["at"] for e in everything] == sorted((e["at"] for e in everything), reverse=True)
    creates = (await service.http.get("/audit", params={"actor": actor, "action": "CREATE"})).json()["events"]
    assert len(creates) == 1
    since = creates[0]["at"]
    assert len((await service.http.get("/audit", params={"actor": actor, "since": since})).json()["events"]) == 5
    assert (await service.http.get("/audit", params={"actor": actor, "until": since})).json()["events"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"patientId": "not-a-uuid"},
        {"action": "PEEK"},
        {"since": "yesterday"},
        {"cursor": "%%%"},
    ],
)
async def test_bad_parameters_are_400(service: Service, params: dict[str, str]) -> None:
    response = await service.http.get("/audit", params=params)
    assert response.status_code == 400, response.text
    assert "message" in response.json()


async def test_a_clean_shutdown_writes_every_queued_record(module_database_url: str, db: AsyncEngine) -> None:
    """Reads are batched; stopping the service flushes what waits (the README says what a crash can lose)."""
    actor = f"shutdown-{uuid.uuid4().hex[:8]}@test"
    settings = service_settings(module_database_url, outbox_relay_enabled=False, audit_flush_interval_seconds=60)
    async with running_service(settings) as running:
        for _ in range(3):
            assert (await running.http.get("/patients", headers=bearer("STAFF", actor))).status_code == 200
    async with db.connect() as connection:
        count = (
            await connection.execute(text("SELECT count(*) FROM audit_events WHERE actor = :a"), {"a": actor})
        ).scalar_one()
    assert count == 3


async def test_reads_can_be_left_out_for_measuring_the_cost(module_database_url: str, db: AsyncEngine) -> None:
    actor = f"noreads-{uuid.uuid4().hex[:8]}@test"
    settings = service_settings(module_database_url, outbox_relay_enabled=False, audit_reads=False)
    async with running_service(settings) as running:
        headers = bearer("STAFF", actor)
        await running.http.get("/patients", headers=headers)
        created = (await running.http.post("/patients", headers=headers, json=_body())).json()
        await running.http.get(f"/patients/{uuid.uuid4()}", headers=headers)  # 404: still recorded
        assert created["id"]
    async with db.connect() as connection:
        actions = (
            (
                await connection.execute(
                    text("SELECT action FROM audit_events WHERE actor = :a ORDER BY id"), {"a": actor}
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["CREATE", "DENIED"]


def _body(**overrides: str) -> dict[str, str]:
    return {
        "name": "Audit Patient",
        "email": f"audit-{uuid.uuid4().hex[:12]}@example.com",
        "address": "1 Audit Street",
        "dateOfBirth": "1980-01-01",
        **overrides,
    }


async def test_the_gateway_hands_over_its_edge_refusals(service: Service) -> None:
    """Only a SERVICE token may add refusals; they join the trail as DENIED records."""
    patient_id = str(uuid.uuid4())
    batch = {
        "events": [
            {"at": "2026-01-02T03:04:05Z", "actor": None, "patientId": patient_id, "status": 401, "requestId": "e1"},
            {
                "at": "2026-01-02T03:04:06Z",
                "actor": "x@test",
                "role": "ANALYST",
                "patientId": patient_id,
                "status": 403,
            },
        ]
    }
    assert (await service.http.post("/audit/refusals", json=batch, headers=bearer("ADMIN", "a@t"))).status_code == 403
    accepted = await service.http.post("/audit/refusals", json=batch, headers=bearer("SERVICE", "api-gateway"))
    assert accepted.status_code == 202
    events = await trail(service, patientId=patient_id)
    assert [(e["action"], e["status"], e["actor"]) for e in events] == [
        ("DENIED", 403, "x@test"),
        ("DENIED", 401, None),
    ]
    bad = {"events": [{"at": "2026-01-02T03:04:05Z", "status": 200}]}
    assert (
        await service.http.post("/audit/refusals", json=bad, headers=bearer("SERVICE", "api-gateway"))
    ).status_code == 400


async def test_an_insane_request_id_is_replaced_not_stored(service: Service) -> None:
    """Only a sane X-Request-ID (1-128 of [A-Za-z0-9._-]) is kept; anything else gets a new id (one helper
    for every layer), so a record always fits its column and never carries what a client smuggled in."""
    created = (await service.http.post("/patients", json=_body(), headers={"X-Request-ID": "x" * 500})).json()
    events = await trail(service, patientId=created["id"])
    assert len(events) == 1
    assert events[0]["requestId"] != "x" * 500
    assert len(events[0]["requestId"]) == 32
