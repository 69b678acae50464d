"""Database helpers against a real PostgreSQL: the health probe and the wait-for-database step."""

import pytest

from devstack.postgres import PostgresCluster
from devstack.process import free_port
from pm_common.database import create_engine, database_answers, wait_for_database


async def test_database_answers_true_when_up(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        assert await database_answers(engine) is True
    finally:
        await engine.dispose()


async def test_database_answers_false_when_nothing_listens(postgres: PostgresCluster) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x", pool_size=1)
    try:
        assert await database_answers(engine, timeout_seconds=1.0) is False
    finally:
        await engine.dispose()


async def test_wait_for_database_returns_when_up_and_times_out_when_not(database_url: str) -> None:
    await wait_for_database(database_url, timeout_seconds=5)
    with pytest.raises(TimeoutError, match="not reachable"):
        await wait_for_database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x", timeout_seconds=0.5)
