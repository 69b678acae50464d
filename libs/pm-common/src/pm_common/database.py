"""The database half of the kit (extra `db`): engine, metadata, prestart, health check, error handlers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
from asyncpg import Record
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData, Select, Table, delete, func, pool, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_engine_from_config, create_async_engine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from pm_common.http import ErrorHandler, unexpected_error
from pm_common.metrics import watch_engine
from pm_common.settings import DatabaseSettings
from pm_common.telemetry import instrument_asyncpg

log = logging.getLogger(__name__)

# One naming convention for every service's tables, so that Alembic names constraints and indexes alike.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """The MetaData a service's tables register on (and Alembic compares against)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


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
    url: str, *, pool_size: int = 10, statement_timeout_seconds: float = 10.0, pre_ping: bool = True
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
            "command_timeout": statement_timeout_seconds,
            "server_settings": {"statement_timeout": str(round(statement_timeout_seconds * 1000))},
        },
    )


class DriverRead:
    """A Core SELECT compiled once for asyncpg and run on a pooled connection's asyncpg connection.

    For the hottest reads only: SQLAlchemy's execution layer (execution context, cursor adaptation, result
    rows) cost ~0.1 ms of CPU per GET by id, a sixth of the whole request (bench/README.md). The pool and
    the SQL stay SQLAlchemy's; rows come back as asyncpg Records (by column name). A single statement
    needs no transaction: it runs as it is, in autocommit.

    Connections PostgreSQL has closed while they sat in the pool (a restart, a terminated backend) are
    replaced: most are seen without a round trip (asyncpg has read the server's goodbye), the others fail
    at once; either way the read goes on with another connection. Other failures surface as SQLAlchemy's
    DBAPIError would, so the services' database error handlers answer them (503).
    """

    def __init__(self, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        self.sql = str(compiled)
        self._names: Sequence[str] = compiled.positiontup or ()

    async def all(self, engine: AsyncEngine, values: Mapping[str, object] | None = None) -> list[Record]:
        """Every row of the statement with these values for its parameters."""
        arguments = self.arguments(values)
        # After a restart every pooled connection may be dead: each is found out at once (no waiting), so
        # trying them all costs little, and a database that is really down fails at connect (503) instead.
        dead_error: BaseException | None = None
        for _ in range(engine.pool.size() + 1):  # type: ignore[attr-defined]
            async with engine.connect() as connection:
                driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
                if driver.is_closed():  # PostgreSQL said goodbye while it sat in the pool
                    await connection.invalidate()  # reconnects when next checked out
                    continue
                try:
                    rows: list[Record] = await driver.fetch(self.sql, *arguments)
                    return rows
                except (asyncpg.PostgresError, *_DEAD_CONNECTION) as exc:
                    if not (isinstance(exc, _DEAD_CONNECTION) or getattr(exc, "sqlstate", None) in _CONNECTION_GONE):
                        raise sa_exc.DBAPIError(self.sql, None, exc, hide_parameters=True) from exc
                    await connection.invalidate(exc)
                    dead_error = exc
                    log.warning("database connection dropped, reading again", extra={"error": type(exc).__name__})
        raise sa_exc.DBAPIError(self.sql, None, dead_error or ConnectionError(), connection_invalidated=True)

    def arguments(self, values: Mapping[str, object] | None) -> list[object]:
        """The values in the order of the SQL's $1, $2, ... placeholders."""
        return [values[name] for name in self._names] if values else []

    async def first(self, engine: AsyncEngine, values: Mapping[str, object] | None = None) -> Record | None:
        """The first row, or None."""
        rows = await self.all(engine, values)
        return rows[0] if rows else None


# Errors after which a connection is unusable. InternalClientError: the server's goodbye (admin shutdown)
# arrived while the connection sat idle, and the protocol still waits for the rest of that answer.
_DEAD_CONNECTION = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
# admin_shutdown, crash_shutdown, cannot_connect_now: the server ends (or refuses) the session.
_CONNECTION_GONE = frozenset({"57P01", "57P02", "57P03"})


def engine_from(settings: DatabaseSettings) -> AsyncEngine:
    """The service's engine, sized and timed by its DATABASE_* settings (traced, its pool in /metrics)."""
    instrument_asyncpg()
    return watch_engine(
        create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            statement_timeout_seconds=settings.database_statement_timeout_seconds,
            pre_ping=settings.database_pool_pre_ping,
        )
    )


