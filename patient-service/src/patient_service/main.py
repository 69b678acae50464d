"""patient-service: patient CRUD, and the outbox relays (to Kafka and to billing) that its lifespan runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from patient_service.audit import views as audit_views
from patient_service.audit.middleware import AuditMiddleware, patient_routes
from patient_service.audit.service import AuditWriter
from patient_service.config import SERVICE, Settings
from patient_service.fhir import views as fhir_views
from patient_service.outbox.billing import BillingPublisher
from patient_service.outbox.kafka import KafkaPublisher
from patient_service.outbox.metrics import backlog_scrape
from patient_service.outbox.relay import OutboxRelay, OutboxSignal
from patient_service.patients import views
from patient_service.patients.fast_reads import FastReads
from patient_service.patients.models import idempotency_keys
from patient_service.patients.schemas import MISSING_FIELD_MESSAGES
from pm_common.app import build_app
from pm_common.auth import AUTH_ERROR_HANDLERS
from pm_common.database import DATABASE_ERROR_HANDLERS, database_check, engine_from, purge_expired_periodically
from pm_common.health import health_router
from pm_common.idempotency import IDEMPOTENCY_ERROR_HANDLERS
from pm_common.metrics import add_scrape_hook
from pm_common.settings import jwt_key, load_settings
from pm_common.tokens import ServiceTokens, TokenVerifier


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for one worker process (uvicorn calls this factory in each worker)."""
    settings = settings or load_settings(Settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from(settings)
        kafka = KafkaPublisher(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.patient_topic,
            send_timeout_seconds=settings.kafka_send_timeout_seconds,
            client_id=SERVICE,
        )
        billing = BillingPublisher(
            target=settings.billing_target,
            deadline_seconds=settings.billing_deadline_seconds,
            credentials=ServiceTokens(jwt_key(settings.jwt_secret), service=SERVICE),
        )
        relays: list[OutboxRelay] = []
        if settings.outbox_relay_enabled:
            kafka.start()  # connects in the background: the service serves (and queues events) while Kafka is down
            billing.start()
            relays = [
                OutboxRelay(
                    engine=engine,
                    publisher=publisher,
                    batch_size=settings.outbox_batch_size,
                    poll_interval_seconds=settings.outbox_poll_interval_seconds,
                    initial_backoff_seconds=settings.outbox_initial_backoff_seconds,
                    max_backoff_seconds=settings.outbox_max_backoff_seconds,
                )
                for publisher in (kafka, billing)
            ]
        tasks = [asyncio.create_task(relay.run(), name=f"outbox-relay-{relay.destination}") for relay in relays]
        purge = purge_expired_periodically(
            engine, tables=(idempotency_keys,), interval_seconds=settings.purge_interval_seconds
        )
        tasks.append(asyncio.create_task(purge, name="purge-expired-idempotency-keys"))
        audit_writer = AuditWriter(engine, interval_seconds=settings.audit_flush_interval_seconds)
        audit_writer.start()
        app.state.audit_writer = audit_writer
        app.state.audit_reads = settings.audit_reads
        app.state.engine = engine
        app.state.token_verifier = TokenVerifier(jwt_key(settings.jwt_secret))
        # Reads are single statements: in autocommit they skip BEGIN and ROLLBACK (two of their round trips).
        # Same pool and connections; SQLAlchemy sets and resets the mode on checkout.
        app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.kafka = kafka
        app.state.billing = billing
        app.state.outbox_signal = OutboxSignal(relays)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await audit_writer.close()  # a clean shutdown loses no record
            await kafka.close()
            await billing.close()
            await engine.dispose()

    health = health_router(
        checks={"database": database_check},
        info={"outbox": _outbox_backlog, "kafka": _relay_state("kafka"), "billing": _relay_state("billing")},
    )
    app = build_app(
        settings=settings,
        title=SERVICE,
        description="Patient records. Changes reach Kafka topic `patient` and billing-service through an outbox.",
        routers=[views.router, fhir_views.router, audit_views.router, health],
        lifespan=lifespan,
        error_handlers={**DATABASE_ERROR_HANDLERS, **AUTH_ERROR_HANDLERS, **IDEMPOTENCY_ERROR_HANDLERS},
        field_overrides=MISSING_FIELD_MESSAGES,
        invalid_path_message="Invalid patient id",
        # GET /patients/{id} and GET /patients (no query string) answered before FastAPI's router.
        fast_paths=[FastReads],
        # No redirect for a trailing slash: behind the gateway its Location would miss the /api prefix.
        redirect_slashes=False,
    )

    # Outermost: it sees the final status of every patient request (401s and 404s included).
    app.add_middleware(AuditMiddleware, classify=patient_routes)
    add_scrape_hook(app, backlog_scrape(_outbox_backlog))  # outbox_pending_rows... in /metrics

    @app.get("/v3/api-docs", include_in_schema=False)
    async def openapi_at_original_path() -> JSONResponse:
        """The OpenAPI document also where the original (springdoc) served it."""
        return JSONResponse(app.openapi())

    return app


_BACKLOG = text(
    """
    SELECT
      (SELECT count(*) FROM outbox WHERE state = 'PENDING') AS pending,
      (SELECT extract(epoch FROM now() - min(created_at)) FROM outbox WHERE state = 'PENDING') AS oldest_seconds,
      (SELECT count(*) FROM outbox WHERE state = 'PARKED') AS parked
    """
)


async def _outbox_backlog(request: Request) -> dict[str, Any] | None:
    """Rows waiting for delivery, the age of the oldest, and rows parked as poison (None: database down)."""
    try:
        async with asyncio.timeout(2.0), request.app.state.engine.connect() as connection:
            backlog = (await connection.execute(_BACKLOG)).one()
    except Exception:  # the database check beside this one reports the outage
        return None
    return {
        "pending": int(backlog.pending),
        "oldestPendingSeconds": round(float(backlog.oldest_seconds or 0.0), 3),
        "parked": int(backlog.parked),
    }


def _relay_state(name: str) -> Any:
    async def state(request: Request) -> str:
        settings: Settings = request.app.state.settings
        return getattr(request.app.state, name).state if settings.outbox_relay_enabled else "DISABLED"

    return state
