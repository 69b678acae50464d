"""Personal data after delete: marker values must be gone from every table, every log, billing and the events.

Patients are created with unmistakable markers, updated (new markers), pushed into a duplicate-email
conflict (whose PostgreSQL error DETAIL would quote the email) and deleted. Then every table of the
four databases (bytea columns as hex too), every log file of the stack (PostgreSQL's included) and
billing's copy are searched. The topic still holds the PATIENT_CREATED/UPDATED events sent before
the delete until its retention (7 days) runs out: that part checks that the delete added nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import grpc
import httpx
import pytest
from pm_e2e import api, events
from pm_e2e.target import Target

from pm_proto import billing_service_pb2, billing_service_pb2_grpc


def markers(tag: str) -> dict[str, str]:
    token = uuid.uuid4().hex[:10]
    return {
        "name": f"Zqx{tag}{token} Markerperson",
        "email": f"zqx{tag}{token}@markermail.example",
        "address": f"{token} Zqxmarker Lane {tag}",
        "dateOfBirth": "1903-07-29",  # no other test uses this date
    }


def needles(values: dict[str, str]) -> list[str]:
    """What must not be found: each value as text, and as the hex of its UTF-8 (bytea columns)."""
    texts = [values["name"].split()[0], values["email"], values["address"]]
    return [t.lower() for t in texts] + [t.encode().hex() for t in texts]


async def table_dumps(url: str) -> dict[str, str]:
    """Every row of every table of a database, as text (bytea renders as hex)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        tables = await connection.fetch(
            "SELECT quote_ident(table_name) AS name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        dumps = {}
        for table in tables:
            text = await connection.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table['name']} t")  # noqa: S608
            dumps[table["name"]] = str(text).lower()
        return dumps
    finally:
        await connection.close()


def wait_until_closed(billing: billing_service_pb2_grpc.BillingServiceStub, patient_id: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            account = billing.GetBillingAccount(
                billing_service_pb2.BillingAccountRequest(patientId=patient_id), timeout=5
            )
            if account.status == "CLOSED":
                return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        assert time.monotonic() < deadline, f"billing account of {patient_id} not closed within 30 s"
        time.sleep(0.2)


def test_nothing_of_a_deleted_patient_stays(
    target: Target,
    client: httpx.Client,
    auth: dict[str, str],
    billing: billing_service_pb2_grpc.BillingServiceStub,
    kafka_bootstrap: str,
) -> None:
    if not target.databases or target.log_dir is None:
        pytest.skip("needs a stack this suite started (its databases and log files)")
    start = asyncio.run(events.end_offsets(kafka_bootstrap))
    searched: list[dict[str, str]] = []
    ids = []
    for tag in ("a", "b"):
        first, second = markers(tag), markers(tag + "u")
        searched += [first, second]
        created = api.create_patient(client, auth, **first)
        ids.append(created["id"])
        assert client.get(f"/api/patients/{created['id']}", headers=auth).status_code == 200
        updated = client.put(f"/api/patients/{created['id']}", headers=auth, json=second)
        assert updated.status_code == 200
    # A duplicate email: PostgreSQL's unique-violation DETAIL would quote it in the server log.
    taken = {**searched[1], "email": searched[3]["email"]}
    clash = client.put(f"/api/patients/{ids[0]}", headers=auth, json=taken)
    assert clash.status_code == 400
    for patient_id in ids:
        assert client.delete(f"/api/patients/{patient_id}", headers=auth).status_code == 204
    for patient_id in ids:
        wait_until_closed(billing, patient_id)  # the outbox delivered everything, the close included
    time.sleep(1.0)  # the audit writer's and the loggers' last flush

    found: list[str] = []
    for database, url in target.databases.items():
        for table, dump in asyncio.run(table_dumps(url)).items():
            found += [f"{database}.{table}: {n}" for values in searched for n in needles(values) if n in dump]
    for log in sorted(target.log_dir.glob("*.log")):
        content = log.read_bytes().decode("utf-8", "replace").lower()
        found += [f"log {log.name}: {n}" for values in searched for n in needles(values) if n in content]
    assert found == [], "personal data left behind:\n" + "\n".join(found)

    ours = [events.events_of(patient_id) for patient_id in ids]
    records = asyncio.run(
        events.read_from(kafka_bootstrap, start, lambda r: any(m(r) for m in ours), want=2 * 3, linger_seconds=2)
    )
    deleted = [r.event() for r in records if r.event().event_type == "PATIENT_DELETED"]
    assert len(deleted) == 2
    assert all((e.name, e.email) == ("", "") for e in deleted), "PATIENT_DELETED must carry the id only"
