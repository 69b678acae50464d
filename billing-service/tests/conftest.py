"""A real billing-service per test: its lifespan (gRPC server on a free port) against a fresh database.

Its channel sends patient-service's SERVICE token with every unary call, as patient-service does.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from billing_service.config import Settings
from billing_service.main import create_app
from devstack.process import free_port
from pm_common.database import upgrade_database
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import ServiceTokens
from pm_proto import billing_service_pb2_grpc

if TYPE_CHECKING:
    _UnaryUnaryClientInterceptor = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
else:  # generic in grpc-stubs only
    _UnaryUnaryClientInterceptor = grpc.aio.UnaryUnaryClientInterceptor

KEY = base64.b64decode(DEMO_JWT_SECRET)  # the key billing_settings() gives the service
CALLER = "patient-service"


class Credential(_UnaryUnaryClientInterceptor):
    """Adds `authorization: <value()>` to every unary call that has none (as patient-service's channel does)."""

    def __init__(self, value: Callable[[], str]) -> None:
        self._value = value

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        if "authorization" in metadata:  # the call brings its own
            return await continuation(client_call_details, request)
        metadata.add("authorization", self._value())
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def service_channel(address: str) -> grpc.aio.Channel:
    """A channel that sends a valid SERVICE token (sub patient-service) with every unary call."""
    tokens = ServiceTokens(KEY, service=CALLER)
    return grpc.aio.insecure_channel(address, interceptors=[Credential(tokens.authorization)])  # type: ignore[list-item]


@dataclass
class Billing:
    """A running billing-service and clients for both of its ports."""

    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient
    channel: grpc.aio.Channel
    stub: billing_service_pb2_grpc.BillingServiceStub
    engine: AsyncEngine

    @property
    def address(self) -> str:
        """Where its gRPC server listens (for a channel of a test's own, e.g. one with no credential)."""
        return f"127.0.0.1:{self.settings.grpc_port}"


def billing_settings(database_url: str, **overrides: object) -> Settings:
    """Test-mode settings on free ports."""
    values: dict[str, object] = {
        "environment": "test",
        "host": "127.0.0.1",
        "port": free_port(),
        "grpc_port": free_port(),
        "database_url": database_url,
        "jwt_secret": DEMO_JWT_SECRET,
        "health_check_interval_seconds": 0.2,
        "grpc_grace_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def migrate(database_url: str) -> None:
    """alembic upgrade head, off the event loop (Alembic runs its own loop)."""
    await asyncio.to_thread(upgrade_database, database_url, script_location="billing_service:migrations")


@pytest.fixture
async def billing(database_url: str) -> AsyncIterator[Billing]:
    """billing-service on free ports with a migrated, empty database; its stub sends a SERVICE token."""
    await migrate(database_url)
    async with running_billing(billing_settings(database_url)) as running:
        yield running


@asynccontextmanager
async def running_billing(settings: Settings) -> AsyncIterator[Billing]:
    """billing-service started with these settings (database already migrated) and clients for it."""
    app = create_app(settings)
    engine = create_async_engine(settings.database_url)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://billing") as http,
        service_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
    ):
        try:
            stub = billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]
            yield Billing(app, settings, http, channel, stub, engine)
        finally:
            await engine.dispose()
