"""GET /health: UP when the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auth_service.deps import EngineDep
from pm_common.database import database_answers

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and readiness")
async def health(engine: EngineDep) -> JSONResponse:
    """200 `{"status": "UP"}` when PostgreSQL answers within 2 s, else 503 naming the database."""
    if not await database_answers(engine):
        return JSONResponse({"status": "DOWN", "checks": {"database": "DOWN"}}, status_code=503)
    return JSONResponse({"status": "UP", "checks": {"database": "UP"}})
