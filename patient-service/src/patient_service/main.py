"""The FastAPI application of patient-service: create_app() builds it; the lifespan owns every client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from patient_service import health
from patient_service.config import SERVICE_NAME, Settings
from patient_service.outbox.billing import BillingPublisher
from patient_service.outbox.kafka import KafkaPublisher
from patient_service.outbox.relay import OutboxRelay, OutboxSignal
from patient_service.patients import views as patient_views
from patient_service.patients.schemas import MISSING_FIELD_MESSAGES
from pm_common.database import create_engine
from pm_common.http import install_http_basics
from pm_common.server import tune_gc
from pm_common.settings import load_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for one worker process (uvicorn calls this factory in each worker)."""
    settings = settings if settings is not None else load_settings(Settings, SERVICE_NAME)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size, pre_ping=settings.database_pool_pre_ping
        )
        kafka = KafkaPublisher(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.patient_topic,
            send_timeout_s=settings.kafka_send_timeout_seconds,
            client_id=SERVICE_NAME,
        )
        billing = BillingPublisher(target=settings.billing_target, deadline_s=settings.billing_deadline_seconds)
        relays: list[OutboxRelay] = []
        if settings.outbox_relay_enabled:
            kafka.start()  # connects in the background: the service serves (and queues events) while Kafka is down
            billing.start()
            relays = [
                OutboxRelay(
                    engine=engine,
                    publisher=publisher,
                    batch_size=settings.outbox_batch_size,
                    poll_interval_s=settings.outbox_poll_interval_seconds,
                    initial_backoff_s=settings.outbox_initial_backoff_seconds,
                    max_backoff_s=settings.outbox_max_backoff_seconds,
                )
                for publisher in (kafka, billing)
            ]
        tasks = [asyncio.create_task(relay.run(), name=f"outbox-relay-{relay.destination}") for relay in relays]
        app.state.settings = settings
        app.state.engine = engine
        # Reads are single statements: in autocommit they skip BEGIN and ROLLBACK (two of their round trips).
        # Same pool and connections; SQLAlchemy sets and resets the mode on checkout.
        app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.kafka = kafka
        app.state.billing = billing
        app.state.relays = relays
        app.state.relays_enabled = settings.outbox_relay_enabled
        app.state.outbox_signal = OutboxSignal(relays)
        tune_gc()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await kafka.close()
            await billing.close()
            await engine.dispose()

    app = FastAPI(
        title="patient-service",
        version="1.0.0",
        description="Patient records. Changes reach Kafka topic `patient` and billing-service through an outbox.",
        lifespan=lifespan,
        # No redirect for a trailing slash: behind the gateway its Location would miss the /api prefix.
        redirect_slashes=False,
    )
    app.include_router(patient_views.router)
    app.include_router(health.router)
    install_http_basics(app, field_overrides=MISSING_FIELD_MESSAGES, invalid_path_message="Invalid patient id")

    @app.get("/v3/api-docs", include_in_schema=False)
    async def openapi_at_original_path() -> JSONResponse:
        """The OpenAPI document also where the original (springdoc) served it."""
        return JSONResponse(app.openapi())

    return app
