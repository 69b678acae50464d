"""analytics-service through the gateway and Kafka: exact counts per change, duplicates and poison records."""

from __future__ import annotations

import uuid

import httpx
from pm_e2e import api, events


async def test_summary_has_total_and_all_three_event_types(aclient: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = await api.summary(aclient, auth)

    assert body["totalEvents"] >= 0
    assert all(isinstance(body["eventsByType"][t], int) and body["eventsByType"][t] >= 0 for t in api.EVENT_TYPES)


async def test_a_create_counts_exactly_once(aclient: httpx.AsyncClient, auth: dict[str, str]) -> None:
    before = await api.quiet_counts(aclient, auth)

    await api.create_patient_async(aclient, auth)

    await api.wait_counts(aclient, auth, api.plus(before, PATIENT_CREATED=1))


async def test_several_creates_count_one_each(aclient: httpx.AsyncClient, auth: dict[str, str]) -> None:
    before = await api.quiet_counts(aclient, auth)

    for _ in range(3):
        await api.create_patient_async(aclient, auth)

    await api.wait_counts(aclient, auth, api.plus(before, PATIENT_CREATED=3))


async def test_update_and_delete_count_once_each(aclient: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await api.create_patient_async(aclient, auth)
    before = await api.quiet_counts(aclient, auth)

    url = f"/api/patients/{created['id']}"
    assert (await aclient.put(url, json=api.patient_body(), headers=auth)).status_code == 200
    assert (await aclient.delete(url, headers=auth)).status_code == 204

    await api.wait_counts(aclient, auth, api.plus(before, PATIENT_UPDATED=1, PATIENT_DELETED=1))


async def test_refused_requests_count_nothing(aclient: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await api.create_patient_async(aclient, auth)
    before = await api.quiet_counts(aclient, auth)

    duplicate = api.patient_body(email=created["email"])
    assert (await aclient.post("/api/patients", json=duplicate, headers=auth)).status_code == 400
    assert (await aclient.post("/api/patients", json={}, headers=auth)).status_code == 400
    assert (await aclient.delete(f"/api/patients/{uuid.uuid4()}", headers=auth)).status_code == 404

    await api.wait_counts(aclient, auth, before, timeout_seconds=0, settle_seconds=4)


async def test_a_redelivered_event_is_not_counted_again(
    aclient: httpx.AsyncClient, auth: dict[str, str], kafka_bootstrap: str
) -> None:
    """At-least-once delivery: the same record published twice (same event id) counts once."""
    before = await api.quiet_counts(aclient, auth)
    start = await events.end_offsets(kafka_bootstrap)
    created = await api.create_patient_async(aclient, auth)
    counted = await api.wait_counts(aclient, auth, api.plus(before, PATIENT_CREATED=1))
    found = await events.read_from(kafka_bootstrap, start, events.events_of(created["id"]), want=1)
    assert found, "no PATIENT_CREATED within 30s"

    partition, offset = await events.produce(kafka_bootstrap, events.TOPIC, key=found[0].key, value=found[0].value)
    await events.wait_consumed(kafka_bootstrap, group=events.ANALYTICS_GROUP, partition=partition, offset=offset)

    await api.wait_counts(aclient, auth, counted, timeout_seconds=0, settle_seconds=2)


async def test_a_poison_record_goes_to_the_dlt_and_consumption_goes_on(
    aclient: httpx.AsyncClient, auth: dict[str, str], kafka_bootstrap: str
) -> None:
    before = await api.quiet_counts(aclient, auth)
    dlt_start = await events.end_offsets(kafka_bootstrap, events.DLT_TOPIC)
    key = f"poison-{uuid.uuid4()}".encode()
    garbage = b"\xff\x00 this is not a PatientEvent \x8f" + uuid.uuid4().bytes

    partition, offset = await events.produce(kafka_bootstrap, events.TOPIC, key=key, value=garbage)
    await events.wait_consumed(kafka_bootstrap, group=events.ANALYTICS_GROUP, partition=partition, offset=offset)

    parked = await events.read_from(
        kafka_bootstrap, dlt_start, lambda r: r.key == key or r.value == garbage, want=1, topic=events.DLT_TOPIC
    )
    assert parked, "the poison record did not reach patient.DLT within 30s"
    assert parked[0].value == garbage
    await api.create_patient_async(aclient, auth)
    await api.wait_counts(aclient, auth, api.plus(before, PATIENT_CREATED=1))
