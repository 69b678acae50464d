"""Client helpers: unique patient bodies, tokens forged with a known key, the analytics summary, billing lookups."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
import warnings
from typing import Any

import grpc
import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning

from pm_proto import billing_service_pb2, billing_service_pb2_grpc

EVENT_TYPES = ("PATIENT_CREATED", "PATIENT_UPDATED", "PATIENT_DELETED")
HTTP_TIMEOUT = httpx.Timeout(20.0)


def unique_email(tag: str = "it") -> str:
    """An address no earlier run used (mixed case on purpose is up to the caller)."""
    return f"{tag}-{uuid.uuid4().hex}@example.com"


def patient_body(**overrides: Any) -> dict[str, Any]:
    """A valid create body with a unique email; keyword overrides replace or (value None) drop fields."""
    body: dict[str, Any] = {
        "name": f"IT Patient {uuid.uuid4().hex[:8]}",
        "email": unique_email(),
        "address": "1 Integration Street, Testville",
        "dateOfBirth": "1990-05-17",
        "registeredDate": "2024-01-15",
    }
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def forge_token(secret_b64: str | None, *, key: bytes | None = None, algorithm: str = "HS256", **claims: Any) -> str:
    """A JWT signed with the stack's key (or another key); claims default to a valid 10-minute token."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": "testuser@test.com", "role": "ADMIN", "iat": now, "exp": now + 600}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    signing_key = key if key is not None else base64.b64decode(secret_b64 or "")
    with warnings.catch_warnings():
        # HS512 with the (shorter) HS256 key is exactly the wrong-algorithm token a test wants.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, signing_key, algorithm=algorithm)


def unsigned_token(**claims: Any) -> str:
    """An `alg: none` token (header.payload.), which the gateway must refuse."""
    now = int(time.time())
    payload = {"sub": "testuser@test.com", "role": "ADMIN", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, "", algorithm="none")


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


async def summary(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """GET /api/analytics/summary, asserting its shape."""
    response = await client.get("/api/analytics/summary", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body.get("totalEvents"), int), body
    assert set(EVENT_TYPES) <= set(body.get("eventsByType", {})), body
    return dict(body)


def counts(body: dict[str, Any]) -> dict[str, int]:
    """totalEvents plus one entry per event type, for exact comparisons."""
    return {"total": int(body["totalEvents"]), **{t: int(body["eventsByType"][t]) for t in EVENT_TYPES}}


async def quiet_counts(
    client: httpx.AsyncClient, headers: dict[str, str], *, quiet_seconds: float = 1.5, timeout_seconds: float = 60.0
) -> dict[str, int]:
    """The summary once it has not changed for quiet_seconds (events of earlier tests have been counted)."""
    deadline = time.monotonic() + timeout_seconds
    last = counts(await summary(client, headers))
    since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.4)
        now = counts(await summary(client, headers))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return now
    raise AssertionError(f"analytics summary kept changing for {timeout_seconds:.0f}s (last {last})")


async def wait_counts(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    expected: dict[str, int],
    *,
    timeout_seconds: float = 30.0,
    settle_seconds: float = 2.0,
) -> dict[str, int]:
    """Poll until the summary reaches expected, then check it stays there for settle_seconds (nothing extra)."""
    deadline = time.monotonic() + timeout_seconds
    now = counts(await summary(client, headers))
    while now["total"] < expected["total"] and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        now = counts(await summary(client, headers))
    assert now == expected, f"analytics after {timeout_seconds:.0f}s: {now}, expected {expected}"
    await asyncio.sleep(settle_seconds)
    later = counts(await summary(client, headers))
    assert later == expected, f"analytics counted more than once: {later}, expected {expected}"
    return later


def plus(base: dict[str, int], **by_type: int) -> dict[str, int]:
    """base with each event type raised by the given amount and the total by their sum."""
    result = dict(base)
    for event_type, amount in by_type.items():
        result[event_type] += amount
        result["total"] += amount
    return result


def create_patient(client: httpx.Client, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """POST a valid patient, asserting 201; returns the created patient."""
    response = client.post("/api/patients", json=patient_body(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_patient_async(client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """POST a valid patient, asserting 201; returns the created patient."""
    response = await client.post("/api/patients", json=patient_body(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_for_account(
    billing: billing_service_pb2_grpc.BillingServiceStub, patient_id: str, *, timeout_seconds: float = 20.0
) -> billing_service_pb2.BillingResponse:
    """The account billing holds for patient_id, polling GetBillingAccount until the relay has made it."""
    lookup = billing_service_pb2.BillingAccountRequest(patientId=patient_id)
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            response: billing_service_pb2.BillingResponse = billing.GetBillingAccount(
                lookup, timeout=10, wait_for_ready=True
            )
            return response
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
