"""Kafka stopped while patients are created: every create succeeds and every event arrives afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.kafka import KafkaBroker

from .conftest import BillingServer, EventLog, outbox_rows, running_service, service_settings, wait_until

CREATES = 12


@pytest.mark.fault
async def test_events_created_while_kafka_is_down_are_delivered_after_it_returns(
    migrated_url: str, engine: AsyncEngine, kafka: KafkaBroker, billing: BillingServer, event_log: EventLog
) -> None:
    settings = service_settings(
        migrated_url, kafka_bootstrap_servers=kafka.bootstrap, billing_service_grpc_port=billing.port
    )
    async with running_service(settings) as service:
        before = await service.create()

        async def delivered(count: int) -> bool:
            rows = await outbox_rows(engine, destination="patient-event")
            return len(rows) == count and all(r.state == "SENT" for r in rows)

        await wait_until(lambda: delivered(1))

        await asyncio.to_thread(kafka.stop)
        created = [await service.create() for _ in range(CREATES)]  # every one 201 with Kafka down

        async def failed_at_least_once() -> bool:
            rows = await outbox_rows(engine, destination="patient-event")
            return any(r.attempts >= 1 for r in rows) and all(r.state == "PENDING" for r in rows[1:])

        await wait_until(failed_at_least_once, timeout_seconds=30)
        health = await service.http.get("/health")
        assert health.status_code == 200  # Kafka is information, not a reason to be taken out of service
        assert health.json()["checks"]["outbox"]["pending"] == CREATES
        assert health.json()["checks"]["kafka"] == "FAILING"

        await asyncio.to_thread(kafka.start)
        await wait_until(lambda: delivered(CREATES + 1), timeout_seconds=60)

    rows = await outbox_rows(engine, destination="patient-event")
    event_log.keys |= {p["id"] for p in [before, *created]}
    expected = {str(r.event_id) for r in rows}
    await event_log.collect(lambda events: expected <= {e.event_id for _, e in events}, timeout_seconds=30)
    seen = Counter(e.event_id for _, e in event_log.events)
    assert set(seen) == expected  # none missing, nothing foreign
    assert {e.patientId for _, e in event_log.events} == set(event_log.keys)
    assert all(e.event_type == "PATIENT_CREATED" for _, e in event_log.events)
    # At least once: a repeat is allowed (consumers deduplicate on event_id); report how many there were.
    print(f"\nevents: {len(expected)} distinct, {sum(seen.values()) - len(seen)} repeated deliveries")
