"""Real analytics-service lifespans against real PostgreSQL and the real Kafka broker of the test stack.

Each test gets its own topics (`<name>` with 3 partitions and `<name>.DLT`), consumer group and
database, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from analytics_service.config import Settings
from analytics_service.main import create_app
from devstack.kafka import KafkaBroker
from devstack.process import free_port
from pm_common.database import upgrade_database
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token
from pm_proto import patient_event_pb2

# Every request of the tests is an ADMIN's unless a test sends its own Authorization header.
ADMIN_AUTHORIZATION = {
    "Authorization": "Bearer "
    + issue_token(key=base64.b64decode(DEMO_JWT_SECRET), email="admin@test", role="ADMIN", lifetime_seconds=86_400)
}


@dataclass(frozen=True)
class Topics:
    """A test's own topic and dead-letter topic."""

    name: str
    dlt: str


@dataclass
class Analytics:
    """A running analytics-service and an HTTP client for it."""

    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient

    async def summary(self) -> dict[str, object]:
        response = await self.http.get("/analytics/summary")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    async def wait_for(
        self, check: Callable[[dict[str, Any]], bool], *, timeout_seconds: float = 30.0
    ) -> dict[str, Any]:
        """Poll the summary until check(summary) holds; fail with the last summary after timeout_seconds."""
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            body = await self.summary()
            if check(body):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"summary never satisfied the check: {body}")
            await asyncio.sleep(0.1)


def analytics_settings(
    database_url: str, *, bootstrap: str, topics: Topics, group: str, **overrides: object
) -> Settings:
    """Test-mode settings on a free port for one topic and group."""
    values: dict[str, object] = {
        "environment": "test",
        "jwt_secret": DEMO_JWT_SECRET,
        "host": "127.0.0.1",
        "port": free_port(),
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic": topics.name,
        "kafka_dlt_topic": topics.dlt,
        "kafka_group_id": group,
        "consumer_poll_timeout_seconds": 0.2,
        "consumer_session_timeout_seconds": 10,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running_analytics(settings: Settings) -> AsyncIterator[Analytics]:
    """The app with its lifespan (consumer included) running, and a client for its HTTP API."""
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://analytics", headers=ADMIN_AUTHORIZATION
        ) as http,
    ):
        yield Analytics(app, settings, http)


async def migrate(database_url: str) -> None:
    """alembic upgrade head, off the event loop (Alembic runs its own loop)."""
    await asyncio.to_thread(upgrade_database, database_url, script_location="analytics_service:migrations")


@pytest.fixture
async def analytics_db(database_url: str) -> str:
    """A fresh database with the analytics schema."""
    await migrate(database_url)
    return database_url


@pytest.fixture
async def topics(kafka: KafkaBroker) -> Topics:
    """A new topic (3 partitions, like `patient`) and its dead-letter topic, for this test only."""
    name = f"patient-test-{uuid.uuid4().hex[:12]}"
    created = Topics(name=name, dlt=f"{name}.DLT")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(created.name, 3, 1), NewTopic(created.dlt, 1, 1)])
    finally:
        await admin.close()
    return created


@pytest.fixture
def group() -> str:
    """A consumer group of this test's own."""
    return f"analytics-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def producer(kafka: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    """A producer the way patient-service publishes (acks=all)."""
    client = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, enable_idempotence=True, request_timeout_ms=10_000)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@pytest.fixture
def analytics_factory(
    analytics_db: str, kafka: KafkaBroker, topics: Topics, group: str
) -> Callable[..., Awaitable[Settings]]:
    """Settings for this test's database, topics and group; keyword arguments override."""

    async def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"bootstrap": kafka.bootstrap, "topics": topics, "group": group}
        values.update(overrides)
        database_url = str(values.pop("database_url", analytics_db))
        return analytics_settings(database_url, **values)  # type: ignore[arg-type]

    return make


def patient_event(
    event_type: str,
    *,
    patient_id: str | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    original_style: bool = False,
) -> tuple[bytes, bytes]:
    """(key, value) of a PatientEvent; original_style leaves out event_id and occurred_at like the Java producer."""
    patient_id = patient_id or str(uuid.uuid4())
    event = patient_event_pb2.PatientEvent(
        patientId=patient_id, name="Test Patient", email="test.patient@example.com", event_type=event_type
    )
    if not original_style:
        event.event_id = event_id or str(uuid.uuid4())
        event.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    return patient_id.encode(), event.SerializeToString()


def counts(created: int = 0, updated: int = 0, deleted: int = 0) -> dict[str, int]:
    """eventsByType as the summary shows it."""
    return {"PATIENT_CREATED": created, "PATIENT_UPDATED": updated, "PATIENT_DELETED": deleted}


async def read_all(kafka: KafkaBroker, topic: str, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a one-partition topic, waiting until `expected` are there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + 20
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records.extend(batch.get(tp, []))
        return records
    finally:
        await consumer.stop()
