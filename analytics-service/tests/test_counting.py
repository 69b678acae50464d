"""Counting patient events from a real Kafka topic into a real database, each event once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from analytics_service.config import Settings
from devstack.kafka import KafkaBroker

from .conftest import Topics, counts, patient_event, read_all, running_analytics

SettingsFactory = Callable[..., Awaitable[Settings]]


async def send(
    producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes | None, **kwargs: object
) -> None:
    await producer.send_and_wait(topic, value=value, key=key, **kwargs)


async def test_counts_events_by_type_including_those_sent_before_start(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics
) -> None:
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    # Published before the service ever ran: a new group starts from the earliest offset.
    for i in range(3):
        await send(producer, topics.name, *patient_event("PATIENT_CREATED", occurred_at=base + timedelta(minutes=i)))
    async with running_analytics(await analytics_factory()) as analytics:
        await send(producer, topics.name, *patient_event("PATIENT_UPDATED", occurred_at=base + timedelta(hours=1)))
        await send(producer, topics.name, *patient_event("PATIENT_UPDATED", occurred_at=base))
        await send(producer, topics.name, *patient_event("PATIENT_DELETED", occurred_at=base))
        summary = await analytics.wait_for(lambda s: s["totalEvents"] == 6)
        assert summary == {
            "totalEvents": 6,
            "eventsByType": counts(created=3, updated=2, deleted=1),
            "invalidEvents": 0,
            "lastEventAt": "2025-03-01T13:00:00Z",
        }
        health = await analytics.http.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "UP"
        assert body["checks"] == {"database": "UP", "kafka-consumer": "UP"}
        assert body["consumer"]["state"] == "running"
        assert body["consumer"]["assignedPartitions"] == [f"{topics.name}-{p}" for p in range(3)]
        assert body["consumer"]["lastPollAgeSeconds"] < 5


async def test_empty_database_summary_has_zeros(analytics_factory: SettingsFactory) -> None:
    async with running_analytics(await analytics_factory()) as analytics:
        assert await analytics.summary() == {
            "totalEvents": 0,
            "eventsByType": counts(),
            "invalidEvents": 0,
            "lastEventAt": None,
        }


async def test_same_event_twice_is_counted_once(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics
) -> None:
    key, value = patient_event("PATIENT_CREATED", patient_id="patient-dup", event_id="event-dup-1")
    async with running_analytics(await analytics_factory()) as analytics:
        await send(producer, topics.name, key, value)
        await send(producer, topics.name, key, value)  # the outbox relay re-published it
        await analytics.wait_for(lambda s: s["totalEvents"] >= 1)
        await send(producer, topics.name, key, value)  # and once more, in a later batch
        # Same key, same partition: once the marker is counted, every copy before it was processed.
        await send(producer, topics.name, *patient_event("PATIENT_UPDATED", patient_id="patient-dup"))
        summary = await analytics.wait_for(lambda s: s["eventsByType"]["PATIENT_UPDATED"] == 1)
        assert summary["eventsByType"] == counts(created=1, updated=1)
        assert summary["totalEvents"] == 2


async def test_original_style_event_without_id_is_counted(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics
) -> None:
    sent_at = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
    key, value = patient_event("PATIENT_CREATED", original_style=True)
    async with running_analytics(await analytics_factory()) as analytics:
        await send(producer, topics.name, key, value, timestamp_ms=int(sent_at.timestamp() * 1000))
        await send(producer, topics.name, key, value)  # a second record: a separate event (the original had no ids)
        summary = await analytics.wait_for(lambda s: s["totalEvents"] == 2)
        assert summary["eventsByType"] == counts(created=2)
        assert summary["lastEventAt"] is not None  # the record timestamp stands in for occurred_at


async def test_invalid_records_are_set_aside_and_consumption_goes_on(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics, kafka: KafkaBroker
) -> None:
    garbage = b"\xff\xfe\x00not a protobuf \x80\x81"
    async with running_analytics(await analytics_factory()) as analytics:
        await send(producer, topics.name, b"k-garbage", garbage, headers=[("trace-id", b"t-1")], partition=0)
        await send(producer, topics.name, b"k-unknown", b"\x08\x01", partition=0)  # decodes, but no event_type
        await send(producer, topics.name, b"k-empty", None, partition=0)  # a tombstone
        unknown_type = patient_event("PATIENT_ARCHIVED")[1]
        await send(producer, topics.name, b"k-type", unknown_type, partition=0)
        for _ in range(2):
            await send(producer, topics.name, *patient_event("PATIENT_CREATED"), partition=0)
        summary = await analytics.wait_for(lambda s: s["totalEvents"] == 2 and s["invalidEvents"] == 4)
        assert summary["eventsByType"] == counts(created=2)

        dead = await read_all(kafka, topics.dlt, expected=4)
        assert [r.key for r in dead] == [b"k-garbage", b"k-unknown", b"k-empty", b"k-type"]
        assert [r.value for r in dead] == [garbage, b"\x08\x01", None, unknown_type]  # unchanged, unparsed
        headers = [dict(r.headers) for r in dead]
        assert [h["dlt.reason"] for h in headers] == [
            b"UNDECODABLE",
            b"UNKNOWN_EVENT_TYPE",
            b"EMPTY_VALUE",
            b"UNKNOWN_EVENT_TYPE",
        ]
        assert headers[0]["trace-id"] == b"t-1"  # the original headers travel along
        assert {h["dlt.original.topic"] for h in headers} == {topics.name.encode()}
        assert {h["dlt.original.partition"] for h in headers} == {b"0"}
        assert [h["dlt.original.offset"] for h in headers] == [b"0", b"1", b"2", b"3"]
