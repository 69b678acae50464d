"""Billing accounts ride the outbox: every created patient gets exactly its account call, billing down or not."""

from __future__ import annotations

import uuid

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.kafka import KafkaBroker
from patient_service.outbox.events import billing_request_row
from pm_proto import billing_service_pb2

from .conftest import BillingServer, outbox_rows, running_service, service_settings, wait_until


async def billing_states(engine: AsyncEngine) -> list[str]:
    return [row.state for row in await outbox_rows(engine, destination="billing-account")]


async def test_each_create_asks_billing_for_an_account(
    migrated_url: str, engine: AsyncEngine, billing: BillingServer
) -> None:
    settings = service_settings(migrated_url, billing_service_grpc_port=billing.port)
    async with running_service(settings) as service:
        created = [await service.create() for _ in range(3)]

        async def all_sent() -> bool:
            return await billing_states(engine) == ["SENT"] * 3

        await wait_until(all_sent)
    requests = {r.patientId: (r.name, r.email) for r in billing.servicer.calls}
    assert requests == {p["id"]: (p["name"], p["email"]) for p in created}
    assert len(billing.servicer.calls) == 3


@pytest.mark.fault
async def test_billing_down_creates_succeed_and_accounts_follow(
    migrated_url: str, engine: AsyncEngine, billing: BillingServer, kafka: KafkaBroker
) -> None:
    await billing.stop()
    settings = service_settings(
        migrated_url, billing_service_grpc_port=billing.port, kafka_bootstrap_servers=kafka.bootstrap
    )
    async with running_service(settings) as service:
        created = [await service.create() for _ in range(5)]  # every one 201 while billing is down

        async def retried_while_down() -> bool:
            rows = await outbox_rows(engine, destination="billing-account")
            return len(rows) == 5 and all(r.state == "PENDING" and r.attempts >= 1 for r in rows)

        await wait_until(retried_while_down)
        rows = await outbox_rows(engine, destination="billing-account")
        assert {r.last_error for r in rows} == {"UNAVAILABLE"}

        # Billing being down never holds back the Kafka events.
        async def events_sent() -> bool:
            rows = await outbox_rows(engine, destination="patient-event")
            return len(rows) == 5 and all(r.state == "SENT" for r in rows)

        await wait_until(events_sent)
        assert (await service.http.get("/health")).status_code == 200

        await billing.start()

        async def accounts_created() -> bool:
            return await billing_states(engine) == ["SENT"] * 5

        await wait_until(accounts_created, timeout_seconds=30)
    assert billing.servicer.patient_ids() == {p["id"] for p in created}


async def test_unavailable_is_retried_by_the_channel_within_one_call(
    migrated_url: str, engine: AsyncEngine, billing: BillingServer
) -> None:
    billing.servicer.fail_next = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    settings = service_settings(migrated_url, billing_service_grpc_port=billing.port)
    async with running_service(settings) as service:
        created = await service.create()

        async def sent() -> bool:
            return await billing_states(engine) == ["SENT"]

        await wait_until(sent)
    (row,) = await outbox_rows(engine, destination="billing-account")
    assert row.attempts == 0  # the channel's retry policy absorbed both failures
    assert [c.patientId for c in billing.servicer.calls] == [created["id"]] * 3


async def test_other_errors_and_deadlines_are_retried_by_the_relay(
    migrated_url: str, engine: AsyncEngine, billing: BillingServer
) -> None:
    billing.servicer.fail_next = [grpc.StatusCode.INTERNAL]
    billing.servicer.delay_next_seconds = [0.0, 1.5]  # the second call answers after the deadline
    settings = service_settings(migrated_url, billing_service_grpc_port=billing.port, billing_deadline_seconds=0.5)
    async with running_service(settings) as service:
        created = await service.create()

        async def sent() -> bool:
            return await billing_states(engine) == ["SENT"]

        await wait_until(sent)
    (row,) = await outbox_rows(engine, destination="billing-account")
    assert row.attempts == 2  # INTERNAL (not retried by the channel), then DEADLINE_EXCEEDED, then OK
    assert [c.patientId for c in billing.servicer.calls] == [created["id"]] * 3
    assert billing.servicer.patient_ids() == {created["id"]}


async def test_invalid_argument_parks_the_row(migrated_url: str, engine: AsyncEngine, billing: BillingServer) -> None:
    poison = billing_request_row(patient={"id": uuid.uuid4(), "name": "x", "email": "x@example.com"})
    poison["payload"] = billing_service_pb2.BillingRequest(patientId="", name="x").SerializeToString()
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO outbox (event_id, destination, aggregate_id, event_type, payload) "
                "VALUES (:event_id, :destination, :aggregate_id, :event_type, :payload)"
            ),
            poison,
        )
    settings = service_settings(migrated_url, billing_service_grpc_port=billing.port)
    async with running_service(settings) as service:
        created = await service.create()

        async def settled() -> bool:
            return sorted(await billing_states(engine)) == ["PARKED", "SENT"]

        await wait_until(settled)
        health = (await service.http.get("/health")).json()["checks"]
        assert health["outbox"]["parked"] == 1
    rows = {r.state: r for r in await outbox_rows(engine, destination="billing-account")}
    assert rows["PARKED"].last_error == "INVALID_ARGUMENT"
    assert rows["PARKED"].event_id == poison["event_id"]
    assert billing.servicer.patient_ids() == {created["id"]}
