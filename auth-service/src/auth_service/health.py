"""GET /health: UP when the database answers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from auth_service.deps import EngineDep

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 2.0


@router.get("/health", summary="Liveness and readiness")
async def health(engine: EngineDep) -> JSONResponse:
    """200 `{"status": "UP"}` when PostgreSQL answers within 2 s, else 503 naming the database."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure (refused, timeout, auth) means the service cannot serve logins
        return JSONResponse({"status": "DOWN", "checks": {"database": "DOWN"}}, status_code=503)
    return JSONResponse({"status": "UP", "checks": {"database": "UP"}})
