"""The Kafka consumer of analytics-service: one background task per process, started in the lifespan.

Per batch: parse every record; set invalid ones aside on the dead-letter topic (acknowledged before
going on); store the valid ones and the processed keys in one database transaction; then commit the
batch's offsets. Delivery is at least once, counting is exactly once: a record delivered again (after a
crash, a rebalance or a failed commit) finds its key stored and is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError
from sqlalchemy.ext.asyncio import AsyncEngine

from analytics_service.config import SERVICE, Settings
from analytics_service.events.parsing import InvalidRecord, PatientEvent, Position, parse_record
from analytics_service.events.service import record_batch, unseen_keys
from analytics_service.observability import RECORDS_COUNTED, RECORDS_DEAD_LETTERED, handling
from pm_common.kafka import new_producer, start_with_retry

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_SECONDS = 10.0
DEAD_LETTER_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 15.0

State = Literal["starting", "running", "restarting", "stopped"]
Batch = Mapping[TopicPartition, Sequence[Any]]  # aiokafka ConsumerRecords, grouped by partition


@dataclass(frozen=True)
class ConsumerStatus:
    """What /health reports about the consumer."""

    state: State
    healthy: bool
    problem: str | None
    last_poll_age_seconds: float | None
    assigned_partitions: list[str]


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """Before partitions move to another member, commit what was stored for them."""

    def __init__(self, owner: EventConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _names(assigned)})


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)


class EventConsumer:
    """Consumes the patient topic into the analytics database; restarts itself after unexpected failures."""

    def __init__(self, *, settings: Settings, engine: AsyncEngine) -> None:
        self._settings = settings
        self._engine = engine
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Held while a batch is processed: a revoke waits for it, then commits its offsets.
        self._batch_lock = asyncio.Lock()
        self._pending: dict[TopicPartition, int] = {}  # stored but not yet committed: next offset per partition
        self._consumer: AIOKafkaConsumer | None = None
        self.state: State = "starting"
        self._state_since = time.monotonic()
        self.last_poll_at: float | None = None
        self._failing_since: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background task (returns at once; Kafka may still be unreachable)."""
        self._task = asyncio.create_task(self._supervise(), name="analytics-consumer")

    async def stop(self) -> None:
        """Finish the batch in flight, commit, leave the group; cancel if that takes too long."""
        self._stopping.set()
        task = self._task
        if task is None:
            return
        if self.state != "running":  # still waiting for Kafka: nothing to finish
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_SECONDS)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._set_state("stopped")

    def status(self) -> ConsumerStatus:
        """Healthy while polling regularly (or while starting, within the grace period)."""
        now = time.monotonic()
        age = None if self.last_poll_at is None else round(now - self.last_poll_at, 3)
        consumer = self._consumer
        assigned = _names(consumer.assignment()) if consumer is not None and self.state == "running" else []
        problem: str | None = None
        if self.state in ("starting", "restarting"):
            if now - self._state_since > self._settings.consumer_start_grace_seconds:
                problem = "Kafka not reachable"
        elif self.state == "stopped":
            problem = "consumer stopped"
        elif age is None or age > self._settings.consumer_max_poll_age_seconds:
            problem = "consumer has not polled recently"
        elif (
            self._failing_since is not None and now - self._failing_since > self._settings.consumer_max_poll_age_seconds
        ):
            problem = "records cannot be stored"
        return ConsumerStatus(
            state=self.state,
            healthy=problem is None,
            problem=problem,
            last_poll_age_seconds=age,
            assigned_partitions=assigned,
        )

    @property
    def kafka_consumer(self) -> AIOKafkaConsumer | None:
        """The running aiokafka consumer (None while starting or restarting); /metrics reads its lag."""
        return self._consumer

    def _set_state(self, state: State) -> None:
        self.state = state
        self._state_since = time.monotonic()

    async def _supervise(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a consumer that died is rebuilt, never left dead
                log.exception("consumer failed, restarting", extra={"error": type(error).__name__})
                self._set_state("restarting")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, self._settings.consumer_retry_max_delay_seconds)

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        session_timeout_ms = round(s.consumer_session_timeout_seconds * 1000)
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id=SERVICE,
            group_id=s.kafka_group_id,
            enable_auto_commit=False,  # offsets are committed after the database write, never before
            auto_offset_reset="earliest",  # a new group counts everything still on the topic
            isolation_level="read_committed",
            max_poll_interval_ms=round(s.consumer_max_poll_interval_seconds * 1000),
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=min(3000, session_timeout_ms // 3),
            request_timeout_ms=max(40_000, session_timeout_ms + 5000),
            retry_backoff_ms=500,  # also paces aiokafka's error lines while the broker is away
            metadata_max_age_ms=60_000,
        )

    async def _run(self) -> None:
        s = self._settings
        consumer = self._new_consumer()
        consumer.subscribe([s.kafka_topic], listener=_CommitOnRevoke(self))
        producer = new_producer(s.kafka_bootstrap_servers, client_id="analytics-service-dlt")
        try:
            await start_with_retry(producer, what="dead-letter producer")
            await start_with_retry(consumer, what="consumer")
            self._consumer = consumer
            self.last_poll_at = time.monotonic()  # joined just now: the first poll is still to come
            self._set_state("running")
            log.info("consuming", extra={"topic": s.kafka_topic, "group": s.kafka_group_id})
            await self._poll_loop(consumer, producer)
        finally:
            if self._consumer is consumer:
                await self._commit_pending(consumer)
            self._consumer = None
            self._pending.clear()
            with contextlib.suppress(Exception):
                await consumer.stop()  # leaves the group, so its partitions move on at once
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _poll_loop(self, consumer: AIOKafkaConsumer, producer: Any) -> None:
        s = self._settings
        delay = 0.2
        while not self._stopping.is_set():
            batch: Batch = await consumer.getmany(
                timeout_ms=round(s.consumer_poll_timeout_seconds * 1000), max_records=s.consumer_batch_size
            )
            self.last_poll_at = time.monotonic()
            if not batch:
                continue
            try:
                async with self._batch_lock:
                    await handling(batch, self._handle(batch, consumer, producer))  # traced, logged with ids
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Nothing of this batch was committed: read it again after a pause (the database or
                # Kafka may be back by then); already stored records are skipped as duplicates.
                self._failing_since = self._failing_since or time.monotonic()
                log.warning(
                    "batch not stored, retrying", extra={"error": type(error).__name__, "retry_in_seconds": delay}
                )
                for tp, records in batch.items():
                    with contextlib.suppress(IllegalStateError):  # no longer ours after a rebalance
                        consumer.seek(tp, records[0].offset)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, s.consumer_retry_max_delay_seconds)
            else:
                self._failing_since = None
                delay = 0.2

    async def _handle(self, batch: Batch, consumer: AIOKafkaConsumer, producer: Any) -> None:
        events: list[PatientEvent] = []
        invalid: list[tuple[Any, InvalidRecord]] = []
        for records in batch.values():
            for record in records:
                position = Position(record.topic, record.partition, record.offset)
                parsed = parse_record(position=position, value=record.value, timestamp_ms=record.timestamp)
                if isinstance(parsed, PatientEvent):
                    events.append(parsed)
                else:
                    invalid.append((record, parsed))
        if invalid:
            fresh = await unseen_keys(self._engine, keys=[item.dedupe_key for _, item in invalid])
            await self._dead_letter([(r, item) for r, item in invalid if item.dedupe_key in fresh], producer)
        result = await record_batch(self._engine, events=events, invalid=[item for _, item in invalid])
        RECORDS_COUNTED.inc(result.counted)
        if result.counted or result.invalid or result.duplicates:
            log.info(
                "batch stored",
                extra={"counted": result.counted, "invalid": result.invalid, "duplicates": result.duplicates},
            )
        for tp, records in batch.items():
            self._pending[tp] = records[-1].offset + 1
        await self._commit_pending(consumer)

    async def _dead_letter(self, items: list[tuple[Any, InvalidRecord]], producer: Any) -> None:
        """Send each record unchanged (value, key, headers) plus headers saying why and where it came from."""
        if not items:
            return
        async with asyncio.timeout(DEAD_LETTER_TIMEOUT_SECONDS):
            deliveries = []
            for record, item in items:
                headers = [
                    *(record.headers or ()),
                    ("dlt.reason", str(item.reason).encode()),
                    ("dlt.original.topic", record.topic.encode()),
                    ("dlt.original.partition", str(record.partition).encode()),
                    ("dlt.original.offset", str(record.offset).encode()),
                    ("dlt.original.timestamp", str(record.timestamp).encode()),
                ]
                deliveries.append(
                    await producer.send(
                        self._settings.kafka_dlt_topic, value=record.value, key=record.key, headers=headers
                    )
                )
            await asyncio.gather(*deliveries)  # acknowledged by the broker (acks=all) before counting
        RECORDS_DEAD_LETTERED.inc(len(items))
        for _, item in items:
            # Where and why only: the record's content (patient data, or garbage) is never logged.
            log.warning(
                "invalid record set aside",
                extra={
                    "topic": item.position.topic,
                    "partition": item.position.partition,
                    "offset": item.position.offset,
                    "reason": str(item.reason),
                },
            )

    # -- offsets -----------------------------------------------------------------------------------
    async def _commit_pending(self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None) -> None:
        """Commit stored-but-uncommitted offsets of assigned partitions; a failure only means re-delivery."""
        assigned = consumer.assignment()
        offsets = {tp: o for tp, o in self._pending.items() if tp in assigned and (only is None or tp in only)}
        if not offsets:
            return
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_SECONDS):
                await consumer.commit(offsets)
        except Exception as error:  # CommitFailedError after a rebalance, Kafka down, timeout
            log.warning(
                "offset commit failed; those records will be delivered again and skipped",
                extra={"error": type(error).__name__},
            )
            return
        for tp, offset in offsets.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Rebalance: wait for the batch in flight, commit what was stored for the revoked partitions."""
        consumer = self._consumer
        async with self._batch_lock:
            if consumer is not None:
                await self._commit_pending(consumer, only=set(revoked))
            for tp in revoked:
                self._pending.pop(tp, None)
        if revoked:
            log.info("partitions revoked", extra={"partitions": _names(set(revoked))})
