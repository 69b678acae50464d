"""The `billing-service` console script as the launcher runs it: migrate, serve HTTP and gRPC, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import grpc
import httpx
import pytest

from devstack import process
from pm_common.settings import DEMO_JWT_SECRET
from pm_proto import billing_service_pb2, billing_service_pb2_grpc

from .conftest import service_channel


async def test_console_script_serves_both_ports_with_two_workers(tmp_path: Path, database_url: str) -> None:
    """WORKERS=2: both uvicorn workers run a gRPC server on the one port (SO_REUSEPORT)."""
    http_port, grpc_port = process.free_port(), process.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_"))},
        "ENVIRONMENT": "test",
        "HOST": "127.0.0.1",
        "PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "WORKERS": "2",
        "DATABASE_URL": database_url,
        "JWT_SECRET": DEMO_JWT_SECRET,
    }
    pid_file, log_file = tmp_path / "billing.pid", tmp_path / "billing.log"
    process.start([str(Path(sys.executable).parent / "billing-service")], pid_file=pid_file, log_file=log_file, env=env)
    try:
        await asyncio.to_thread(
            process.wait_http_ok, f"http://127.0.0.1:{http_port}/health", timeout_seconds=60, pid_file=pid_file
        )
        for _ in range(300):  # both workers bound the gRPC port (the second may start later than the first)
            if log_file.read_text().count("grpc server started") == 2:
                break
            await asyncio.sleep(0.1)
        assert log_file.read_text().count("grpc server started") == 2
        async with service_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]
            # Separate connections may land on different workers; all share the one database.
            first = await stub.CreateBillingAccount(
                billing_service_pb2.BillingRequest(patientId="cli-1", name="Grace Example", email="grace@example.com"),
                timeout=10,
            )
        async with service_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]
            again = await stub.CreateBillingAccount(billing_service_pb2.BillingRequest(patientId="cli-1"), timeout=10)
        assert again.accountId == first.accountId
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # no credential: refused
            stub = billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CreateBillingAccount(billing_service_pb2.BillingRequest(patientId="cli-2"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        async with httpx.AsyncClient(timeout=5) as client:
            docs = await client.get(f"http://127.0.0.1:{http_port}/openapi.json")
        assert docs.status_code == 200
        assert "/health" in docs.json()["paths"]
    finally:
        assert process.stop(pid_file, timeout_seconds=20)
    log = log_file.read_text()
    assert "Traceback" not in log
    assert log.count("grpc server stopped") == 2
    assert log.count("grpc call refused") == 1
    # No patient data in any log line.
    assert "Grace Example" not in log
    assert "grace@example.com" not in log
