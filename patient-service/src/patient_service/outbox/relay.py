"""The relay: claims pending outbox rows (FOR UPDATE SKIP LOCKED), delivers them, records the outcome.

One relay per destination runs in every worker of every replica. A pass is one transaction: claim a
batch, hand it to the publisher, mark what was acknowledged SENT, give failed rows a capped exponential
backoff and park poison rows. Rows locked by another relay are skipped, so no row is delivered twice
by two relays in the same pass; a crash between delivery and commit only means a repeat later
(at-least-once: consumers deduplicate on event_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.outbox.metrics import record_pass
from patient_service.outbox.models import Destination

log = logging.getLogger(__name__)

# Oldest eligible rows of one destination, never a row while an older row of the same patient is still
# pending: that keeps per-patient order across batches, retries and replicas (and one row per patient
# per batch). SKIP LOCKED lets several relays drain the table side by side.
# Written so that no plan depends on fresh statistics (the planner's view of the partial indexes lags
# behind bursts of writes): the driving scan walks ix_outbox_pending (destination, id) in id order and
# stops after :limit rows, and "is this the patient's oldest pending row" is a correlated subquery, always
# an index probe. The NOT EXISTS form it replaces got plans that walked the whole primary key (75-160 ms
# per pass with an empty backlog once the table held 200,000 sent rows) or compared every pending row
# with every other (bench/README.md).
_CLAIM = text(
    """
    SELECT o.id, o.event_id, o.aggregate_id, o.event_type, o.payload, o.attempts, o.trace_context
    FROM outbox AS o
    WHERE o.state = 'PENDING'
      AND o.destination = :destination
      AND o.next_attempt_at <= now()
      AND o.id = (
        SELECT min(first.id) FROM outbox AS first
        WHERE first.state = 'PENDING'
          AND first.destination = o.destination
          AND first.aggregate_id = o.aggregate_id
      )
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
    """
)
# Delivered rows keep no copy of what they carried (names and emails): the outbox is a queue, not an archive.
_MARK_SENT = text(
    "UPDATE outbox SET state = 'SENT', sent_at = now(), last_error = NULL, payload = ''::bytea WHERE id = ANY(:ids)"
)
_MARK_RETRY = text(
    """
    UPDATE outbox
    SET attempts = attempts + 1,
        next_attempt_at = now() + make_interval(secs => :delay),
        last_error = :error
    WHERE id = :id
    """
)
_MARK_PARKED = text("UPDATE outbox SET state = 'PARKED', attempts = attempts + 1, last_error = :error WHERE id = :id")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A claimed row: what a publisher needs to deliver it."""

    id: int
    event_id: uuid.UUID
    aggregate_id: uuid.UUID
    event_type: str
    payload: bytes
    attempts: int
    trace_context: str | None = None  # W3C context of the request that wrote it (pm_common.telemetry)


@dataclass
class Delivery:
    """What a publisher did with a batch. Errors are short codes or class names, never patient data."""

    sent: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)  # retry later with backoff
    parked: dict[int, str] = field(default_factory=dict)  # poison: will never succeed as it is


class Publisher(Protocol):
    """Delivers outbox rows of one destination."""

    @property
    def destination(self) -> Destination: ...

    @property
    def ready(self) -> bool:
        """False while the client cannot send at all (e.g. the Kafka producer has not started yet)."""
        ...

    async def publish(self, rows: Sequence[OutboxRow]) -> Delivery: ...


