"""Standard gRPC health, server reflection and HTTP /health of a real billing-service.

Health and reflection need no credential: these tests call them on a channel that sends none.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from asgi_lifespan import LifespanManager
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from billing_service.main import create_app
from devstack.process import free_port
from pm_proto import billing_service_pb2, billing_service_pb2_grpc

from .conftest import Billing, billing_settings, service_channel


async def health_status(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def test_health_service_reports_serving(billing: Billing) -> None:
    async with grpc.aio.insecure_channel(billing.address) as channel:  # no credential
        assert await health_status(channel, "") == health_pb2.HealthCheckResponse.SERVING
        assert await health_status(channel, "BillingService") == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_status(channel, "NoSuchService")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def reflect(channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(timeout=5)
    await call.write(request)
    response = await call.read()
    await call.done_writing()
    return response


async def test_reflection_lists_and_describes_billing_service(billing: Billing) -> None:
    async with grpc.aio.insecure_channel(billing.address) as channel:  # no credential
        listed = await reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        described = await reflect(
            channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol="BillingService")
        )
    names = {s.name for s in listed.list_services_response.service}
    assert {"BillingService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    services = {s.name: [m.name for m in s.method] for f in files for s in f.service}
    assert services["BillingService"] == ["CreateBillingAccount", "GetBillingAccount", "CloseBillingAccount"]
    messages = {m.name: [(fd.name, fd.number) for fd in m.field] for f in files for m in f.message_type}
    assert messages["BillingRequest"] == [("patientId", 1), ("name", 2), ("email", 3)]
    assert messages["BillingResponse"] == [("accountId", 1), ("status", 2)]


async def test_http_health_up(billing: Billing) -> None:
    response = await billing.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "UP", "checks": {"database": "UP", "grpc": "UP"}}


async def test_database_down_means_unavailable_everywhere() -> None:
    """Nothing listens where the database should be: health says so and calls get a retryable UNAVAILABLE."""
    settings = billing_settings(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/missing")
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://billing") as http,
        service_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
    ):
        response = await http.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "DOWN", "checks": {"database": "DOWN", "grpc": "UP"}}
        assert await health_status(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await health_status(channel, "BillingService") == health_pb2.HealthCheckResponse.NOT_SERVING
        stub = billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateBillingAccount(billing_service_pb2.BillingRequest(patientId="p-1"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == "billing database unavailable, retry later"


async def test_grpc_port_in_use_fails_startup(billing: Billing) -> None:
    """A second instance on the same gRPC port refuses to start instead of sharing it silently."""
    settings = billing_settings(billing.settings.database_url, grpc_port=billing.settings.grpc_port)
    with pytest.raises(RuntimeError):
        async with LifespanManager(create_app(settings), startup_timeout=30):
            pass
