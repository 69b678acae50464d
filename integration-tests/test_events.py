"""Lifecycle events on Kafka topic `patient`: one per create/update/delete, keyed by patient id, all fields set."""

from __future__ import annotations

import time
import uuid

import httpx
from pm_e2e import api, events


def assert_event(record: events.Record, *, patient: dict[str, str], event_type: str) -> None:
    event = record.event()
    assert record.key == patient["id"].encode()
    assert event.patientId == patient["id"]
    assert event.name == patient["name"]
    assert event.email == patient["email"]
    assert event.event_type == event_type
    uuid.UUID(event.event_id)
    occurred = event.occurred_at.seconds + event.occurred_at.nanos / 1e9
    assert abs(occurred - time.time()) < 300, f"occurred_at {occurred} is not about now"


async def test_create_publishes_patient_created(
    aclient: httpx.AsyncClient, auth: dict[str, str], kafka_bootstrap: str
) -> None:
    start = await events.end_offsets(kafka_bootstrap)

    created = await api.create_patient_async(aclient, auth, name="Événement Créé 🎉")

    found = await events.read_from(kafka_bootstrap, start, events.events_of(created["id"]), want=1, linger_seconds=2)
    assert len(found) >= 1, "no PATIENT_CREATED within 30s"
    assert_event(found[0], patient=created, event_type="PATIENT_CREATED")
    assert len({r.event().event_id for r in found}) == 1, "one change, one event id (duplicates share it)"


async def test_update_and_delete_publish_their_events_in_order(
    aclient: httpx.AsyncClient, auth: dict[str, str], kafka_bootstrap: str
) -> None:
    start = await events.end_offsets(kafka_bootstrap)
    created = await api.create_patient_async(aclient, auth)
    update = api.patient_body(name="Updated Name", email=api.unique_email("updated"))
    updated = (await aclient.put(f"/api/patients/{created['id']}", json=update, headers=auth)).json()
    assert (await aclient.delete(f"/api/patients/{created['id']}", headers=auth)).status_code == 204

    found = await events.read_from(kafka_bootstrap, start, events.events_of(created["id"]), want=3, linger_seconds=2)

    unique = list({r.event().event_id: r for r in found}.values())
    assert [r.event().event_type for r in unique] == ["PATIENT_CREATED", "PATIENT_UPDATED", "PATIENT_DELETED"]
    assert_event(unique[0], patient=created, event_type="PATIENT_CREATED")
    assert_event(unique[1], patient=updated, event_type="PATIENT_UPDATED")
    assert unique[2].event().patientId == created["id"]
    assert (unique[2].event().name, unique[2].event().email) == ("", ""), "PATIENT_DELETED carries the id only"
    assert unique[2].key == created["id"].encode()
    assert len({r.partition for r in found}) == 1, "one key, one partition: the order per patient holds"


async def test_refused_changes_publish_nothing(
    aclient: httpx.AsyncClient, auth: dict[str, str], kafka_bootstrap: str
) -> None:
    start = await events.end_offsets(kafka_bootstrap)
    created = await api.create_patient_async(aclient, auth)

    duplicate = api.patient_body(email=created["email"])
    assert (await aclient.post("/api/patients", json=duplicate, headers=auth)).status_code == 400
    assert (await aclient.put(f"/api/patients/{created['id']}", json={}, headers=auth)).status_code == 400
    unknown = f"/api/patients/{uuid.uuid4()}"
    assert (await aclient.put(unknown, json=api.patient_body(), headers=auth)).status_code == 404

    found = await events.read_from(kafka_bootstrap, start, events.events_of(created["id"]), want=99, timeout_seconds=8)
    assert {r.event().event_type for r in found} == {"PATIENT_CREATED"}
