"""The gRPC server of billing-service: BillingService, the standard health service and reflection.

Every call but health and reflection must carry a SERVICE token (billing_service.callers).

Created and started inside the running event loop (the FastAPI lifespan): grpc.aio objects made at
import time would belong to another loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer  # = grpc_health.v1.health.aio, which grpc-stubs lacks
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from billing_service.accounts.rpc import BillingServicer
from billing_service.callers import CallerCheck
from billing_service.observability import server_interceptors
from pm_common.database import database_answers
from pm_common.tokens import TokenVerifier
from pm_proto import billing_service_pb2, billing_service_pb2_grpc

log = logging.getLogger(__name__)

BILLING_SERVICE_NAME: str = billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name
HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
MAX_MESSAGE_BYTES = 1024 * 1024


def listen_address(host: str, port: int) -> str:
    """host:port as gRPC wants it (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """Owns the grpc.aio server and keeps its health status in step with the database."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        verifier: TokenVerifier,
        allow_unauthenticated: bool,
        host: str,
        port: int,
        reuse_port: bool,
        max_concurrent_rpcs: int,
        grace_seconds: float,
        check_interval_seconds: float,
    ) -> None:
        self._engine = engine
        self._callers = CallerCheck(
            verifier,
            public_services=(HEALTH_SERVICE_NAME, reflection.SERVICE_NAME),
            allow_unauthenticated=allow_unauthenticated,
        )
        self._allow_unauthenticated = allow_unauthenticated
        self._address = listen_address(host, port)
        self._reuse_port = reuse_port
        self._max_concurrent_rpcs = max_concurrent_rpcs
        self._grace_seconds = grace_seconds
        self._check_interval_seconds = check_interval_seconds
        self._server: grpc.aio.Server | None = None
        self._health = HealthServicer()
        self._watcher: asyncio.Task[None] | None = None
        self._servicer: BillingServicer | None = None
        self._serving = False
        self._stopping = False
        self.port = port

    @property
    def running(self) -> bool:
        """True between a successful start() and the beginning of stop()."""
        return self._server is not None and not self._stopping

    async def start(self) -> None:
        """Bind, register the services, start serving and begin watching the database."""
        server = grpc.aio.server(
            options=[
                # One worker: a second process on the port must fail loudly, not share it silently.
                # Several uvicorn workers: each runs this server and the kernel spreads connections.
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
            maximum_concurrent_rpcs=self._max_concurrent_rpcs,
            interceptors=[*server_interceptors(), self._callers],  # trace and metrics see every call
        )
        self._servicer = servicer = BillingServicer(self._engine)
        billing_service_pb2_grpc.add_BillingServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        # NOT_SERVING until the database has answered once (the servicer starts with "" SERVING).
        await self._set_status(serving=False, force=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (BILLING_SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.port = server.add_insecure_port(self._address)  # raises when the port cannot be bound
        await server.start()
        self._server = server
        await self.refresh()
        self._watcher = asyncio.create_task(self._watch(), name="billing-health-watcher")
        log.info("grpc server started", extra={"address": self._address, "port": self.port})
        if self._allow_unauthenticated:
            log.warning(
                "BILLING_ALLOW_UNAUTHENTICATED is on: gRPC calls without a credential are accepted"
                " (a call with an invalid one is still refused); turn it off once every caller sends a token"
            )

    async def refresh(self) -> bool:
        """Check the database now and publish SERVING/NOT_SERVING accordingly; return whether it answered."""
        ok = await database_answers(self._engine)
        await self._set_status(serving=ok)
        return ok

    async def _set_status(self, *, serving: bool, force: bool = False) -> None:
        if serving == self._serving and not force:
            return
        if not force:
            log.info("grpc health changed", extra={"serving": serving})
        self._serving = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", BILLING_SERVICE_NAME):
            await self._health.set(name, status)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval_seconds)
            await self.refresh()

    async def stop(self) -> None:
        """Report NOT_SERVING, let calls in flight finish within the grace period, then stop."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self._grace_seconds)
        if self._servicer is not None:
            await self._servicer.drain()
            log.info("grpc server stopped")
