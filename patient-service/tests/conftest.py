"""Real patient-service lifespans against real PostgreSQL, the test stack's Kafka and an in-test gRPC billing server.

The billing server is a real grpc.aio server on a free port implementing BillingService from pm_proto
(billing-service itself is another package); tests stop and start it to simulate an outage.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresCluster
from devstack.process import free_port
from patient_service.config import Settings
from patient_service.main import create_app
from pm_common.database import upgrade_database
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token
from pm_proto import billing_service_pb2, billing_service_pb2_grpc, patient_event_pb2

# Every request of the tests is an ADMIN's unless a test sends its own Authorization header.
ADMIN_AUTHORIZATION = {
    "Authorization": "Bearer "
    + issue_token(key=base64.b64decode(DEMO_JWT_SECRET), email="admin@test", role="ADMIN", lifetime_seconds=86_400)
}

TOPIC = "patient"
_module_databases = itertools.count(1)


# -- database ------------------------------------------------------------------------------------
async def migrate(database_url: str) -> None:
    """alembic upgrade head, off the event loop (Alembic runs a loop of its own)."""
    await asyncio.to_thread(upgrade_database, database_url, script_location="patient_service:migrations")


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """A fresh database for one test, at the head revision."""
    await migrate(database_url)
    return database_url


@pytest.fixture(scope="module")
async def module_database_url(postgres: PostgresCluster) -> str:
    """A fresh migrated database shared by the tests of one module (for tests that need no isolation)."""
    url = postgres.create_database(f"ps_module_{os.getpid()}_{next(_module_databases)}")
    await migrate(url)
    return url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """A separate engine on the test's database, to look at what the service stored."""
    engine = create_async_engine(migrated_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def outbox_rows(engine: AsyncEngine, *, destination: str | None = None) -> list[Any]:
    """Every outbox row (optionally of one destination), oldest first."""
    query = text("SELECT * FROM outbox WHERE destination = coalesce(:d, destination) ORDER BY id")
    async with engine.connect() as connection:
        return list((await connection.execute(query, {"d": destination})).all())


async def wait_until(check: Callable[[], Any], *, timeout_seconds: float = 20.0, interval_seconds: float = 0.05) -> Any:
    """Poll an async check until it returns something truthy; fail after timeout_seconds."""
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_seconds}s (last result: {result!r})")
        await asyncio.sleep(interval_seconds)