async def wait_for_database(url: str, *, timeout_seconds: float = 60.0) -> None:
    """Return once PostgreSQL accepts a query; raise after timeout_seconds (a service starting before it)."""
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args={"timeout": 5})
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),  # refused, starting up, bad DNS: all mean "not ready yet"
            wait=wait_exponential(multiplier=0.2, max=2.0),
            stop=stop_after_delay(timeout_seconds),
            before_sleep=_log_wait,
        ):
            with attempt:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise TimeoutError(f"database not reachable after {timeout_seconds:.0f}s: {type(last).__name__}") from last
    finally:
        await engine.dispose()


def _log_wait(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.info("waiting for database", extra={"error": type(error).__name__})


# How long the migration child process of prepare_database() may take (a lock held by another migration...).
MIGRATION_TIMEOUT_SECONDS = 600.0


class Seed(Protocol):
    """Inserts a service's demo rows (idempotently)."""

    def __call__(self, *, engine: AsyncEngine) -> Awaitable[object]: ...


def database_prestart(*, migrations: str, seed: Seed | None = None) -> Callable[[DatabaseSettings], None]:
    """The prestart step of a service with a database: wait, migrate, then seed where demo data is on."""

    def prestart(settings: DatabaseSettings) -> None:
        # DemoDataSettings.seed_enabled, where the service's settings have that piece.
        seeding = seed is not None and bool(getattr(settings, "seed_enabled", False))
        if seed is not None and not seeding:
            log.info("demo data not seeded (SEED_DEMO_DATA off)")
        prepare_database(settings.database_url, migrations=migrations, seed=seed if seeding else None)

    return prestart


def upgrade_database(url: str, *, script_location: str) -> None:
    """Run `alembic upgrade head` for a service (script_location like `patient_service:migrations`)."""
    # Imported here: a serving process never needs Alembic (and Mako, Pygments): ~12 MiB of RSS each.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def prepare_database(url: str, *, migrations: str, seed: Seed | None = None) -> None:
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
    child.join(MIGRATION_TIMEOUT_SECONDS)
    if child.is_alive():
        child.kill()
        child.join()
        raise TimeoutError(
            f"database migrations ({script_location}) did not finish within {MIGRATION_TIMEOUT_SECONDS:.0f}s"
        )
    if child.exitcode != 0:
        raise RuntimeError(f"database migrations ({script_location}) failed (exit code {child.exitcode}, see above)")


async def _seed(url: str, seed: Seed) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        await seed(engine=engine)
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


async def database_answers(engine: AsyncEngine, *, timeout_seconds: float = 2.0) -> bool:
    """True when PostgreSQL answers `SELECT 1` within timeout_seconds (the check behind every /health)."""
    try:
        async with asyncio.timeout(timeout_seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # refused, timed out, bad credentials: all mean "cannot serve now"
        return False
    return True


async def database_check(request: Request) -> bool:
    """The health check of `app.state.engine`."""
    engine: AsyncEngine = request.app.state.engine
    return await database_answers(engine)


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        return await unexpected_error(request, exc)
    log.warning("database unavailable", extra={"error": type(exc).__name__, "path": request.url.path})
    return JSONResponse({"message": "Service temporarily unavailable"}, status_code=503)


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection whose statements each commit on their own: a single-statement write then costs
    one round trip, where a transaction adds BEGIN and COMMIT (two more).

    Set on the connection, not through `engine.execution_options()`: that builds a new engine object per
    call, ~50-90 us of CPU more per call than this (measured in a loop against PostgreSQL).
    """
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


# What the database layer raises: what database_unavailable() recognises is a 503 (the client did nothing
# wrong and may retry); the rest a logged 500.
DATABASE_ERROR_HANDLERS: Mapping[type[Exception], ErrorHandler] = {
    error_type: _on_database_error
    for error_type in (sa_exc.SQLAlchemyError, asyncpg.PostgresError, OSError, TimeoutError)
}


async def schema_drift(url: str, metadata: MetaData) -> list[object]:
    """What differs between the database at `url` and `metadata` (empty once the migrations match the models)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def purge_expired_periodically(engine: AsyncEngine, *, tables: Sequence[Table], interval_seconds: float) -> None:
    """Every interval_seconds, delete the rows whose `expires_at` has passed (until cancelled).

    A failure (the database is away for a while) is logged and tried again at the next interval.
    """
    while True:
        await asyncio.sleep(interval_seconds)
        for table in tables:
            try:
                async with engine.begin() as connection:
                    deleted = (await connection.execute(delete(table).where(table.c.expires_at <= func.now()))).rowcount
            except Exception as exc:  # the database may be down for a while: try again next interval
                log.warning("expired rows not deleted", extra={"table": table.name, "error": type(exc).__name__})
                continue
            if deleted:
                log.info("expired rows deleted", extra={"table": table.name, "count": deleted})
