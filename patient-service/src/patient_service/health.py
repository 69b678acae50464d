"""GET /health: 200 while the database answers; Kafka, billing and the outbox backlog as information."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from patient_service.deps import EngineDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

_BACKLOG = text(
    """
    SELECT
      (SELECT count(*) FROM outbox WHERE state = 'PENDING') AS pending,
      (SELECT extract(epoch FROM now() - min(created_at)) FROM outbox WHERE state = 'PENDING') AS oldest_s,
      (SELECT count(*) FROM outbox WHERE state = 'PARKED') AS parked
    """
)
HEALTH_TIMEOUT_S = 3.0


@router.get("/health", summary="Health")
async def health(request: Request, engine: EngineDep) -> JSONResponse:
    """UP (200) when PostgreSQL answers, else DOWN (503); Kafka and billing never make it DOWN."""
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), engine.connect() as connection:
            backlog = (await connection.execute(_BACKLOG)).one()
        checks["database"] = "UP"
        checks["outbox"] = {
            "pending": int(backlog.pending),
            "oldestPendingSeconds": round(float(backlog.oldest_s or 0.0), 3),
            "parked": int(backlog.parked),
        }
    except Exception as exc:  # any failure to reach PostgreSQL in time
        log.warning("health: database check failed", extra={"error": type(exc).__name__})
        checks["database"] = "DOWN"
    state = request.app.state
    checks["kafka"] = state.kafka.state if state.relays_enabled else "DISABLED"
    checks["billing"] = state.billing.state if state.relays_enabled else "DISABLED"
    up = checks["database"] == "UP"
    return JSONResponse({"status": "UP" if up else "DOWN", "checks": checks}, status_code=200 if up else 503)
