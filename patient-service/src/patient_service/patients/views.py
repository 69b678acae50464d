"""HTTP routes of /patients: parse, call the service, render. No logic lives here."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from patient_service.deps import AuditDep, DeleterDep, EngineDep, OutboxSignalDep, ReadEngineDep, ReaderDep, WriterDep
from patient_service.outbox.models import Destination
from patient_service.patients import service
from patient_service.patients.schemas import PatientCreate, PatientResponse, PatientUpdate


class Message(BaseModel):
    """An error body: `{"message": ...}`."""

    message: str


router = APIRouter(prefix="/patients", tags=["patients"])

PatientId = Annotated[uuid.UUID, Path(alias="id", description="The patient's id (UUID)")]
_CALLER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "No valid bearer token (WWW-Authenticate says why)"},
    403: {"model": Message, "description": "The token's role may not do this"},
}
_ID_ERRORS: dict[int | str, dict[str, Any]] = {
    **_CALLER_ERRORS,
    400: {"model": Message, "description": "Not a UUID, or a field map of validation messages"},
    404: {"model": Message, "description": "Patient not found"},
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_CALLER_ERRORS,
    400: {"description": "`{field: message}` for every failing field, or `{message}` (bad JSON, email taken)"},
    413: {"model": Message, "description": "Body over 1 MiB"},
}


def _json(content: Any, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    # orjson straight to bytes: the response model documents the shape, the service already built it.
    return Response(orjson.dumps(content), status_code=status_code, headers=headers, media_type="application/json")


@router.get("", response_model=list[PatientResponse], responses=_CALLER_ERRORS, summary="List patients")
async def list_patients(
    caller: ReaderDep,
    audit: AuditDep,
    engine: ReadEngineDep,
    page: Annotated[int | None, Query(ge=0, le=10_000_000, description="Page number, from 0")] = None,
    size: Annotated[int | None, Query(ge=1, le=1000, description="Page size (default 100 when page is given)")] = None,
) -> Response:
    """All patients (a JSON array), or one page of them with page/size; X-Total-Count has the total."""
    items, total = await service.list_patients(engine, page=page, size=size)
    audit.rows = len(items)
    return _json(items, headers={"X-Total-Count": str(total)})


@router.get("/{id}", response_model=PatientResponse, responses=_ID_ERRORS, summary="Get a patient")
async def get_patient(caller: ReaderDep, patient_id: PatientId, engine: ReadEngineDep) -> Response:
    """One patient by id."""
    return _json(await service.get_patient(engine, patient_id=patient_id))


@router.post("", status_code=201, response_model=PatientResponse, responses=_BODY_ERRORS, summary="Create a patient")
async def create_patient(
    caller: WriterDep, audit: AuditDep, body: PatientCreate, engine: EngineDep, outbox: OutboxSignalDep
) -> Response:
    """Register a patient; its PATIENT_CREATED event and billing-account request follow via the outbox."""
    patient = await service.create_patient(engine, data=body, audit=audit)
    outbox.notify()
    return _json(patient, status_code=201)


@router.put(
    "/{id}",
    response_model=PatientResponse,
    responses={**_BODY_ERRORS, **_ID_ERRORS, 400: _BODY_ERRORS[400]},
    summary="Update a patient",
)
async def update_patient(
    caller: WriterDep,
    audit: AuditDep,
    patient_id: PatientId,
    body: PatientUpdate,
    engine: EngineDep,
    outbox: OutboxSignalDep,
) -> Response:
    """Replace name, email, address and dateOfBirth (registeredDate is kept); emits PATIENT_UPDATED."""
    patient = await service.update_patient(engine, patient_id=patient_id, data=body, audit=audit)
    outbox.notify(Destination.PATIENT_EVENT)
    return _json(patient)


@router.delete("/{id}", status_code=204, responses=_ID_ERRORS, summary="Delete a patient")
async def delete_patient(
    caller: DeleterDep, audit: AuditDep, patient_id: PatientId, engine: EngineDep, outbox: OutboxSignalDep
) -> Response:
    """Delete a patient; emits PATIENT_DELETED."""
    await service.delete_patient(engine, patient_id=patient_id, audit=audit)
    outbox.notify(Destination.PATIENT_EVENT)
    return Response(status_code=204)
