"""Kafka clients (extra `kafka`) configured the way this project needs them (aiokafka's defaults lose data)."""

from __future__ import annotations

import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from pm_common.telemetry import instrument_aiokafka

log = logging.getLogger(__name__)


def new_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) with bounded timeouts; create it inside the running loop."""
    instrument_aiokafka()  # traced sends (and consumers) in every service that uses Kafka
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,  # implies acks="all": a record counts as sent once all replicas have it
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
        metadata_max_age_ms=60_000,
    )


class Startable(Protocol):
    """An aiokafka client: producer or consumer."""

    async def start(self) -> None: ...


async def start_with_retry(client: Startable, *, what: str, max_delay_seconds: float = 10.0) -> None:
    """Start a Kafka client, retrying with capped exponential backoff while the broker is unreachable.

    Runs until it succeeds or is cancelled, so call it from a background task when the service must
    serve (and queue work in its outbox) while Kafka is down.
    """

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else None
        log.warning(
            "kafka not reachable, retrying",
            extra={"client": what, "error": type(error).__name__, "retry_in_seconds": delay},
        )

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception),  # KafkaConnectionError and friends: the broker is not there yet
        wait=wait_exponential(multiplier=0.2, max=max_delay_seconds),
        before_sleep=log_retry,
    ):
        with attempt:
            await client.start()
    log.info("kafka client started", extra={"client": what})
