"""The Alembic migrations build exactly the tables the models describe, and a second run is a no-op."""

from __future__ import annotations

from billing_service.accounts.models import metadata
from pm_common.database import schema_drift

from .conftest import migrate


async def test_migrations_match_models(database_url: str) -> None:
    await migrate(database_url)
    await migrate(database_url)
    assert await schema_drift(database_url, metadata) == []
