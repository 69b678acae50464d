"""Restarts, re-delivery, rebalances and outages: counts survive and nothing is counted twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from analytics_service.config import Settings
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresCluster
from devstack.process import free_port

from .conftest import Topics, counts, patient_event, running_analytics

SettingsFactory = Callable[..., Awaitable[Settings]]


async def publish(producer: AIOKafkaProducer, topic: str, event_type: str, n: int, **kwargs: object) -> None:
    for _ in range(n):
        key, value = patient_event(event_type, **kwargs)  # type: ignore[arg-type]
        await producer.send_and_wait(topic, value=value, key=key)


async def wait_group_caught_up(kafka: KafkaBroker, group: str, topic: str, *, timeout_seconds: float = 30.0) -> None:
    """Until the group's committed offsets reach the end of every partition of topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await probe.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await probe.end_offsets(partitions)
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            positions = {tp: meta.offset for tp, meta in committed.items() if tp.topic == topic}
            if all(positions.get(tp, 0) >= end for tp, end in ends.items()):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"group {group} stuck at {positions}, ends {ends}")
            await asyncio.sleep(0.2)
    finally:
        await probe.stop()
        await admin.close()


@asynccontextmanager
async def kafka_producer(kafka: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    """A producer for one phase of a test that restarts the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, enable_idempotence=True, request_timeout_ms=10_000)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def end_offset(kafka: KafkaBroker, topic: str) -> int:
    """How many records partition 0 of topic holds."""
    probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    await probe.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await probe.end_offsets([tp]))[tp])
    finally:
        await probe.stop()


async def test_restart_keeps_counts_and_redelivery_counts_nothing_twice(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics, kafka: KafkaBroker, group: str
) -> None:
    settings = await analytics_factory()
    async with running_analytics(settings) as analytics:
        await publish(producer, topics.name, "PATIENT_CREATED", 5)
        await publish(producer, topics.name, "PATIENT_CREATED", 2, original_style=True)
        await producer.send_and_wait(topics.name, value=b"\xff garbage", key=b"bad")
        await analytics.wait_for(lambda s: s["totalEvents"] == 7 and s["invalidEvents"] == 1)

    # Published while analytics is down.
    await publish(producer, topics.name, "PATIENT_UPDATED", 3)
    await publish(producer, topics.name, "PATIENT_DELETED", 1, original_style=True)

    async with running_analytics(await analytics_factory()) as analytics:
        summary = await analytics.wait_for(lambda s: s["totalEvents"] == 11)
        await wait_group_caught_up(kafka, group, topics.name)
        summary = await analytics.summary()
        assert summary["eventsByType"] == counts(created=7, updated=3, deleted=1)
        assert summary["invalidEvents"] == 1
        assert summary["totalEvents"] == 11

    # Everything delivered again: a new group on the same database starts from the earliest offset.
    new_group = f"{group}-replay"
    async with running_analytics(await analytics_factory(group=new_group)) as analytics:
        await wait_group_caught_up(kafka, new_group, topics.name)
        summary = await analytics.summary()
        assert summary["eventsByType"] == counts(created=7, updated=3, deleted=1)
        assert summary["invalidEvents"] == 1
    # Dead-lettering happens before the offsets are committed, so the caught-up group shows them all.
    assert await end_offset(kafka, topics.dlt) == 1  # the garbage record was not dead-lettered a second time


async def test_two_consumers_in_one_group_split_partitions_and_hand_over(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics, kafka: KafkaBroker, group: str
) -> None:
    """What WORKERS=2 does: two consumers share the group and the database; a leaving one hands over."""
    async with running_analytics(await analytics_factory()) as first:
        await publish(producer, topics.name, "PATIENT_CREATED", 6)
        await first.wait_for(lambda s: s["totalEvents"] == 6)
        async with running_analytics(await analytics_factory()) as second:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                one = (await first.http.get("/health")).json()["consumer"]["assignedPartitions"]
                two = (await second.http.get("/health")).json()["consumer"]["assignedPartitions"]
                if one and two and sorted(one + two) == [f"{topics.name}-{p}" for p in range(3)]:
                    break
                assert asyncio.get_running_loop().time() < deadline, (one, two)
                await asyncio.sleep(0.2)
            await publish(producer, topics.name, "PATIENT_UPDATED", 6)
            await first.wait_for(lambda s: s["totalEvents"] == 12)
        # The second one left: the first takes all partitions back and keeps counting.
        await publish(producer, topics.name, "PATIENT_DELETED", 6)
        summary = await first.wait_for(lambda s: s["totalEvents"] == 18)
        await wait_group_caught_up(kafka, group, topics.name)
        assert (await first.summary())["eventsByType"] == counts(created=6, updated=6, deleted=6)
        assert summary["invalidEvents"] == 0


@pytest.mark.fault
async def test_database_outage_loses_nothing(
    analytics_factory: SettingsFactory, producer: AIOKafkaProducer, topics: Topics, postgres: PostgresCluster
) -> None:
    settings = await analytics_factory(consumer_retry_max_delay_seconds=0.5)
    database = settings.database_url.rsplit("/", 1)[1]
    admin = create_async_engine(postgres.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with running_analytics(settings) as analytics:
            await publish(producer, topics.name, "PATIENT_CREATED", 3)
            await analytics.wait_for(lambda s: s["totalEvents"] == 3)
            async with admin.connect() as connection:
                await connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
                await connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
                )
            try:
                await publish(producer, topics.name, "PATIENT_UPDATED", 4)
                health = await analytics.http.get("/health")
                assert health.status_code == 503
                assert health.json()["checks"]["database"] == "DOWN"
                assert (await analytics.http.get("/analytics/summary")).status_code == 503
                await asyncio.sleep(1.5)  # the consumer polls, fails to store, rewinds and retries meanwhile
            finally:
                async with admin.connect() as connection:
                    await connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
            summary = await analytics.wait_for(lambda s: s["totalEvents"] == 7)
            assert summary["eventsByType"] == counts(created=3, updated=4)
            assert (await analytics.http.get("/health")).status_code == 200
    finally:
        await admin.dispose()


async def test_service_starts_and_stops_while_kafka_is_unreachable(analytics_factory: SettingsFactory) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with running_analytics(await analytics_factory(kafka_bootstrap_servers=nowhere)) as analytics:
        health = await analytics.http.get("/health")
        assert health.status_code == 200  # still within the start grace period
        assert health.json()["consumer"]["state"] == "starting"
        assert (await analytics.summary())["totalEvents"] == 0  # the API serves without Kafka
    settings = await analytics_factory(kafka_bootstrap_servers=nowhere, consumer_start_grace_seconds=0)
    async with running_analytics(settings) as analytics:
        health = await analytics.http.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"] == {"database": "UP", "kafka-consumer": "DOWN"}
        assert health.json()["consumer"]["problem"] == "Kafka not reachable"


async def test_database_unreachable_gives_503_not_500(analytics_factory: SettingsFactory) -> None:
    settings = await analytics_factory(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    async with running_analytics(settings) as analytics:
        response = await analytics.http.get("/analytics/summary")
        assert response.status_code == 503
        assert response.json() == {"message": "Service temporarily unavailable"}
        health = await analytics.http.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["database"] == "DOWN"


@pytest.mark.fault
async def test_kafka_outage_then_consumption_resumes(
    analytics_factory: SettingsFactory, topics: Topics, kafka: KafkaBroker
) -> None:
    """The broker stops under a running consumer and comes back: the consumer recovers by itself."""
    async with running_analytics(await analytics_factory()) as analytics:
        async with kafka_producer(kafka) as producer:
            await publish(producer, topics.name, "PATIENT_CREATED", 2)
        await analytics.wait_for(lambda s: s["totalEvents"] == 2)
        await asyncio.to_thread(kafka.stop)
        try:
            await asyncio.sleep(1)
            assert (await analytics.summary())["totalEvents"] == 2  # the API keeps serving
        finally:
            await asyncio.to_thread(kafka.start)
        async with kafka_producer(kafka) as producer:
            await publish(producer, topics.name, "PATIENT_UPDATED", 2)
        summary = await analytics.wait_for(lambda s: s["totalEvents"] == 4, timeout_seconds=60)
        assert summary["eventsByType"] == counts(created=2, updated=2)
        assert (await analytics.http.get("/health")).status_code == 200
