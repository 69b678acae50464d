"""The two hottest reads, answered before FastAPI's routing and dependency solving.

`GET /patients/{id}` and `GET /patients` without a query string are most of the traffic, and on them
FastAPI's routing, dependency solving and request objects cost a quarter to a third of patient-service's CPU
(bench/README.md, "The third pass"). This layer answers exactly those requests with the same service calls
and bytes as the routes in views.py; their errors (no token, a role that may not read, no such patient, the
database failing) raise the same exceptions, answered by the app's own exception handlers. Anything else
(another method, a query string, another spelling of the id) goes on to the routes, which stay the
definition of the endpoints (OpenAPI, validation). The layers around this one (access log, audit record,
metrics, tracing) see both paths alike.
"""

from __future__ import annotations

import re
import uuid

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from patient_service.patients import service
from patient_service.patients.preconditions import etag
from patient_service.patients.search import PatientQuery
from pm_common.access import Permission
from pm_common.auth import authorize
from pm_common.http import header
from pm_common.metrics import ROUTE_SCOPE_KEY

LIST_ROUTE = "/patients"
ONE_ROUTE = "/patients/{id}"
_ONE_PREFIX = "/patients/"
# Other spellings of an id that uuid.UUID accepts (urn:uuid:, braces, no dashes) go to the route.
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
_EVERYONE = PatientQuery()  # GET /patients with no parameter
# What the routes' `_json` Response sends (Starlette appends these after the route's own headers).
_JSON = (b"content-type", b"application/json")


class FastReads:
    """ASGI middleware, innermost of the app's own: answers the two reads, passes every other request on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        target = _target(scope["path"])
        if target is None:
            await self.app(scope, receive, send)
            return
        route, patient_id = target
        scope[ROUTE_SCOPE_KEY] = route  # the request metrics' route label, as the router would have set it
        try:
            body, headers = await _read(scope, patient_id)
        except Exception as exc:
            await _handled(scope, receive, send, exc)
            return
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append(_JSON)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _target(path: str) -> tuple[str, uuid.UUID | None] | None:
    """(route, patient id) of a path answered here: /patients, or /patients/ and an id spelled canonically."""
    if path == LIST_ROUTE:
        return LIST_ROUTE, None
    rest = path.removeprefix(_ONE_PREFIX)
    if rest == path or not _CANONICAL_UUID.fullmatch(rest):
        return None
    return ONE_ROUTE, uuid.UUID(rest)


async def _read(scope: Scope, patient_id: uuid.UUID | None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The route's body and headers: one patient and its ETag, or every patient and their count."""
    state = scope["app"].state
    authorize(state.token_verifier, header(scope["headers"], b"authorization"), Permission.READ_PATIENTS)
    if patient_id is not None:
        found = await service.get_patient(state.read_engine, patient_id=patient_id)
        return orjson.dumps(found.patient), [(b"etag", etag(found.version).encode())]
    items, total = await service.search_patients(state.read_engine, query=_EVERYONE)
    scope["state"]["audit"].rows = len(items)
    return orjson.dumps([item.patient for item in items]), [(b"x-total-count", str(total).encode())]


async def _handled(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer `exc` as FastAPI's exception layer would have after the route: with the app's handler for its
    class (a 401, 403, 404 or 503). Without one it goes on up, to the server-error layer's logged 500."""
    handlers = scope["app"].exception_handlers
    # As Starlette's ExceptionMiddleware: the nearest class with a handler, Exception's own (the 500) aside.
    kind = next((kind for kind in type(exc).__mro__ if kind in handlers and kind is not Exception), None)
    if kind is None:
        raise exc
    response = await handlers[kind](Request(scope, receive), exc)
    await response(scope, receive, send)
