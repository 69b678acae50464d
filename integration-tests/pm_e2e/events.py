"""Kafka as a client: watch topic `patient` from a remembered offset and decode PatientEvent values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pm_proto.patient_event_pb2 import PatientEvent

TOPIC = "patient"
DLT_TOPIC = "patient.DLT"
ANALYTICS_GROUP = "analytics-service"


@dataclass(frozen=True)
class Record:
    """One record as the suite sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def event(self) -> PatientEvent:
        """The value parsed as a PatientEvent (raises on bytes that are not one)."""
        return PatientEvent.FromString(self.value)


async def partitions(bootstrap: str, topic: str = TOPIC) -> list[int]:
    """The partition numbers of topic (fails when the topic does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 30)
    try:
        [description] = await asyncio.wait_for(admin.describe_topics([topic]), 30)
    finally:
        await admin.close()
    assert description["error_code"] == 0, f"topic {topic}: error {description['error_code']}"
    return sorted(int(p["partition"]) for p in description["partitions"])


async def end_offsets(bootstrap: str, topic: str = TOPIC) -> dict[int, int]:
    """The next offset of every partition of topic: records after it are newer than this call."""
    tps = [TopicPartition(topic, p) for p in await partitions(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        offsets = await asyncio.wait_for(consumer.end_offsets(tps), 30)
    finally:
        await consumer.stop()
    return {tp.partition: int(offset) for tp, offset in offsets.items()}


async def read_from(
    bootstrap: str,
    start: dict[int, int],
    match: Callable[[Record], bool],
    *,
    want: int,
    topic: str = TOPIC,
    timeout_seconds: float = 30.0,
    linger_seconds: float = 0.0,
) -> list[Record]:
    """Records after `start` that match, until `want` are found (then linger_seconds longer) or the timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await asyncio.wait_for(consumer.start(), 30)
    found: list[Record] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(start)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        deadline = time.monotonic() + timeout_seconds
        stop_at: float | None = None
        while time.monotonic() < (stop_at or deadline):
            batches: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=300, max_records=500)
            for records in batches.values():
                for raw in records:
                    record = Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value or b"")
                    if match(record):
                        found.append(record)
            if len(found) >= want and stop_at is None:
                stop_at = min(deadline, time.monotonic() + linger_seconds)
    finally:
        await consumer.stop()
    return found


def events_of(patient_id: str) -> Callable[[Record], bool]:
    """Match PatientEvent records about one patient (records that do not parse never match)."""

    def match(record: Record) -> bool:
        try:
            return record.event().patientId == patient_id
        except Exception:  # a poison record of another test: not ours
            return False

    return match


async def produce(bootstrap: str, topic: str, *, key: bytes | None, value: bytes) -> tuple[int, int]:
    """Publish one record, wait for the broker's acknowledgement; returns (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000)
    await asyncio.wait_for(producer.start(), 30)
    try:
        metadata = await asyncio.wait_for(producer.send_and_wait(topic, value=value, key=key), 30)
    finally:
        await producer.stop()
    return int(metadata.partition), int(metadata.offset)


async def wait_consumed(
    bootstrap: str, *, group: str, partition: int, offset: int, topic: str = TOPIC, timeout_seconds: float = 30.0
) -> None:
    """Wait until consumer group `group` has committed past offset on topic/partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 30)
    committed = -1
    try:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), 15)
            meta = offsets.get(TopicPartition(topic, partition))
            committed = int(meta.offset) if meta is not None else -1
            if committed > offset:
                return
            await asyncio.sleep(0.3)
    finally:
        await admin.close()
    raise AssertionError(f"group {group} committed {committed} on {topic}[{partition}], not past {offset}")
