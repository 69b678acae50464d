"""analytics-service: the summary API, and the Kafka consumer that its lifespan runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from analytics_service.config import SERVICE, Settings
from analytics_service.consumer import EventConsumer
from analytics_service.events import views
from analytics_service.observability import consumer_lag
from pm_common.app import build_app
from pm_common.auth import AUTH_ERROR_HANDLERS
from pm_common.database import DATABASE_ERROR_HANDLERS, database_check, engine_from
from pm_common.health import health_router
from pm_common.metrics import add_scrape_hook
from pm_common.settings import jwt_key, load_settings
from pm_common.tokens import TokenVerifier


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the engine and the consumer live exactly as long as it (one of each per uvicorn worker)."""
    settings = settings or load_settings(Settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from(settings)
        consumer = EventConsumer(settings=settings, engine=engine)
        app.state.engine = engine
        app.state.token_verifier = TokenVerifier(jwt_key(settings.jwt_secret))
        app.state.consumer = consumer
        consumer.start()  # returns at once: the service serves while Kafka is still unreachable
        try:
            yield
        finally:
            await consumer.stop()
            await engine.dispose()

    health = health_router(
        checks={"database": database_check, "kafka-consumer": _consumer_check},
        details={"consumer": _consumer_details},
    )
    app = build_app(
        settings=settings,
        title=SERVICE,
        description="Counts patient events from Kafka (each once) and serves the totals.",
        routers=[views.router, health],
        lifespan=lifespan,
        error_handlers={**DATABASE_ERROR_HANDLERS, **AUTH_ERROR_HANDLERS},
    )
    add_scrape_hook(app, consumer_lag)  # kafka_consumer_lag in /metrics
    return app


async def _consumer_check(request: Request) -> bool:
    """The consumer polled within CONSUMER_MAX_POLL_AGE_SECONDS (or is still starting)."""
    consumer: EventConsumer = request.app.state.consumer
    return consumer.status().healthy


async def _consumer_details(request: Request) -> dict[str, Any]:
    consumer: EventConsumer = request.app.state.consumer
    status = consumer.status()
    return {
        "state": status.state,
        "problem": status.problem,
        "lastPollAgeSeconds": status.last_poll_age_seconds,
        "assignedPartitions": status.assigned_partitions,
    }