# -- billing -------------------------------------------------------------------------------------
class RecordingBilling(billing_service_pb2_grpc.BillingServiceServicer):
    """BillingService as the contract describes it: idempotent per patientId, INVALID_ARGUMENT without one."""

    def __init__(self) -> None:
        self.calls: list[billing_service_pb2.BillingRequest] = []
        self.accounts: dict[str, str] = {}
        self.closed: set[str] = set()
        self.fail_next: list[grpc.StatusCode] = []  # answer the next calls with these codes, in order
        self.delay_next_seconds: list[float] = []  # answer the next calls only after these delays

    async def CreateBillingAccount(
        self, request: billing_service_pb2.BillingRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_service_pb2.BillingResponse:
        self.calls.append(request)
        if self.delay_next_seconds:
            await asyncio.sleep(self.delay_next_seconds.pop(0))
        if self.fail_next:
            await context.abort(self.fail_next.pop(0), "injected by the test")
        if not request.patientId:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "patientId is required")
        account = self.accounts.setdefault(request.patientId, f"acct-{uuid.uuid4()}")
        return billing_service_pb2.BillingResponse(accountId=account, status="ACTIVE")

    async def CloseBillingAccount(
        self, request: billing_service_pb2.BillingAccountRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> billing_service_pb2.BillingResponse:
        self.closed.add(request.patientId)
        account = self.accounts.setdefault(request.patientId, f"acct-{uuid.uuid4()}")
        return billing_service_pb2.BillingResponse(accountId=account, status="CLOSED")

    def patient_ids(self) -> set[str]:
        """Patients that got an account."""
        return set(self.accounts)


class BillingServer:
    """A real grpc.aio server on a fixed free port; stop() and start() simulate an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.servicer = RecordingBilling()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server()
        billing_service_pb2_grpc.add_BillingServiceServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None


@pytest.fixture
async def billing() -> AsyncIterator[BillingServer]:
    """A running in-test billing server (stopped at the end)."""
    server = BillingServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- the service ---------------------------------------------------------------------------------
def service_settings(database_url: str, **overrides: Any) -> Settings:
    """Test-mode settings with fast relay timings (still the production code paths)."""
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret": DEMO_JWT_SECRET,
        "host": "127.0.0.1",
        "port": free_port(),
        "database_url": database_url,
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",  # nothing listens: tests that need Kafka override
        "billing_service_address": "127.0.0.1",
        "billing_service_grpc_port": free_port(),
        "billing_deadline_seconds": 2.0,
        "outbox_poll_interval_seconds": 0.05,
        "outbox_initial_backoff_seconds": 0.1,
        "outbox_max_backoff_seconds": 1.0,
        "kafka_send_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Service:
    """A running patient-service (its real lifespan) and an HTTP client for it."""

    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient

    async def create(self, **fields: Any) -> dict[str, Any]:
        """POST a valid patient (fields override the defaults); assert 201 and return the body."""
        body = {
            "name": "Test Patient",
            "email": f"patient-{uuid.uuid4().hex[:12]}@example.com",
            "address": "1 Test Street, Springfield",
            "dateOfBirth": "1990-05-15",
            **fields,
        }
        response = await self.http.post("/patients", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    """Start create_app(settings) with its lifespan; stop it on exit."""
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=20, shutdown_timeout=20),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://patient-service", headers=ADMIN_AUTHORIZATION
        ) as http,
    ):
        yield Service(app, settings, http)


@pytest.fixture(scope="module")
async def api(module_database_url: str) -> AsyncIterator[Service]:
    """One service per module without relays (HTTP contract tests; no Kafka or billing needed)."""
    async with running_service(service_settings(module_database_url, outbox_relay_enabled=False)) as service:
        yield service


# -- Kafka ---------------------------------------------------------------------------------------
@dataclass
class EventLog:
    """PatientEvents read from topic `patient` for a set of patient ids (keys)."""

    bootstrap: str
    keys: set[str] = field(default_factory=set)
    events: list[tuple[str, patient_event_pb2.PatientEvent]] = field(default_factory=list)

    async def collect(
        self,
        until: Callable[[list[tuple[str, patient_event_pb2.PatientEvent]]], bool],
        *,
        timeout_seconds: float = 30.0,
    ) -> list[tuple[str, patient_event_pb2.PatientEvent]]:
        """Read the whole topic from the beginning until until(events) holds; fail after timeout_seconds."""
        # No group: the consumer takes every partition and reads from the earliest offset.
        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            self.events = []
            deadline = asyncio.get_running_loop().time() + timeout_seconds
            while not until(self.events):
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"events not complete within {timeout_seconds}s: {len(self.events)} read")
                batches = await consumer.getmany(timeout_ms=300)
                for records in batches.values():
                    for record in records:
                        key = record.key.decode() if record.key is not None else ""
                        if key in self.keys:
                            self.events.append((key, patient_event_pb2.PatientEvent.FromString(record.value)))
            return self.events
        finally:
            await consumer.stop()

    def of_types(self, *types: str) -> list[patient_event_pb2.PatientEvent]:
        """Collected events of the given types, in topic order per partition."""
        return [event for _, event in self.events if event.event_type in types]


@pytest.fixture
def event_log(kafka: KafkaBroker) -> EventLog:
    """A reader of topic `patient` filtered by the keys a test adds."""
    return EventLog(bootstrap=kafka.bootstrap)


def event_ids(events: Iterable[tuple[str, patient_event_pb2.PatientEvent]]) -> list[str]:
    """The event ids of collected events (with repeats, if the topic has any)."""
    return [event.event_id for _, event in events]
