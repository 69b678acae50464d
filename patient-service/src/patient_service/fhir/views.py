"""/fhir: the patients as FHIR R4B Patient resources. Every write goes through patients.service, so a FHIR
create is the same row, outbox events, billing account and audit record as POST /patients."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response
from fastapi.routing import APIRoute
from fhir.resources.R4B.bundle import Bundle

from patient_service.deps import AuditDep, DeleterDep, EngineDep, OutboxSignalDep, ReadEngineDep, ReaderDep, WriterDep
from patient_service.fhir.capability import capability_statement
from patient_service.fhir.mapping import parse_resource, to_create, to_resource, to_update
from patient_service.fhir.outcome import FHIR_JSON, FhirError, as_outcome, fhir_response, outcome_response
from patient_service.fhir.search import COUNT_PARAM, PAGE_PARAM, fhir_query
from patient_service.outbox.models import Destination
from patient_service.patients import service
from patient_service.patients.preconditions import etag, parse_if_match
from patient_service.patients.search import page_links

_ACCEPTED_BODIES = frozenset({FHIR_JSON, "application/json"})
_FORWARDED_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?", re.ASCII)
_LINK_RELATIONS = {"self": "self", "first": "first", "prev": "previous", "next": "next", "last": "last"}
UNKNOWN_ROUTE = "fhir_unknown"


class FhirRoute(APIRoute):
    """A route whose errors (auth, validation, domain) are OperationOutcomes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                response = as_outcome(exc)
                if response is None:
                    raise
                return response

        return answer


router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute)
IfMatchHeader = Annotated[str | None, Header(alias="If-Match", description='W/"<versionId>": 412 when it changed')]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": "OperationOutcome", "content": {FHIR_JSON: {}}} for status in (400, 401, 403, 404)
}


def _base(request: Request) -> str:
    """The absolute base of this FHIR server as the client called it (the gateway's X-Forwarded-* when present);
    the path alone when those are not usable."""
    scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or ""
    if scheme not in ("http", "https") or not _FORWARDED_HOST.fullmatch(host):
        return "/fhir"
    return f"{scheme}://{host}/fhir"


def _patient_id(value: str) -> uuid.UUID:
    """A logical id of ours (a UUID); any other id names no patient (404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FhirError(404, f"Patient/{value} is not known") from None


async def _body(request: Request) -> Any:
    """The JSON body of a create or update: 415 for another media type, 400 for malformed JSON."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in _ACCEPTED_BODIES:
        raise FhirError(415, f"Content-Type must be {FHIR_JSON}")
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise FhirError(400, "Malformed JSON", code="structure") from None


def _resource_response(patient: dict[str, str], version: int, *, status_code: int = 200) -> Response:
    headers = {"ETag": etag(version), "Content-Location": f"/fhir/Patient/{patient['id']}"}
    if status_code == 201:
        headers["Location"] = f"/fhir/Patient/{patient['id']}"
    return fhir_response(to_resource(patient, version), status_code=status_code, headers=headers)


@router.get("/metadata", responses=_RESPONSES, summary="CapabilityStatement")
async def metadata(caller: ReaderDep) -> Response:
    """What this FHIR server does: FHIR 4.3.0 (R4B), Patient read, search, create, update and delete."""
    return fhir_response(capability_statement())


@router.get("/Patient", responses=_RESPONSES, summary="Search patients (FHIR)")
async def search(request: Request, caller: ReaderDep, audit: AuditDep, engine: ReadEngineDep) -> Response:
    """A searchset Bundle: name, family, given, email, birthdate, _count, _sort; links self/next/previous."""
    found = fhir_query(request.query_params.multi_items())
    items, total = await service.search_patients(engine, query=found.query)
    audit.rows = len(items)
    base = _base(request)
    query = found.query
    links = page_links(
        f"{base}/Patient",
        found.used,
        page=query.page or 0,
        size=query.limit,
        total=total,
        page_param=PAGE_PARAM,
        size_param=COUNT_PARAM,
    )
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": [{"relation": _LINK_RELATIONS[rel], "url": url} for rel, url in links.items()],
            "entry": [
                {
                    "fullUrl": f"{base}/Patient/{item.patient['id']}",
                    "resource": to_resource(item.patient, item.version),
                    "search": {"mode": "match"},
                }
                for item in items
            ],
        }
    )
    return fhir_response(bundle)


@router.get("/Patient/{id}", responses=_RESPONSES, summary="Read a patient (FHIR)")
async def read(caller: ReaderDep, id: str, engine: ReadEngineDep) -> Response:
    """The Patient resource; ETag `W/"<versionId>"`."""
    found = await service.get_patient(engine, patient_id=_patient_id(id))
    return _resource_response(found.patient, found.version)


@router.post("/Patient", status_code=201, responses=_RESPONSES, summary="Create a patient (FHIR)")
async def create(
    request: Request, caller: WriterDep, audit: AuditDep, engine: EngineDep, outbox: OutboxSignalDep
) -> Response:
    """201 with the stored resource, Location and ETag; the same create as POST /patients."""
    raw = await _body(request)
    resource = parse_resource(raw)
    data = to_create(resource, raw)
    created = await service.create_patient(engine, data=data, audit=audit)
    outbox.notify()
    return _resource_response(created, 1, status_code=201)  # a new patient is version 1


@router.put("/Patient/{id}", responses=_RESPONSES, summary="Update a patient (FHIR)")
async def update(
    request: Request,
    caller: WriterDep,
    audit: AuditDep,
    id: str,
    engine: EngineDep,
    outbox: OutboxSignalDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """Replace the patient (its registered date is kept); If-Match honoured (412)."""
    patient_id = _patient_id(id)
    raw = await _body(request)
    resource = parse_resource(raw, expected_id=id)
    data = to_update(resource, raw)
    updated = await service.update_patient(
        engine, patient_id=patient_id, data=data, audit=audit, if_match=parse_if_match(if_match)
    )
    outbox.notify(Destination.PATIENT_EVENT)
    return _resource_response(updated.patient, updated.version)


@router.delete("/Patient/{id}", status_code=204, responses=_RESPONSES, summary="Delete a patient (FHIR)")
async def delete(
    caller: DeleterDep,
    audit: AuditDep,
    id: str,
    engine: EngineDep,
    outbox: OutboxSignalDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """204; If-Match honoured (412)."""
    await service.delete_patient(engine, patient_id=_patient_id(id), audit=audit, if_match=parse_if_match(if_match))
    outbox.notify(Destination.PATIENT_EVENT)
    return Response(status_code=204)


@router.api_route(
    "/{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    name=UNKNOWN_ROUTE,
    include_in_schema=False,
)
async def unknown(request: Request, path: str) -> Response:
    """Anything else under /fhir: 405 (with Allow) for a method a FHIR path does not serve, else 404."""
    allowed: set[str] = set()
    # This router's own routes (their paths carry the /fhir prefix).
    for route in (r for r in router.routes if isinstance(r, APIRoute) and r.name != UNKNOWN_ROUTE):
        if route.path_regex.match(request.scope["path"]):
            allowed |= route.methods or set()
    if allowed:
        error = FhirError(405, f"{request.method} is not supported here")
        return outcome_response(error, headers={"Allow": ", ".join(sorted(allowed))})
    raise FhirError(404, f"{request.url.path} is not a FHIR interaction of this server")
