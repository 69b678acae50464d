"""Safe retries (extra `db`): an `Idempotency-Key` stored in the same transaction as what it protects.

A request with a key first claims it (INSERT ... ON CONFLICT DO NOTHING on (actor, key)). While the first
request's transaction runs, a repeat's INSERT waits on that row's lock: it then sees the committed outcome
and replays it, or, if the first rolled back, executes itself. So a key never creates twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from pm_common.http import DomainError, ErrorHandler

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# How long a repeat waits for the first request with its key before it gets 409.
WAIT_FOR_FIRST_SECONDS = 5


def idempotency_table(metadata: MetaData) -> Table:
    """The idempotency_keys table of a service (explicit states: IN_PROGRESS until COMPLETED)."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("actor", String(255), nullable=False),
        Column("key", String(255), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("state", String(16), nullable=False),
        Column("status", Integer),
        Column("body", LargeBinary),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("actor", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )


@dataclass(frozen=True)
class Replay:
    """The stored outcome of the first request with this key."""

    status: int
    body: Any


@dataclass(frozen=True)
class RetryKey:
    """A request's Idempotency-Key, with who sent it and what it asked (the key is per actor)."""

    actor: str
    key: str
    fingerprint: str
    ttl_seconds: float


# The header parameter of an endpoint that accepts it (documented once, in every OpenAPI that has it).
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description="1-255 printable ASCII characters. A repeat with the same key and body (same caller, within "
        "IDEMPOTENCY_KEY_TTL_SECONDS) answers the first outcome with `Idempotent-Replayed: true`; the same key with "
        "another body is 422; a repeat while the first still runs waits for it (409 after 5 s).",
    ),
]


def retry_key(
    header: str | None, *, request: Request, actor: str, body: Any, ttl_seconds: float, secret: bytes = b""
) -> RetryKey | None:
    """The RetryKey of a request with an Idempotency-Key header (None without one; 400 for a malformed key)."""
    key = checked_key(header)
    if key is None:
        return None
    fingerprint = request_hash(request.method, request.url.path, body, secret=secret)
    return RetryKey(actor=actor, key=key, fingerprint=fingerprint, ttl_seconds=ttl_seconds)


class Replayed(Exception):
    """The request repeats a completed one: answer with the stored outcome (IDEMPOTENCY_ERROR_HANDLERS)."""

    def __init__(self, replay: Replay) -> None:
        super().__init__("replayed")
        self.replay = replay


async def _on_replayed(request: Request, exc: Replayed) -> JSONResponse:
    return JSONResponse(exc.replay.body, status_code=exc.replay.status, headers={REPLAYED_HEADER: "true"})


IDEMPOTENCY_ERROR_HANDLERS: Mapping[type[Exception], ErrorHandler] = {Replayed: _on_replayed}


def checked_key(value: str | None) -> str | None:
    """The header's key, or None without one; 400 for a key that is not 1-255 printable ASCII characters."""
    if value is None:
        return None
    if not _VALID_KEY.fullmatch(value):
        raise DomainError(f"{HEADER} must be 1 to 255 printable ASCII characters")
    return value


def request_hash(method: str, path: str, body: Any, *, secret: bytes = b"") -> str:
    """What makes two requests "the same": method, path and the body's canonical JSON.

    Keyed (HMAC-SHA256) when the body holds a secret such as a new user's password, so the stored
    fingerprint cannot be brute-forced back into it without the key.
    """
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


async def guard(connection: AsyncConnection, table: Table, retry: RetryKey) -> None:
    """Inside the protected transaction: return to go ahead (the key is ours now); raise Replayed to answer
    with the first request's outcome; 422 when the key was used with another request; 409 when the first
    is still running after WAIT_FOR_FIRST_SECONDS."""
    replay = await _claim(
        connection,
        table,
        actor=retry.actor,
        key=retry.key,
        fingerprint=retry.fingerprint,
        ttl_seconds=retry.ttl_seconds,
    )
    if replay is not None:
        raise Replayed(replay)


async def _claim(
    connection: AsyncConnection,
    table: Table,
    *,
    actor: str,
    key: str,
    fingerprint: str,
    ttl_seconds: float,
) -> Replay | None:
    await connection.execute(text(f"SET LOCAL lock_timeout = '{WAIT_FOR_FIRST_SECONDS}s'"))
    # An expired key is free again (the periodic purge may not have run yet).
    await connection.execute(
        delete(table).where(table.c.actor == actor, table.c.key == key, table.c.expires_at <= func.now())
    )
    expires = func.now() + timedelta(seconds=ttl_seconds)
    claimed = insert(table).values(
        actor=actor, key=key, request_hash=fingerprint, state="IN_PROGRESS", expires_at=expires
    )
    try:
        mine = (await connection.execute(claimed.on_conflict_do_nothing().returning(table.c.key))).scalar_one_or_none()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03" or "lock" in type(exc.orig).__name__.lower():
            raise DomainError(f"A request with this {HEADER} is still in progress", status_code=409) from None
        raise
    if mine is not None:
        return None
    first = (
        await connection.execute(
            select(table.c.request_hash, table.c.state, table.c.status, table.c.body).where(
                table.c.actor == actor, table.c.key == key
            )
        )
    ).one()
    if first.request_hash != fingerprint:
        raise DomainError(f"This {HEADER} was used with a different request", status_code=422)
    if first.state != "COMPLETED":  # only seen if the first committed without completing: never by design
        raise DomainError(f"A request with this {HEADER} is still in progress", status_code=409)
    log.info("idempotent request replayed")
    return Replay(status=int(first.status), body=orjson.loads(first.body))


async def complete(connection: AsyncConnection, table: Table, retry: RetryKey, *, status: int, body: Any) -> None:
    """Inside the protected transaction: store the outcome a repeat will replay."""
    await connection.execute(
        update(table)
        .where(table.c.actor == retry.actor, table.c.key == retry.key)
        .values(state="COMPLETED", status=status, body=orjson.dumps(body))
    )


def create_table_in_migration() -> None:
    """The migration step that creates idempotency_keys (shared, so both services' schemas are the same)."""
    from alembic import op

    from pm_common.database import new_metadata

    table = idempotency_table(new_metadata())
    op.create_table(table.name, *(column._copy() for column in table.columns), *table.constraints)
    op.create_index("ix_idempotency_keys_expires_at", table.name, ["expires_at"])
