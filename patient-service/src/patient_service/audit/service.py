"""Recording and reading the trail: writes in the write's transaction, reads and refusals in batches."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patient_service.audit.models import Action, audit_events
from pm_common.batching import Batcher
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

    def values(self) -> dict[str, object]:
        """Its columns' values by name (not dataclasses.asdict: that deep-copies each, ~50 us a create)."""
        return {name: getattr(self, name) for name in AUDIT_COLUMNS}


# The columns of audit_events a record fills, in AuditEvent's order.
AUDIT_COLUMNS = [field.name for field in fields(AuditEvent)]


async def record_in(connection: AsyncConnection, event: AuditEvent) -> None:
    """Insert the record of a write inside the write's own transaction (both commit, or neither)."""
    await connection.execute(audit_events.insert(), event.values())


class AuditWriter:
    """Batches the records of reads and refusals: one INSERT per flush instead of one per request.

    Records wait at most `interval_seconds` (or until 500 are waiting). A clean shutdown flushes
    everything; a crash loses what waited, at most one interval's worth. While PostgreSQL is down the
    records stay queued (up to 50,000, then the oldest are dropped, counted and logged).
    """

    def __init__(self, engine: AsyncEngine, *, interval_seconds: float = 0.5) -> None:
        self._engine = engine
        self._batcher: Batcher[AuditEvent] = Batcher(self._insert, what="audit", interval_seconds=interval_seconds)
        self.record = self._batcher.add
        self.start = self._batcher.start
        self.close = self._batcher.close
        self.flush = self._batcher.flush

    async def _insert(self, batch: list[AuditEvent]) -> None:
        # COPY, not INSERT: a batch of hundreds of read records costs one round trip and almost no CPU here
        # (an executemany INSERT through SQLAlchemy cost ~10 % of the GET path's CPU at 800 reads/s).
        records = [tuple(getattr(event, name) for name in AUDIT_COLUMNS) for event in batch]
        async with self._engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection  # the asyncpg connection
            assert driver is not None
            await driver.copy_records_to_table(audit_events.name, records=records, columns=AUDIT_COLUMNS)


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