@dataclass(frozen=True)
class PassResult:
    """Counts of one relay pass."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    parked: int = 0


def backoff_seconds(attempts: int, *, initial_seconds: float, max_seconds: float) -> float:
    """Capped exponential backoff with +-20 % jitter (so replicas do not retry in lockstep)."""
    base = min(initial_seconds * 2.0 ** min(attempts, 30), max_seconds)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)


class OutboxRelay:
    """Drains one destination's pending rows until cancelled; wakes on nudge() or every poll interval."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        publisher: Publisher,
        batch_size: int = 100,
        poll_interval_seconds: float = 0.2,
        initial_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval_seconds = poll_interval_seconds
        self.initial_backoff_seconds = initial_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._wakeup = asyncio.Event()

    @property
    def destination(self) -> Destination:
        """The destination this relay drains."""
        return self.publisher.destination

    def nudge(self) -> None:
        """Wake the relay now (a write just committed rows for it)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Loop forever: drain while there is work, back off while every delivery fails."""
        failing_passes = 0
        while True:
            if not self.publisher.ready:
                await self._sleep(self.poll_interval_seconds, wakeable=False)
                continue
            try:
                result = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down or a bug: keep the loop alive, try again later
                log.warning(
                    "outbox pass failed",
                    extra={"destination": self.destination.value, "error": type(exc).__name__},
                )
                result = PassResult(failed=1)
            if result.failed and not result.sent:
                # Nothing got through: the peer is probably down. Back off the whole loop, not only the rows.
                failing_passes += 1
                delay = backoff_seconds(
                    failing_passes - 1,
                    initial_seconds=self.initial_backoff_seconds,
                    max_seconds=self.max_backoff_seconds,
                )
                await self._sleep(delay, wakeable=False)
                continue
            failing_passes = 0
            if result.claimed < self.batch_size:
                await self._sleep(self.poll_interval_seconds, wakeable=True)

    async def drain_once(self) -> PassResult:
        """One pass: claim up to batch_size rows, deliver them, record the outcomes, commit."""
        async with self.engine.begin() as connection:
            claimed = (
                await connection.execute(_CLAIM, {"destination": self.destination.value, "limit": self.batch_size})
            ).all()
            if not claimed:
                return PassResult()
            rows = [
                OutboxRow(
                    id=r.id,
                    event_id=r.event_id,
                    aggregate_id=r.aggregate_id,
                    event_type=r.event_type,
                    payload=bytes(r.payload),
                    attempts=r.attempts,
                    trace_context=r.trace_context,
                )
                for r in claimed
            ]
            delivery = await self.publisher.publish(rows)
            attempts = {row.id: row.attempts for row in rows}
            if delivery.sent:
                await connection.execute(_MARK_SENT, {"ids": sorted(delivery.sent)})
            if delivery.failed:
                await connection.execute(
                    _MARK_RETRY,
                    [
                        {
                            "id": row_id,
                            "error": error[:500],
                            "delay": backoff_seconds(
                                attempts[row_id],
                                initial_seconds=self.initial_backoff_seconds,
                                max_seconds=self.max_backoff_seconds,
                            ),
                        }
                        for row_id, error in delivery.failed.items()
                    ],
                )
            if delivery.parked:
                await connection.execute(
                    _MARK_PARKED, [{"id": row_id, "error": error[:500]} for row_id, error in delivery.parked.items()]
                )
        result = PassResult(
            claimed=len(rows), sent=len(delivery.sent), failed=len(delivery.failed), parked=len(delivery.parked)
        )
        record_pass(self.destination.value, claimed=result.claimed, failed=result.failed, parked=result.parked)
        self._log(result, delivery)
        return result

    def _log(self, result: PassResult, delivery: Delivery) -> None:
        extra = {
            "destination": self.destination.value,
            "claimed": result.claimed,
            "sent": result.sent,
            "failed": result.failed,
            "parked": result.parked,
        }
        if delivery.parked:
            log.error("outbox rows parked", extra={**extra, "row_ids": sorted(delivery.parked)})
        if delivery.failed:
            errors = sorted(set(delivery.failed.values()))[:5]
            log.warning("outbox deliveries failed, will retry", extra={**extra, "errors": errors})
        else:
            log.debug("outbox pass", extra=extra)

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        if wakeable:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)
        else:
            await asyncio.sleep(seconds)
        self._wakeup.clear()


class OutboxSignal:
    """What request handlers use to wake the relays of this process after a commit."""

    def __init__(self, relays: Sequence[OutboxRelay] = ()) -> None:
        self._relays = tuple(relays)

    def notify(self, *destinations: Destination) -> None:
        """Nudge the relays of the given destinations (all when none is given)."""
        for relay in self._relays:
            if not destinations or relay.destination in destinations:
                relay.nudge()
