"""Publisher of PatientEvent rows to Kafka: idempotent producer (acks=all), acknowledged sends only.

aiokafka's idempotent producer never expires a batch while the broker is down: the send future stays
pending until the broker is back. The publisher therefore waits for acknowledgements at most
send_timeout_seconds, reports the rest as failed (retried later), and remembers the pending futures by
event_id so that a retry of the same row waits for the copy already queued instead of queueing another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

from patient_service.outbox.models import Destination
from patient_service.outbox.relay import Delivery, OutboxRow
from pm_common.kafka import new_producer, start_with_retry
from pm_common.telemetry import continuing

log = logging.getLogger(__name__)

# Errors that a retry cannot fix: the record itself is refused.
_POISON = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)
_INFLIGHT_KEEP_SECONDS = 600.0


class KafkaPublisher:
    """Sends rows to the patient topic (key = patient id) once the producer has started."""

    destination = Destination.PATIENT_EVENT

    def __init__(self, *, bootstrap_servers: str, topic: str, send_timeout_seconds: float, client_id: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._send_timeout_seconds = send_timeout_seconds
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._starter: asyncio.Task[None] | None = None
        self._started = False
        self._failing = False
        self._inflight: dict[uuid.UUID, tuple[asyncio.Future[Any], float]] = {}

    @property
    def ready(self) -> bool:
        """True once the producer has connected to the cluster."""
        return self._started

    @property
    def state(self) -> str:
        """UP; FAILING when the last pass got no acknowledgement; STARTING before the first connection; DOWN."""
        if self._started:
            return "FAILING" if self._failing else "UP"
        return "STARTING" if self._starter is not None and not self._starter.done() else "DOWN"

    def start(self) -> None:
        """Create the producer in the running loop and start it in the background (retries while Kafka is down)."""
        self._producer = new_producer(self._bootstrap_servers, client_id=self._client_id)
        self._starter = asyncio.create_task(self._start(self._producer), name="kafka-producer-start")

    async def _start(self, producer: AIOKafkaProducer) -> None:
        await start_with_retry(producer, what=self._client_id)
        self._started = True

    async def close(self, *, timeout_seconds: float = 5.0) -> None:
        """Stop the producer; give up flushing after timeout_seconds (unacknowledged rows stay PENDING)."""
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), timeout=timeout_seconds)
            except TimeoutError:
                log.warning("kafka producer did not flush before shutdown; pending rows will be sent later")
        self._started = False
        self._inflight.clear()

    async def publish(self, rows: Sequence[OutboxRow]) -> Delivery:
        """Send every row, wait for the broker's acknowledgements together, report per row."""
        producer = self._producer
        delivery = Delivery()
        if producer is None or not self._started:
            delivery.failed.update({row.id: "KafkaProducerNotStarted" for row in rows})
            return delivery
        self._forget_old()
        # Tasks are created (and so start) in row order, so records enter the producer in outbox order.
        tasks = {
            row.id: asyncio.ensure_future(continuing(row.trace_context, self._send(producer, row))) for row in rows
        }
        _, pending = await asyncio.wait(tasks.values(), timeout=self._send_timeout_seconds)
        for task in pending:
            task.cancel()  # a send still queueing is abandoned; a queued record keeps its future in _inflight
        for row in rows:
            task = tasks[row.id]
            if task in pending:
                delivery.failed[row.id] = "KafkaTimeoutError: no acknowledgement in time"
                continue
            error = task.exception()
            if error is None:
                delivery.sent.add(row.id)
                self._inflight.pop(row.event_id, None)
            elif isinstance(error, _POISON):
                delivery.parked[row.id] = type(error).__name__
                self._inflight.pop(row.event_id, None)
            else:
                delivery.failed[row.id] = type(error).__name__
                self._inflight.pop(row.event_id, None)
        self._failing = bool(delivery.failed) and not delivery.sent
        return delivery

    async def _send(self, producer: AIOKafkaProducer, row: OutboxRow) -> None:
        known = self._inflight.get(row.event_id)
        future = known[0] if known is not None else None
        if future is None or (future.done() and (future.cancelled() or future.exception() is not None)):
            future = await producer.send(self._topic, value=row.payload, key=str(row.aggregate_id).encode())
            self._inflight[row.event_id] = (future, time.monotonic())
        await asyncio.shield(future)

    def _forget_old(self) -> None:
        """Drop remembered futures of rows that another relay or replica has meanwhile delivered."""
        if len(self._inflight) < 1000:
            return
        cutoff = time.monotonic() - _INFLIGHT_KEEP_SECONDS
        for event_id, (future, since) in list(self._inflight.items()):
            if future.done() or since < cutoff:
                del self._inflight[event_id]
