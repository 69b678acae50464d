"""GET /audit (through the gateway: /api/audit, ADMIN only): the trail, newest first, in pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from patient_service.audit import service
from patient_service.audit.models import Action
from patient_service.deps import AuditorDep, AuditWriterDep, ReadEngineDep, RecorderDep

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    """One recorded access: who, what, which patient, the outcome (never the patient's data)."""

    at: datetime
    actor: str | None = Field(description="The token's sub; null when no valid token was sent")
    role: str | None
    action: Action
    patientId: str | None = Field(description="Null for a list")
    rows: int | None = Field(description="How many patients a list returned")
    status: int
    requestId: str | None


class AuditPageOut(BaseModel):
    """A page of events; `nextCursor` fetches the next one (null on the last page)."""

    events: list[AuditEventOut]
    nextCursor: str | None


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A parameter is malformed (id, time, action, limit or cursor)"},
    401: {"description": "No valid bearer token"},
    403: {"description": "Only ADMIN may read the trail"},
}


@router.get("", response_model=AuditPageOut, responses=_ERRORS, summary="Read the audit trail")
async def read_trail(
    caller: AuditorDep,
    engine: ReadEngineDep,
    patient_id: Annotated[uuid.UUID | None, Query(alias="patientId")] = None,
    actor: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[Action | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="Inclusive, ISO 8601")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Who listed, read, created, updated or deleted which patient, and every refused attempt."""
    page = await service.find_events(
        engine,
        patient_id=patient_id,
        actor=actor,
        actions=[action] if action else [],
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return {"events": page.events, "nextCursor": page.next_cursor}


class RefusalIn(BaseModel):
    """A 401 or 403 the gateway answered at the edge on a patient route (it never reached this service)."""

    at: datetime
    actor: str | None = Field(default=None, max_length=255)
    role: str | None = Field(default=None, max_length=50)
    patientId: uuid.UUID | None = None
    status: int = Field(ge=401, le=403)
    requestId: str | None = Field(default=None, max_length=128)
    clientAddress: str | None = Field(default=None, max_length=64)


class RefusalsIn(BaseModel):
    """A batch of refusals."""

    events: list[RefusalIn] = Field(max_length=10_000)


@router.post("/refusals", status_code=202, responses=_ERRORS, summary="Record refusals answered by the gateway")
async def record_refusals(caller: RecorderDep, batch: RefusalsIn, writer: AuditWriterDep) -> None:
    """For the gateway (a SERVICE token): its edge refusals join the trail as DENIED records (batched)."""
    for event in batch.events:
        writer.record(
            service.AuditEvent(
                at=event.at,
                actor=event.actor,
                role=event.role,
                action=Action.DENIED,
                patient_id=event.patientId,
                status=event.status,
                request_id=event.requestId,
                client_address=event.clientAddress,
            )
        )
