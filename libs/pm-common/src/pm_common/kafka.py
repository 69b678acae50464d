"""Kafka clients configured the way this project needs them (aiokafka's defaults lose data)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)


def new_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) with bounded timeouts; create it inside the running loop."""
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


async def start_with_retry(client: Startable, *, what: str, max_delay_s: float = 10.0) -> None:
    """Start a Kafka client, retrying with capped exponential backoff while the broker is unreachable.

    Runs until it succeeds or is cancelled, so call it from a background task when the service must
    serve (and queue work in its outbox) while Kafka is down.
    """
    delay = 0.2
    while True:
        try:
            await client.start()
            log.info("kafka client started", extra={"client": what})
            return
        except Exception as exc:  # KafkaConnectionError and friends: the broker is not there yet
            log.warning(
                "kafka not reachable, retrying",
                extra={"client": what, "error": type(exc).__name__, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
