"""The async engine, the wait-for-database step and Alembic's env for every service with a database."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import MetaData, pool, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config, create_async_engine

log = logging.getLogger(__name__)

# SQLSTATE classes that mean "the database cannot serve right now": connection exception (08), transaction
# rollback (40: serialization failure, deadlock), insufficient resources (53), object not in prerequisite
# state (55: lock not available, database not accepting connections) and operator intervention (57: query
# canceled by statement_timeout, admin shutdown, cannot connect now).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57"})


def database_unavailable(error: BaseException) -> bool:
    """True for failures a retry may cure: no connection, pool exhausted, statement timeout, shutdown."""
    if isinstance(
        error, OSError | TimeoutError | sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    # Driver errors raised while connecting arrive unwrapped; both kinds carry the SQLSTATE.
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    sqlstate = getattr(original, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES


def create_engine(
    url: str, *, pool_size: int = 10, statement_timeout_ms: int = 10_000, pre_ping: bool = True
) -> AsyncEngine:
    """An asyncpg engine whose every statement and connect attempt has a time limit.

    pre_ping tests each connection as it leaves the pool (a round trip, plus BEGIN/ROLLBACK outside
    autocommit); without it, the first statement on a connection PostgreSQL dropped fails with a
    disconnect error that invalidates the whole pool, so only that one call fails (see bench/README.md).
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        pool_pre_ping=pre_ping,
        hide_parameters=True,  # exception texts never carry bound values (patient data) into logs
        connect_args={
            "timeout": 5,
            "command_timeout": statement_timeout_ms / 1000,
            "server_settings": {"statement_timeout": str(statement_timeout_ms)},
        },
    )


async def wait_for_database(url: str, *, timeout_s: float = 60.0) -> None:
    """Return once PostgreSQL accepts a query; raise after timeout_s (a service starting before it)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args={"timeout": 5})
    try:
        while True:
            try:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                return
            except Exception as exc:  # any failure to connect or query means "not ready yet"
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"database not reachable after {timeout_s:.0f}s: {exc}") from exc
                log.info("waiting for database", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
    finally:
        await engine.dispose()


# How long the migration child process of prepare_database() may take (a lock held by another migration...).
MIGRATION_TIMEOUT_S = 600.0


def upgrade_database(url: str, *, script_location: str) -> None:
    """Run `alembic upgrade head` for a service (script_location like `patient_service:migrations`)."""
    # Imported here: a serving process never needs Alembic (and Mako, Pygments): ~12 MiB of RSS each.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def prepare_database(
    url: str, *, migrations: str, seed: Callable[[AsyncEngine], Awaitable[object]] | None = None
) -> None:
    """Once per start, before uvicorn forks its workers: wait for PostgreSQL, migrate to head, then seed.

    The migration runs in a short-lived forked child, so that the server process never imports Alembic,
    Mako and Pygments (~12 MiB of RSS per service; bench/README.md).
    """
    asyncio.run(wait_for_database(url))
    _upgrade_in_child_process(url, script_location=migrations)
    if seed is not None:
        asyncio.run(_seed(url, seed))


def _upgrade_in_child_process(url: str, *, script_location: str) -> None:
    if sys.platform != "linux":  # fork is Linux's cheap path; elsewhere migrate in this process
        upgrade_database(url, script_location=script_location)
        return
    # A fork shares what this process already imported (SQLAlchemy, the service's modules) and inherits the
    # logging configuration; a fresh interpreter would import all of that again (~1.3 s of CPU per service).
    # No other thread runs here yet (asyncio.run has joined its executor), so forking is safe.
    child = multiprocessing.get_context("fork").Process(
        target=upgrade_database, args=(url,), kwargs={"script_location": script_location}, name="migrations"
    )
    child.start()
    child.join(MIGRATION_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        raise TimeoutError(f"database migrations ({script_location}) did not finish within {MIGRATION_TIMEOUT_S:.0f}s")
    if child.exitcode != 0:
        raise RuntimeError(f"database migrations ({script_location}) failed (exit code {child.exitcode}, see above)")


async def _seed(url: str, seed: Callable[[AsyncEngine], Awaitable[object]]) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        await seed(engine)
    finally:
        await engine.dispose()


def run_migrations(target_metadata: MetaData | None) -> None:
    """Body of every service's migrations/env.py: online, async, one transaction per run."""
    from alembic import context

    config = context.config

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())


async def database_answers(engine: AsyncEngine, *, timeout_s: float = 2.0) -> bool:
    """True when PostgreSQL answers `SELECT 1` within timeout_s (the check behind every /health)."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # refused, timed out, bad credentials: all mean "cannot serve now"
        return False
    return True
