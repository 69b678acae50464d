"""Fixtures: a migrated fresh database per test and the app running its lifespan against it."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.config import Settings
from auth_service.main import create_app
from devstack.postgres import PostgresCluster
from pm_common.database import create_engine, upgrade_database
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
Bearer = Callable[..., dict[str, str]]

_shared_numbers = itertools.count(1)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test-mode settings with the demo key."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "jwt_secret": DEMO_JWT_SECRET,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def serving(url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app (its lifespan running) on the database at url, with settings overrides."""
    app = create_app(make_settings(url, **overrides))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://auth-service") as client,
    ):
        yield client


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """A fresh database at the newest migration (Alembic runs its own loop, so in a thread)."""
    await asyncio.to_thread(upgrade_database, database_url, script_location="auth_service:migrations")
    return database_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database for arranging and inspecting rows."""
    engine = create_engine(migrated_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def app(migrated_url: str) -> AsyncIterator[FastAPI]:
    """The app with its lifespan started."""
    app = create_app(make_settings(migrated_url))
    async with LifespanManager(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://auth-service") as client:
        yield client


@pytest.fixture(scope="module")
async def shared_client(postgres: PostgresCluster) -> AsyncIterator[httpx.AsyncClient]:
    """A client for tests that never write: one migrated database and app per test module."""
    url = postgres.create_database(f"auth_shared_{os.getpid()}_{next(_shared_numbers)}")
    await asyncio.to_thread(upgrade_database, url, script_location="auth_service:migrations")
    async with serving(url) as client:
        yield client


@pytest.fixture
def serve(migrated_url: str) -> Serve:
    """`async with serve(**settings) as client`: a new app on this test's database (a restart, other limits)."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serving(migrated_url, **overrides)

    return start


@pytest.fixture
def bearer() -> Bearer:
    """`bearer("STAFF")`: an Authorization header with a demo-key token of that role."""

    def headers(role: str, *, email: str = "caller@test.com") -> dict[str, str]:
        key = base64.b64decode(DEMO_JWT_SECRET)
        return {"Authorization": f"Bearer {issue_token(key=key, email=email, role=role, lifetime_seconds=600)}"}

    return headers
