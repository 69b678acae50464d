"""A real billing-service per test: its lifespan (gRPC server on a free port) against a fresh database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

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
from pm_proto import billing_service_pb2_grpc


@dataclass
class Billing:
    """A running billing-service and clients for both of its ports."""

    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient
    channel: grpc.aio.Channel
    stub: billing_service_pb2_grpc.BillingServiceStub
    engine: AsyncEngine


def billing_settings(database_url: str, **overrides: object) -> Settings:
    """Test-mode settings on free ports."""
    values: dict[str, object] = {
        "environment": "test",
        "host": "127.0.0.1",
        "port": free_port(),
        "grpc_port": free_port(),
        "database_url": database_url,
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
    """billing-service on free ports with a migrated, empty database."""
    await migrate(database_url)
    settings = billing_settings(database_url)
    app = create_app(settings)
    engine = create_async_engine(database_url)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://billing") as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
    ):
        try:
            stub = billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]
            yield Billing(app, settings, http, channel, stub, engine)
        finally:
            await engine.dispose()
