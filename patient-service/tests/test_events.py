"""Create, update and delete each put exactly one PatientEvent on topic `patient` (real Kafka)."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.kafka import KafkaBroker

from .conftest import BillingServer, EventLog, event_ids, outbox_rows, running_service, service_settings, wait_until


async def test_create_update_delete_events(
    migrated_url: str, engine: AsyncEngine, kafka: KafkaBroker, billing: BillingServer, event_log: EventLog
) -> None:
    settings = service_settings(
        migrated_url, kafka_bootstrap_servers=kafka.bootstrap, billing_service_grpc_port=billing.port
    )
    async with running_service(settings) as service:
        first = await service.create(name="Eve Event", email="eve.event@example.com")
        second = await service.create()
        updated = await service.http.put(
            f"/patients/{first['id']}",
            json={
                "name": "Eve Renamed",
                "email": "eve.renamed@example.com",
                "address": "2 B",
                "dateOfBirth": "1980-02-02",
            },
        )
        assert updated.status_code == 200
        assert (await service.http.delete(f"/patients/{first['id']}")).status_code == 204
        event_log.keys |= {first["id"], second["id"]}
        await event_log.collect(lambda events: len(events) >= 4)

        async def all_sent() -> bool:
            return all(row.state == "SENT" for row in await outbox_rows(engine))

        await wait_until(all_sent)
        health = (await service.http.get("/health")).json()["checks"]
        assert health["kafka"] == "UP"
        assert health["outbox"]["pending"] == 0

    by_key: dict[str, list[tuple[str, str, str, str]]] = {}
    for key, event in event_log.events:
        by_key.setdefault(key, []).append((event.patientId, event.event_type, event.name, event.email))
    # Per patient, in order (one key -> one partition): exactly one event per change.
    assert by_key[first["id"]] == [
        (first["id"], "PATIENT_CREATED", "Eve Event", "eve.event@example.com"),
        (first["id"], "PATIENT_UPDATED", "Eve Renamed", "eve.renamed@example.com"),
        (first["id"], "PATIENT_DELETED", "", ""),  # the id only
    ]
    assert by_key[second["id"]] == [(second["id"], "PATIENT_CREATED", second["name"], second["email"])]

    rows = [row for row in await outbox_rows(engine, destination="patient-event")]
    assert sorted(event_ids(event_log.events)) == sorted(str(row.event_id) for row in rows)
    for (_, event), row in zip(
        sorted(event_log.events, key=lambda e: e[1].event_id), sorted(rows, key=lambda r: str(r.event_id)), strict=True
    ):
        assert event.occurred_at.ToDatetime(tzinfo=UTC) == row.created_at
        assert row.sent_at is not None
        assert row.sent_at >= row.created_at
        assert row.attempts == 0
        assert row.payload == b"", "a delivered row keeps no copy of what it carried"


@pytest.mark.fault
async def test_kafka_unreachable_at_start_still_serves_and_keeps_events(migrated_url: str, engine: AsyncEngine) -> None:
    # service_settings points Kafka at a port where nothing listens.
    async with running_service(service_settings(migrated_url)) as service:
        created = await service.create()
        health = await service.http.get("/health")
        assert health.status_code == 200
        checks = health.json()["checks"]
        assert checks["kafka"] == "STARTING"
        assert checks["database"] == "UP"
        rows = await outbox_rows(engine, destination="patient-event")
        assert [(str(r.aggregate_id), r.state) for r in rows] == [(created["id"], "PENDING")]
        assert checks["outbox"]["pending"] >= 1


async def test_a_create_writes_its_outbox_rows_and_record_or_nothing(migrated_url: str, engine: AsyncEngine) -> None:
    # One statement writes the patient, both outbox rows and the CREATE record: a taken email writes none.
    async with running_service(service_settings(migrated_url, outbox_relay_enabled=False)) as service:
        created = await service.create(email="once@example.com")
        refused = await service.http.post(
            "/patients",
            json={"name": "Twice", "email": "ONCE@example.com", "address": "1 A", "dateOfBirth": "1990-01-01"},
        )
        assert refused.status_code == 400
    rows = await outbox_rows(engine)
    assert [(str(row.aggregate_id), row.event_type) for row in rows] == [
        (created["id"], "PATIENT_CREATED"),
        (created["id"], "BILLING_ACCOUNT_REQUESTED"),
    ]
    async with engine.connect() as connection:
        records = (await connection.execute(text("SELECT action, patient_id, status FROM audit_events"))).all()
        patient = (await connection.execute(text("SELECT created_at FROM patients"))).one()
    assert [(action, str(patient_id), status) for action, patient_id, status in records] == [
        ("CREATE", created["id"], 201)
    ]
    assert {row.created_at for row in rows} == {patient.created_at}
