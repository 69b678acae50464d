"""Tracing and metrics of the consumer: each batch is handled in a span continuing its records' trace
(pm_common.telemetry.consuming, from the W3C headers patient-service's producer wrote), with their
request ids as the log context; records counted, records dead-lettered, and the lag per partition (read
from the consumer when /metrics is scraped)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import Request
from prometheus_client import Counter, Gauge

from pm_common.telemetry import consuming

T = TypeVar("T")

RECORDS_COUNTED = Counter("analytics_records_counted", "Patient events counted (each event once)")
RECORDS_DEAD_LETTERED = Counter("analytics_records_dead_lettered", "Invalid records set aside on the dead-letter topic")
CONSUMER_LAG = Gauge(
    "kafka_consumer_lag", "Records on the partition not yet consumed (highwater - position)", ["topic", "partition"]
)


async def handling(batch: Mapping[Any, Sequence[Any]], work: Awaitable[T]) -> T:
    """Await `work` (the batch's handling) inside the batch's consumer span and log context."""
    with consuming("patient process", [record.headers for records in batch.values() for record in records]):
        return await work


async def consumer_lag(request: Request) -> None:
    """Scrape hook: the lag of every assigned partition (none while the consumer is not running)."""
    consumer = request.app.state.consumer.kafka_consumer
    CONSUMER_LAG.clear()
    if consumer is None:
        return
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        position = await consumer.position(tp)
        CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
