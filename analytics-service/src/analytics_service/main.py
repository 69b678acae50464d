"""The analytics-service app: the summary API, health, and the Kafka consumer running in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from analytics_service.config import Settings
from analytics_service.consumer import EventConsumer
from analytics_service.events.views import router as events_router
from analytics_service.health import router as health_router
from pm_common.database import create_engine
from pm_common.http import install_http_basics
from pm_common.server import tune_gc
from pm_common.settings import load_settings

SERVICE = "analytics-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Engine and consumer live exactly as long as the app (one of each per uvicorn worker)."""
    settings: Settings = app.state.settings
    engine = create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.statement_timeout_ms,
        pre_ping=settings.database_pool_pre_ping,
    )
    consumer = EventConsumer(settings=settings, engine=engine)
    app.state.engine = engine
    app.state.consumer = consumer
    consumer.start()  # returns at once: the service serves while Kafka is still unreachable
    tune_gc()
    try:
        yield
    finally:
        await consumer.stop()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings come from the environment when not given (uvicorn's factory call)."""
    if settings is None:
        settings = load_settings(Settings, SERVICE)
    app = FastAPI(
        title="analytics-service",
        summary="Counts patient events from Kafka (each once) and serves the totals.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_http_basics(app)
    app.include_router(events_router)
    app.include_router(health_router)
    return app
