"""Fault tests (issue 4): Kafka, billing and analytics stopped mid-flight; nothing lost, nothing counted twice.

They stop and start processes, so they run only on a stack this suite started itself (the `controls`
fixture skips them, saying why, when the suite checks a stack given with --base-url).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pm_e2e import api, events
from pm_e2e.target import StackControls

from pm_proto import billing_service_pb2_grpc

pytestmark = pytest.mark.fault


async def test_kafka_outage_delivers_every_event_and_analytics_counts_each_once(
    aclient: httpx.AsyncClient, auth: dict[str, str], controls: StackControls, kafka_bootstrap: str
) -> None:
    before = await api.quiet_counts(aclient, auth)
    start = await events.end_offsets(kafka_bootstrap)

    await asyncio.to_thread(controls.stop_kafka)
    try:
        created = [await api.create_patient_async(aclient, auth) for _ in range(3)]  # the outbox keeps them
        await asyncio.sleep(3)  # let the relay and the consumer notice the broker is gone
        created.append(await api.create_patient_async(aclient, auth))
    finally:
        await asyncio.to_thread(controls.start_kafka)

    await api.wait_counts(aclient, auth, api.plus(before, PATIENT_CREATED=4), timeout_seconds=120, settle_seconds=5)
    for patient in created:
        found = await events.read_from(
            kafka_bootstrap, start, events.events_of(patient["id"]), want=1, timeout_seconds=30
        )
        assert {r.event().event_type for r in found} == {"PATIENT_CREATED"}, patient["id"]
        assert len({r.event().event_id for r in found}) == 1, "a redelivery must carry the same event id"


async def test_billing_outage_keeps_creates_working_and_accounts_follow(
    aclient: httpx.AsyncClient,
    auth: dict[str, str],
    controls: StackControls,
    grpc_channel: grpc.Channel,
    billing: billing_service_pb2_grpc.BillingServiceStub,
) -> None:
    await asyncio.to_thread(controls.stop_service, "billing-service")
    try:
        created = []
        for _ in range(2):
            started = time.monotonic()
            created.append(await api.create_patient_async(aclient, auth))
            assert time.monotonic() - started < 15, "a create waited too long on the missing billing service"
    finally:
        await asyncio.to_thread(controls.start_service, "billing-service")

    health = health_pb2_grpc.HealthStub(grpc_channel)
    response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10, wait_for_ready=True)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    for patient in created:
        # Made by patient-service's relay once billing was back: this test never asks billing to create it.
        account = await asyncio.to_thread(api.wait_for_account, billing, patient["id"], timeout_seconds=40)
        assert account.status == "ACTIVE"
        assert account.accountId


async def test_analytics_restart_keeps_counts_and_counts_nothing_twice(
    aclient: httpx.AsyncClient, auth: dict[str, str], controls: StackControls
) -> None:
    before = await api.quiet_counts(aclient, auth)

    await asyncio.to_thread(controls.stop_service, "analytics-service")
    try:
        down = await aclient.get("/api/analytics/summary", headers=auth)
        assert down.status_code == 503, f"gateway with analytics down: {down.status_code} {down.text[:200]}"
        for _ in range(2):
            await api.create_patient_async(aclient, auth)
    finally:
        await asyncio.to_thread(controls.start_service, "analytics-service")

    expected = api.plus(before, PATIENT_CREATED=2)
    await api.wait_counts(aclient, auth, expected, timeout_seconds=60, settle_seconds=3)

    await asyncio.to_thread(controls.stop_service, "analytics-service")
    await asyncio.to_thread(controls.start_service, "analytics-service")
    await api.wait_counts(aclient, auth, expected, timeout_seconds=0, settle_seconds=5)
