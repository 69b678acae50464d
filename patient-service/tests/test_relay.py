"""The relay against real PostgreSQL and Kafka: SKIP LOCKED across relays, per-patient order, poison rows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.kafka import KafkaBroker
from patient_service.outbox.events import EventType, patient_event_row
from patient_service.outbox.kafka import KafkaPublisher
from patient_service.outbox.models import Destination, outbox
from patient_service.outbox.relay import Delivery, OutboxRelay, OutboxRow
from patient_service.outbox.replay import requeue_parked

from .conftest import EventLog, event_ids, outbox_rows, wait_until


class RecordingPublisher:
    """The real KafkaPublisher, plus a record of which event ids this relay handed to it."""

    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.handed: list[uuid.UUID] = []

    @property
    def destination(self) -> Destination:
        return self.inner.destination

    @property
    def ready(self) -> bool:
        return self.inner.ready

    async def publish(self, rows: Sequence[OutboxRow]) -> Delivery:
        self.handed.extend(row.event_id for row in rows)
        return await self.inner.publish(rows)


async def started(publisher: KafkaPublisher) -> None:
    """Start the publisher and wait until its producer is connected."""
    publisher.start()

    async def ready() -> bool:
        return publisher.ready

    await wait_until(ready, timeout_seconds=30)


@pytest.fixture
async def publisher(kafka: KafkaBroker) -> AsyncIterator[KafkaPublisher]:
    """A started KafkaPublisher on the test stack's broker."""
    publisher = KafkaPublisher(
        bootstrap_servers=kafka.bootstrap, topic="patient", send_timeout_seconds=10, client_id="relay-test"
    )
    await started(publisher)
    try:
        yield publisher
    finally:
        await publisher.close()


def event_row(patient_id: uuid.UUID, event_type: EventType = EventType.PATIENT_CREATED) -> dict[str, Any]:
    patient = {"id": patient_id, "name": "Relay Test", "email": f"{patient_id}@example.com"}
    return patient_event_row(event_type=event_type, patient=patient, occurred_at=datetime.now(UTC))


async def insert_rows(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(outbox), rows)


async def drain(relay: OutboxRelay) -> None:
    while (await relay.drain_once()).claimed:
        pass


async def test_two_relays_never_send_a_row_twice(
    migrated_url: str, engine: AsyncEngine, kafka: KafkaBroker, event_log: EventLog
) -> None:
    patients = [uuid.uuid4() for _ in range(300)]
    await insert_rows(engine, [event_row(p) for p in patients])
    engines = [create_async_engine(migrated_url) for _ in range(2)]
    publishers = [
        RecordingPublisher(
            KafkaPublisher(
                bootstrap_servers=kafka.bootstrap, topic="patient", send_timeout_seconds=10, client_id=f"r{i}"
            )
        )
        for i in range(2)
    ]
    try:
        for p in publishers:
            await started(p.inner)
        relays = [OutboxRelay(engine=e, publisher=p, batch_size=10) for e, p in zip(engines, publishers, strict=True)]
        await asyncio.gather(*(drain(relay) for relay in relays))
    finally:
        for p in publishers:
            await p.inner.close()
        for e in engines:
            await e.dispose()

    first, second = (set(p.handed) for p in publishers)
    assert len(publishers[0].handed) == len(first)
    assert len(publishers[1].handed) == len(second)
    assert first, "both relays should have taken part"
    assert second, "both relays should have taken part"
    assert not first & second
    rows = await outbox_rows(engine)
    assert first | second == {row.event_id for row in rows}
    assert {row.state for row in rows} == {"SENT"}

    event_log.keys |= {str(p) for p in patients}
    await event_log.collect(lambda events: len(events) >= len(rows))
    published = event_ids(event_log.events)
    assert sorted(published) == sorted(str(row.event_id) for row in rows)  # each exactly once


async def test_an_older_pending_row_holds_back_newer_rows_of_the_same_patient(
    engine: AsyncEngine, publisher: KafkaPublisher
) -> None:
    patient, other = uuid.uuid4(), uuid.uuid4()
    created, updated = event_row(patient), event_row(patient, EventType.PATIENT_UPDATED)
    await insert_rows(engine, [created, updated, event_row(other)])
    async with engine.begin() as connection:  # the oldest row is backing off after a failure
        await connection.execute(
            text("UPDATE outbox SET next_attempt_at = now() + interval '1 hour', attempts = 3 WHERE event_id = :e"),
            {"e": created["event_id"]},
        )
    relay = OutboxRelay(engine=engine, publisher=publisher)
    assert (await relay.drain_once()).sent == 1  # only the other patient's row
    states = {row.event_id: row.state for row in await outbox_rows(engine)}
    assert (states[created["event_id"]], states[updated["event_id"]]) == ("PENDING", "PENDING")

    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE outbox SET next_attempt_at = now() WHERE event_id = :e"), {"e": created["event_id"]}
        )
    assert (await relay.drain_once()).sent == 1  # one row per patient per pass, oldest first
    states = {row.event_id: row.state for row in await outbox_rows(engine)}
    assert (states[created["event_id"]], states[updated["event_id"]]) == ("SENT", "PENDING")
    assert (await relay.drain_once()).sent == 1
    rows = await outbox_rows(engine)
    assert {row.state for row in rows} == {"SENT"}
    sent_order = sorted((r for r in rows if r.aggregate_id == patient), key=lambda r: r.sent_at)
    assert [r.event_id for r in sent_order] == [created["event_id"], updated["event_id"]]


async def test_a_poison_row_is_parked_and_can_be_requeued(
    migrated_url: str, engine: AsyncEngine, publisher: KafkaPublisher
) -> None:
    poison = event_row(uuid.uuid4())
    poison["payload"] = b"x" * (2 * 1024 * 1024)  # over the producer's max request size: can never be sent
    healthy = [event_row(uuid.uuid4()) for _ in range(3)]
    await insert_rows(engine, [poison, *healthy])
    relay = OutboxRelay(engine=engine, publisher=publisher)
    result = await relay.drain_once()
    assert (result.claimed, result.sent, result.parked, result.failed) == (4, 3, 1, 0)
    rows = {row.event_id: row for row in await outbox_rows(engine)}
    assert rows[poison["event_id"]].state == "PARKED"
    assert rows[poison["event_id"]].last_error == "MessageSizeTooLargeError"
    assert all(rows[r["event_id"]].state == "SENT" for r in healthy)
    assert (await relay.drain_once()).claimed == 0  # parked rows are left alone

    # Replay: by function...
    assert await requeue_parked(engine, destination=Destination.PATIENT_EVENT) == 1
    requeued = {row.event_id: row for row in await outbox_rows(engine)}[poison["event_id"]]
    assert (requeued.state, requeued.attempts) == ("PENDING", 0)
    assert (await relay.drain_once()).parked == 1  # still poison
    # ...and by the documented command.
    env = {**os.environ, "DATABASE_URL": migrated_url, "ENVIRONMENT": "test"}
    completed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "patient_service.outbox.replay", str(poison["event_id"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "re-queued 1 parked outbox row(s)" in completed.stdout
    assert {row.event_id: row.state for row in await outbox_rows(engine)}[poison["event_id"]] == "PENDING"
