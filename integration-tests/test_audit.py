"""The audit trail through the gateway: what an access leaves behind, who may read it, paging."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from pm_e2e import api


def trail(client: httpx.Client, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    """GET /api/audit; reads are written in batches (at most 0.5 s apart), so wait for what is expected."""
    response = client.get("/api/audit", headers=auth, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def wait_for(client: httpx.Client, auth: dict[str, str], count: int, **params: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        events: list[dict[str, Any]] = trail(client, auth, **params)["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_a_patients_trail_shows_every_access(client: httpx.Client, auth: dict[str, str], jwt_secret: str) -> None:
    staff = api.bearer(api.forge_token(jwt_secret, role="STAFF", sub=f"staff-{uuid.uuid4().hex[:8]}@it"))
    created = api.create_patient(client, staff)
    patient_id = created["id"]
    headers = {**staff, "X-Request-ID": f"it-audit-{uuid.uuid4().hex[:8]}"}
    assert client.get(f"/api/patients/{patient_id}", headers=headers).status_code == 200
    assert client.put(f"/api/patients/{patient_id}", headers=staff, json=api.patient_body()).status_code == 200
    # Refused at the gateway's edge (they never reach patient-service): the gateway hands them to the trail.
    assert client.delete(f"/api/patients/{patient_id}", headers=staff).status_code == 403
    assert client.get(f"/api/patients/{patient_id}").status_code == 401
    assert client.delete(f"/api/patients/{patient_id}", headers=auth).status_code == 204

    events = wait_for(client, auth, 6, patientId=patient_id)
    assert [(e["action"], e["status"], e["role"]) for e in reversed(events)] == [
        ("CREATE", 201, "STAFF"),
        ("READ", 200, "STAFF"),
        ("UPDATE", 200, "STAFF"),
        ("DENIED", 403, "STAFF"),
        ("DENIED", 401, None),
        ("DELETE", 204, "ADMIN"),
    ]
    assert events[4]["requestId"] == headers["X-Request-ID"]
    assert events[1]["actor"] is None
    assert all(set(e) == {"at", "actor", "role", "action", "patientId", "rows", "status", "requestId"} for e in events)
    assert created["email"] not in str(events)
    assert created["name"] not in str(events)


@pytest.mark.parametrize("role", ["STAFF", "ANALYST"])
def test_only_an_admin_reads_the_trail(client: httpx.Client, jwt_secret: str, role: str) -> None:
    response = client.get("/api/audit", headers=api.bearer(api.forge_token(jwt_secret, role=role)))
    assert response.status_code == 403
    assert client.get("/api/audit").status_code == 401


def test_the_trail_pages_with_a_cursor(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)
    for _ in range(3):
        client.get(f"/api/patients/{created['id']}", headers=auth)
    events = wait_for(client, auth, 4, patientId=created["id"])
    assert len(events) == 4
    first = trail(client, auth, patientId=created["id"], limit=3)
    rest = trail(client, auth, patientId=created["id"], limit=3, cursor=first["nextCursor"])
    assert [e["action"] for e in first["events"] + rest["events"]] == ["READ", "READ", "READ", "CREATE"]
    assert rest["nextCursor"] is None
    assert client.get("/api/audit", headers=auth, params={"limit": 1001}).status_code == 400
