"""CreateBillingAccount over real gRPC against real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from sqlalchemy import text

from pm_proto import billing_service_pb2

from .conftest import Billing

METHOD = "/BillingService/CreateBillingAccount"


def request(
    patient_id: str, name: str = "Ada Example", email: str = "ada@example.com"
) -> billing_service_pb2.BillingRequest:
    return billing_service_pb2.BillingRequest(patientId=patient_id, name=name, email=email)


async def stored_accounts(billing: Billing, patient_id: str) -> list[tuple[str, str, str, str]]:
    async with billing.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT account_id, status, name, email FROM billing_accounts WHERE patient_id = :p"),
            {"p": patient_id},
        )
        return [tuple(row) for row in rows]


async def lock_waiters(billing: Billing, *, settle_seconds: float = 2.0) -> int:
    """Sessions of this database waiting for a lock, once the server had settle_seconds to cancel its statement."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_seconds
    while True:
        async with billing.engine.connect() as connection:
            waiting = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                        " WHERE NOT l.granted AND a.datname = current_database()"
                    )
                )
            ).scalar_one()
        if waiting == 0 or loop.time() > deadline:
            return int(waiting)
        await asyncio.sleep(0.1)


async def test_create_stores_an_active_account(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    response = await billing.stub.CreateBillingAccount(request(patient_id), timeout=5)
    assert response.status == "ACTIVE"
    assert response.accountId
    assert response.accountId != "12345"
    assert await stored_accounts(billing, patient_id) == [
        (response.accountId, "ACTIVE", "Ada Example", "ada@example.com")
    ]


async def test_repeat_returns_the_same_account(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    first = await billing.stub.CreateBillingAccount(request(patient_id), timeout=5)
    again = await billing.stub.CreateBillingAccount(request(patient_id, name="Other", email="o@example.com"), timeout=5)
    assert (again.accountId, again.status) == (first.accountId, "ACTIVE")
    # The first call's details stay: a retried call never rewrites the account.
    assert await stored_accounts(billing, patient_id) == [(first.accountId, "ACTIVE", "Ada Example", "ada@example.com")]


async def test_concurrent_repeats_create_one_account(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(billing.stub.CreateBillingAccount(request(patient_id), timeout=10) for _ in range(20))
    )
    assert len({r.accountId for r in responses}) == 1
    assert {r.status for r in responses} == {"ACTIVE"}
    assert len(await stored_accounts(billing, patient_id)) == 1


async def test_different_patients_get_different_accounts(billing: Billing) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    responses = [await billing.stub.CreateBillingAccount(request(p), timeout=5) for p in ids]
    assert len({r.accountId for r in responses}) == 5


async def test_patient_id_is_kept_as_given(billing: Billing) -> None:
    # The original accepted any string; only empty ids are refused. (No deadline sent: none is imposed.)
    response = await billing.stub.CreateBillingAccount(request("patient-42"))
    assert [row[0] for row in await stored_accounts(billing, "patient-42")] == [response.accountId]


@pytest.mark.parametrize(
    ("patient_id", "name", "message"),
    [
        ("", "Ada", "patientId is required"),
        ("   ", "Ada", "patientId is required"),
        ("p" * 256, "Ada", "patientId must be at most 255 characters"),
        ("nul\x00id", "Ada", "patientId must not contain NUL characters"),
        ("valid-id", "n" * 256, "name must be at most 255 characters"),
    ],
)
async def test_invalid_request_is_invalid_argument(billing: Billing, patient_id: str, name: str, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await billing.stub.CreateBillingAccount(request(patient_id, name=name), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    async with billing.engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM billing_accounts"))).scalar_one() == 0


async def test_exact_method_path_on_the_wire(billing: Billing) -> None:
    """A client that knows only the wire format (no generated code) gets an answer."""
    call = billing.channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    patient_id = b"wire-patient"
    # BillingRequest: field 1 (patientId) and field 3 (email), length-delimited, encoded by hand.
    payload = b"\x0a" + bytes([len(patient_id)]) + patient_id + b"\x1a\x05a@b.c"
    raw = await call(payload, timeout=5)
    response = billing_service_pb2.BillingResponse.FromString(raw)
    assert response.status == "ACTIVE"
    assert raw.startswith(b"\x0a")  # field 1, accountId
    stub_response = await billing.stub.CreateBillingAccount(request("wire-patient"), timeout=5)
    assert stub_response.accountId == response.accountId


async def test_call_waiting_on_a_concurrent_insert_returns_that_account(billing: Billing) -> None:
    """The conflict path: another transaction holds the row; once it commits, the call returns its account."""
    patient_id = str(uuid.uuid4())
    async with billing.engine.connect() as blocker:
        await blocker.execute(
            text(
                "INSERT INTO billing_accounts (patient_id, account_id, status, name, email)"
                " VALUES (:p, 'held-account', 'ACTIVE', 'x', 'x@example.com')"
            ),
            {"p": patient_id},
        )
        pending = asyncio.ensure_future(billing.stub.CreateBillingAccount(request(patient_id), timeout=10))
        await asyncio.sleep(0.3)
        assert not pending.done()  # waiting on the uncommitted row
        await blocker.commit()
    response = await pending
    assert response.accountId == "held-account"


async def test_deadline_is_respected_and_the_server_recovers(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    async with billing.engine.connect() as blocker:
        await blocker.execute(
            text(
                "INSERT INTO billing_accounts (patient_id, account_id, status, name, email)"
                " VALUES (:p, 'never-committed', 'ACTIVE', 'x', 'x@example.com')"
            ),
            {"p": patient_id},
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await billing.stub.CreateBillingAccount(request(patient_id), timeout=0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert await lock_waiters(billing) == 0, "the server should have abandoned its blocked INSERT"
        await blocker.rollback()
    # The server gave up on the blocked statement (its connection went back to the pool) and serves again.
    response = await billing.stub.CreateBillingAccount(request(patient_id), timeout=5)
    assert response.accountId not in {"", "never-committed"}
    assert len(await stored_accounts(billing, patient_id)) == 1
