"""Storing what the consumer learned (exactly once per event) and reading the summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from analytics_service.events.models import event_counts, invalid_event_counts, processed_events
from analytics_service.events.parsing import EVENT_TYPES, InvalidRecord, PatientEvent


@dataclass(frozen=True)
class BatchResult:
    """What one stored batch changed."""

    counted: int
    invalid: int
    duplicates: int


@dataclass(frozen=True)
class Summary:
    """Totals served at /analytics/summary."""

    events_by_type: dict[str, int]
    invalid_events: int
    last_event_at: datetime | None

    @property
    def total_events(self) -> int:
        """All valid events, whatever their type."""
        return sum(self.events_by_type.values())


def _first_per_key(items: Sequence[PatientEvent | InvalidRecord]) -> list[PatientEvent | InvalidRecord]:
    unique: dict[str, PatientEvent | InvalidRecord] = {}
    for item in items:
        unique.setdefault(item.dedupe_key, item)
    # Sorted keys: concurrent batches (a rebalance hands a partition over) lock rows in one order.
    return [unique[key] for key in sorted(unique)]


async def unseen_keys(engine: AsyncEngine, *, keys: Sequence[str]) -> set[str]:
    """The keys not yet in processed_events (so a re-delivered invalid record is not dead-lettered again)."""
    if not keys:
        return set()
    async with engine.connect() as connection:
        seen = await connection.scalars(
            select(processed_events.c.event_id).where(processed_events.c.event_id.in_(keys))
        )
        return set(keys) - set(seen)


async def record_batch(
    engine: AsyncEngine, *, events: Sequence[PatientEvent], invalid: Sequence[InvalidRecord]
) -> BatchResult:
    """In one transaction: remember every record's key and count only those not seen before."""
    items = _first_per_key([*events, *invalid])
    if not items:
        return BatchResult(counted=0, invalid=0, duplicates=0)
    rows = [
        {
            "event_id": item.dedupe_key,
            "event_type": item.event_type if isinstance(item, PatientEvent) else None,
            "patient_id": item.patient_id if isinstance(item, PatientEvent) else None,
            "topic": item.position.topic,
            "kafka_partition": item.position.partition,
            "kafka_offset": item.position.offset,
        }
        for item in items
    ]
    remember = (
        insert(processed_events)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[processed_events.c.event_id])
        .returning(processed_events.c.event_id)
    )
    async with engine.begin() as connection:
        new_keys = set(await connection.scalars(remember))
        new_events = [i for i in items if isinstance(i, PatientEvent) and i.dedupe_key in new_keys]
        new_invalid = [i for i in items if isinstance(i, InvalidRecord) and i.dedupe_key in new_keys]
        if new_events:
            per_type = Counter(e.event_type for e in new_events)
            latest: dict[str, datetime | None] = {}
            for event in new_events:
                current = latest.get(event.event_type)
                if event.occurred_at is not None and (current is None or event.occurred_at > current):
                    latest[event.event_type] = event.occurred_at
            upsert = insert(event_counts).values(
                [{"event_type": t, "count": n, "last_event_at": latest.get(t)} for t, n in sorted(per_type.items())]
            )
            await connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[event_counts.c.event_type],
                    set_={
                        "count": event_counts.c.count + upsert.excluded.count,
                        # GREATEST ignores NULLs: an event without a time keeps the previous latest.
                        "last_event_at": func.greatest(event_counts.c.last_event_at, upsert.excluded.last_event_at),
                    },
                )
            )
        if new_invalid:
            per_reason = Counter(str(i.reason) for i in new_invalid)
            upsert = insert(invalid_event_counts).values(
                [{"reason": r, "count": n, "last_at": func.now()} for r, n in sorted(per_reason.items())]
            )
            await connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[invalid_event_counts.c.reason],
                    set_={
                        "count": invalid_event_counts.c.count + upsert.excluded.count,
                        "last_at": upsert.excluded.last_at,
                    },
                )
            )
    return BatchResult(
        counted=len(new_events), invalid=len(new_invalid), duplicates=len(events) + len(invalid) - len(new_keys)
    )


async def summary(engine: AsyncEngine) -> Summary:
    """Counts per known type (zeros included), records set aside, and the time of the latest event."""
    async with engine.connect() as connection:
        # One snapshot for both reads, so the totals belong together while batches are being stored.
        await connection.execution_options(isolation_level="REPEATABLE READ")
        counts = (
            await connection.execute(
                select(event_counts.c.event_type, event_counts.c.count.label("n"), event_counts.c.last_event_at)
            )
        ).all()
        invalid = (
            await connection.execute(select(func.coalesce(func.sum(invalid_event_counts.c.count), 0)))
        ).scalar_one()
    by_type = dict.fromkeys(EVENT_TYPES, 0)
    by_type.update({row.event_type: int(row.n) for row in counts})
    times = [row.last_event_at for row in counts if row.last_event_at is not None]
    return Summary(events_by_type=by_type, invalid_events=int(invalid), last_event_at=max(times, default=None))
