"""HTTP routes of /patients: parse, call the service, render. No logic lives here."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel

from patient_service.deps import (
    AuditDep,
    DeleterDep,
    EngineDep,
    OutboxSignalDep,
    ReadEngineDep,
    ReaderDep,
    SettingsDep,
    WriterDep,
)
from patient_service.outbox.models import Destination
from patient_service.patients import service
from patient_service.patients.preconditions import etag, parse_if_match
from patient_service.patients.schemas import PatientCreate, PatientResponse, PatientUpdate
from patient_service.patients.search import link_header, page_links, rest_query
from pm_common.http import DomainError
from pm_common.idempotency import IdempotencyKeyHeader, Replayed, retry_key


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


_DATE = "YYYY-MM-DD, inclusive"
IfMatchHeader = Annotated[
    str | None,
    Header(alias="If-Match", description='W/"<version>" from the ETag: 412 when the patient has another version'),
]
_PRECONDITION_ERRORS: dict[int | str, dict[str, Any]] = {
    412: {"model": Message, "description": "If-Match names another version than the patient's (its ETag)"},
}


@router.get(
    "",
    response_model=list[PatientResponse],
    responses={**_CALLER_ERRORS, 400: {"model": Message, "description": "A parameter's value cannot be used"}},
    summary="List and search patients",
)
async def list_patients(
    request: Request,
    caller: ReaderDep,
    audit: AuditDep,
    engine: ReadEngineDep,
    page: Annotated[int | None, Query(ge=0, le=10_000_000, description="Page number, from 0")] = None,
    size: Annotated[int | None, Query(ge=1, le=1000, description="Page size (default 100 when page is given)")] = None,
    name: Annotated[str | None, Query(description="Part of the name, any case")] = None,
    email: Annotated[str | None, Query(description="The email, any case")] = None,
    born_after: Annotated[str | None, Query(alias="bornAfter", description=_DATE)] = None,
    born_before: Annotated[str | None, Query(alias="bornBefore", description=_DATE)] = None,
    registered_after: Annotated[str | None, Query(alias="registeredAfter", description=_DATE)] = None,
    registered_before: Annotated[str | None, Query(alias="registeredBefore", description=_DATE)] = None,
    sort: Annotated[
        str | None,
        Query(description="name, dateOfBirth or registeredDate (the default); `-` before it: descending"),
    ] = None,
) -> Response:
    """The patients matching every filter given (a JSON array), all of them or one page with page/size.

    X-Total-Count has how many match in all; a page also has a Link header (first, prev, next, last)."""
    query = rest_query(
        name=name,
        email=email,
        born_after=born_after,
        born_before=born_before,
        registered_after=registered_after,
        registered_before=registered_before,
        sort=sort,
        page=page,
        size=size,
    )
    items, total = await service.search_patients(engine, query=query)
    audit.rows = len(items)
    headers = {"X-Total-Count": str(total)}
    if query.paged:
        links = page_links(
            request.url.path,
            request.query_params.multi_items(),
            page=query.page or 0,
            size=query.limit,
            total=total,
            page_param="page",
            size_param="size",
        )
        headers["Link"] = link_header(links)
    return _json([item.patient for item in items], headers=headers)


@router.get("/{id}", response_model=PatientResponse, responses=_ID_ERRORS, summary="Get a patient")
async def get_patient(caller: ReaderDep, patient_id: PatientId, engine: ReadEngineDep) -> Response:
    """One patient by id; its ETag (`W/"<version>"`) changes with every update."""
    found = await service.get_patient(engine, patient_id=patient_id)
    return _json(found.patient, headers={"ETag": etag(found.version)})


@router.post("", status_code=201, response_model=PatientResponse, responses=_BODY_ERRORS, summary="Create a patient")
async def create_patient(
    request: Request,
    caller: WriterDep,
    audit: AuditDep,
    body: PatientCreate,
    engine: EngineDep,
    outbox: OutboxSignalDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Register a patient; its PATIENT_CREATED event and billing-account request follow via the outbox."""
    body_json = body.model_dump(mode="json", by_alias=True)
    ttl = settings.idempotency_key_ttl_seconds
    retry = retry_key(idempotency_key, request=request, actor=caller.subject, body=body_json, ttl_seconds=ttl)
    try:
        patient = await service.create_patient(engine, data=body, audit=audit, retry=retry)
    except Replayed as replayed:
        audit.replayed_patient_id = replayed.replay.body.get("id")  # the repeat read the stored patient
        raise
    outbox.notify()
    return _json(patient, status_code=201)


@router.put(
    "/{id}",
    response_model=PatientResponse,
    responses={**_BODY_ERRORS, **_ID_ERRORS, 400: _BODY_ERRORS[400], **_PRECONDITION_ERRORS},
    summary="Update a patient",
)
async def update_patient(
    caller: WriterDep,
    audit: AuditDep,
    patient_id: PatientId,
    body: PatientUpdate,
    engine: EngineDep,
    outbox: OutboxSignalDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """Replace name, email, address and dateOfBirth (registeredDate is kept); emits PATIENT_UPDATED."""
    updated = await service.update_patient(
        engine, patient_id=patient_id, data=body, audit=audit, if_match=parse_if_match(if_match)
    )
    outbox.notify(Destination.PATIENT_EVENT)
    return _json(updated.patient, headers={"ETag": etag(updated.version)})


MERGE_PATCH = "application/merge-patch+json"


@router.patch(
    "/{id}",
    response_model=PatientResponse,
    responses={
        **_BODY_ERRORS,
        **_ID_ERRORS,
        400: _BODY_ERRORS[400],
        **_PRECONDITION_ERRORS,
        415: {"model": Message, "description": f"Content-Type is not {MERGE_PATCH}"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {MERGE_PATCH: {"schema": {"type": "object"}}}}},
    summary="Change some fields of a patient",
)
async def patch_patient(
    request: Request,
    caller: WriterDep,
    audit: AuditDep,
    patient_id: PatientId,
    engine: EngineDep,
    outbox: OutboxSignalDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """A JSON Merge Patch (RFC 7396) of the patient's fields; the result is validated and stored as a PUT."""
    patch = await merge_patch_body(request)
    patched = await service.patch_patient(
        engine, patient_id=patient_id, patch=patch, audit=audit, if_match=parse_if_match(if_match)
    )
    outbox.notify(Destination.PATIENT_EVENT)
    return _json(patched.patient, headers={"ETag": etag(patched.version)})


async def merge_patch_body(request: Request) -> dict[str, Any]:
    """The body of a PATCH: 415 unless application/merge-patch+json, 400 unless a JSON object."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != MERGE_PATCH:
        raise DomainError(f"Content-Type must be {MERGE_PATCH}", status_code=415)
    try:
        patch = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise DomainError("Malformed JSON request") from None
    if not isinstance(patch, dict):
        raise DomainError("Request body must be a JSON object")
    return patch


@router.delete("/{id}", status_code=204, responses={**_ID_ERRORS, **_PRECONDITION_ERRORS}, summary="Delete a patient")
async def delete_patient(
    caller: DeleterDep,
    audit: AuditDep,
    patient_id: PatientId,
    engine: EngineDep,
    outbox: OutboxSignalDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """Delete a patient; emits PATIENT_DELETED."""
    await service.delete_patient(engine, patient_id=patient_id, audit=audit, if_match=parse_if_match(if_match))
    outbox.notify(Destination.PATIENT_EVENT)
    return Response(status_code=204)
