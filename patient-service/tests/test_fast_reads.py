"""The fast reads (patient_service.patients.fast_reads) answer exactly as the routes do, and only their requests.

Each fast answer is compared with the route's answer to the same request: a query string the route ignores
sends the request past the fast layer. The layer is also called on its own, in front of an app that fails
the test, to show which requests it answers itself, against the running service's real database.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from patient_service.audit.context import AuditContext, now
from patient_service.patients import service
from patient_service.patients.fast_reads import FastReads
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token

from .conftest import ADMIN_AUTHORIZATION, Service

KEY = base64.b64decode(DEMO_JWT_SECRET)
ANALYST = {"Authorization": "Bearer " + issue_token(key=KEY, email="a@test", role="ANALYST", lifetime_seconds=600)}
EXPIRED = {"Authorization": "Bearer " + issue_token(key=KEY, email="e@test", role="STAFF", lifetime_seconds=-10)}
NO_TOKEN = {"Authorization": ""}
# Headers every answer carries whichever path made it (the request id is new for each request).
_PER_REQUEST = {"x-request-id", "date"}


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in _PER_REQUEST}
    return response.status_code, response.content, headers


async def _same_answer_both_ways(service: Service, path: str, headers: dict[str, str]) -> httpx.Response:
    fast = await service.http.get(path, headers=headers)
    routed = await service.http.get(path, headers=headers, params={"via": "route"})  # an ignored parameter
    assert _comparable(fast) == _comparable(routed), path
    return fast


@pytest.mark.parametrize(
    ("headers", "status"),
    [(ADMIN_AUTHORIZATION, 200), (ANALYST, 403), (EXPIRED, 401), (NO_TOKEN, 401)],
    ids=["admin", "analyst", "expired", "no-token"],
)
async def test_one_patient_answers_as_the_route(api: Service, headers: dict[str, str], status: int) -> None:
    created = await api.create()
    response = await _same_answer_both_ways(api, f"/patients/{created['id']}", headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == created
        assert response.headers["etag"] == 'W/"1"'
    else:
        assert set(response.json()) == {"message"}


async def test_an_unknown_patient_answers_as_the_route(api: Service) -> None:
    response = await _same_answer_both_ways(api, f"/patients/{uuid.uuid4()}", ADMIN_AUTHORIZATION)
    assert response.status_code == 404
    assert response.json() == {"message": "Patient not found"}


async def test_the_list_answers_as_the_route(api: Service) -> None:
    created = await api.create()
    response = await _same_answer_both_ways(api, "/patients", ADMIN_AUTHORIZATION)
    assert response.status_code == 200
    assert created in response.json()
    assert response.headers["x-total-count"] == str(len(response.json()))
    assert (await _same_answer_both_ways(api, "/patients", ANALYST)).status_code == 403


class _Called(Exception):
    """The fast layer passed the request on."""


async def _passed_on(scope: Scope, receive: Receive, send: Send) -> None:
    raise _Called


async def _call(service: Service, method: str, path: str, query: bytes = b"") -> list[Message]:
    """Call a FastReads in front of _passed_on with a request as the server would make it; its messages."""
    token = ADMIN_AUTHORIZATION["Authorization"].encode()
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(b"authorization", token)],
        "app": service.app,
        "state": {"audit": AuditContext(actor=None, role=None, request_id=None, client_address=None, at=now())},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await FastReads(_passed_on)(scope, receive, send)
    return sent


async def test_answers_the_two_reads_itself(api: Service) -> None:
    created = await api.create()
    for path in (f"/patients/{created['id']}", f"/patients/{created['id'].upper()}", "/patients"):
        start, body = await _call(api, "GET", path)
        assert start["status"] == 200
        assert created["id"].encode() in body["body"]
    start, _ = await _call(api, "GET", f"/patients/{uuid.uuid4()}")
    assert start["status"] == 404


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/patients", b"page=0"),
        ("GET", "/patients/00000000-0000-0000-0000-000000000000", b"x=1"),
        ("HEAD", "/patients", b""),
        ("POST", "/patients", b""),
        ("GET", "/patients/", b""),
        ("GET", "/patients/0000000000000000000000000000000000", b""),
        ("GET", "/patients/{00000000-0000-0000-0000-000000000000}", b""),
        ("GET", "/patients/urn:uuid:00000000-0000-0000-0000-000000000000", b""),
        ("GET", "/patients/00000000-0000-0000-0000-000000000000/x", b""),
        ("GET", "/fhir/Patient", b""),
        ("GET", "/health", b""),
    ],
)
async def test_passes_every_other_request_on(api: Service, method: str, path: str, query: bytes) -> None:
    with pytest.raises(_Called):
        await _call(api, method, path, query)


async def test_an_unexpected_error_goes_on_up(api: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    # No handler of its own: the server-error layer above answers it (a logged 500), as for the route.
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "get_patient", broken)
    with pytest.raises(RuntimeError):
        await _call(api, "GET", f"/patients/{uuid.uuid4()}")
