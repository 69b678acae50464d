"""Recording and reading the trail: writes in the write's transaction, reads and refusals in batches."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patient_service.audit.models import Action, audit_events
from pm_common.http import DomainError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One access to patient data (never the patient's data itself)."""

    at: datetime
    actor: str | None
    role: str | None
    action: Action
    patient_id: uuid.UUID | None
    status: int
    request_id: str | None
    client_address: str | None
    rows: int | None = None


async def record_in(connection: AsyncConnection, event: AuditEvent) -> None:
    """Insert the record of a write inside the write's own transaction (both commit, or neither)."""
    await connection.execute(audit_events.insert(), [asdict(event)])


class AuditWriter:
    """Batches the records of reads and refusals: one INSERT per flush instead of one per request.

    Records wait at most `interval_seconds` (or until `batch_size` are waiting). A clean shutdown flushes
    everything; a crash loses what waited, at most one interval's worth. While PostgreSQL is down the
    records stay queued (up to `max_pending`, then the oldest are dropped, counted and logged).
    """

    def __init__(
        self, engine: AsyncEngine, *, interval_seconds: float = 0.5, batch_size: int = 500, max_pending: int = 50_000
    ) -> None:
        self._engine = engine
        self._interval_seconds = interval_seconds
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending: list[AuditEvent] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: two would insert the same batch twice
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def record(self, event: AuditEvent) -> None:
        """Queue a record (never blocks the request)."""
        self._pending.append(event)
        if len(self._pending) > self._max_pending:
            del self._pending[0]
            self.dropped += 1
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def start(self) -> None:
        """Begin flushing in the background (call inside the running loop)."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self) -> None:
        """Stop the background flushing and write everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write what is queued now; on failure keep it queued for the next attempt."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._batch_size]
            try:
                async with self._engine.begin() as connection:
                    await connection.execute(audit_events.insert(), [asdict(event) for event in batch])
            except Exception as exc:  # the database is down or refused the batch: keep it, retry next time
                log.warning(
                    "audit records not written yet", extra={"error": type(exc).__name__, "queued": len(self._pending)}
                )
                return
            del self._pending[: len(batch)]

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_seconds)
            self._wake.clear()
            await self.flush()


@dataclass(frozen=True)
class AuditPage:
    """One page of the trail, newest first, and the cursor of the next page (None: no more)."""

    events: list[dict[str, object]]
    next_cursor: str | None


def _encode_cursor(at: datetime, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{event_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, event_id = raw.partition("|")
        return datetime.fromisoformat(at), int(event_id)
    except (ValueError, UnicodeDecodeError):
        raise DomainError("Invalid cursor") from None


async def find_events(
    engine: AsyncEngine,
    *,
    patient_id: uuid.UUID | None = None,
    actor: str | None = None,
    actions: Sequence[Action] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> AuditPage:
    """Records matching every given filter, newest first, at most `limit`."""
    conditions = []
    if patient_id is not None:
        conditions.append(audit_events.c.patient_id == patient_id)
    if actor is not None:
        conditions.append(audit_events.c.actor == actor)
    if actions:
        conditions.append(audit_events.c.action.in_([a.value for a in actions]))
    if since is not None:
        conditions.append(audit_events.c.at >= since)
    if until is not None:
        conditions.append(audit_events.c.at < until)
    if cursor is not None:
        at, event_id = _decode_cursor(cursor)
        conditions.append(tuple_(audit_events.c.at, audit_events.c.id) < tuple_(at, event_id))
    query = (
        select(audit_events)
        .where(*conditions)
        .order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
        .limit(limit + 1)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    events: list[dict[str, object]] = [
        {
            "at": row["at"].isoformat().replace("+00:00", "Z"),
            "actor": row["actor"],
            "role": row["role"],
            "action": row["action"],
            "patientId": str(row["patient_id"]) if row["patient_id"] else None,
            "rows": row["rows"],
            "status": row["status"],
            "requestId": row["request_id"],
        }
        for row in rows
    ]
    next_cursor = _encode_cursor(rows[-1]["at"], rows[-1]["id"]) if more and rows else None
    return AuditPage(events=events, next_cursor=next_cursor)
