"""GET /health: 200 when the database answers and the gRPC server serves, else 503 naming what fails."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from billing_service.deps import GrpcServerDep

router = APIRouter(tags=["health"])

Status = Literal["UP", "DOWN"]


class HealthChecks(BaseModel):
    """One entry per dependency."""

    database: Status
    grpc: Status


class Health(BaseModel):
    """Overall status and the checks behind it."""

    status: Status
    checks: HealthChecks


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Cannot serve"}})
async def health(grpc_server: GrpcServerDep) -> JSONResponse:
    """Check the database now (this also refreshes the gRPC health status) and the gRPC server's state."""
    database_ok = await grpc_server.refresh()
    checks = HealthChecks(database="UP" if database_ok else "DOWN", grpc="UP" if grpc_server.running else "DOWN")
    ok = checks.database == "UP" and checks.grpc == "UP"
    body = Health(status="UP" if ok else "DOWN", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
