"""billing-service: the gRPC server (run by the lifespan on GRPC_PORT) and HTTP health on PORT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from billing_service.config import SERVICE, Settings
from billing_service.grpc_server import GrpcServer
from pm_common.app import build_app
from pm_common.database import DATABASE_ERROR_HANDLERS, engine_from
from pm_common.health import health_router
from pm_common.settings import jwt_key, load_settings
from pm_common.tokens import TokenVerifier


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the engine and the gRPC server live exactly as long as it (one set per uvicorn worker)."""
    settings = settings or load_settings(Settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from(settings)
        grpc_server = GrpcServer(
            engine=engine,
            verifier=TokenVerifier(jwt_key(settings.jwt_secret)),
            allow_unauthenticated=settings.billing_allow_unauthenticated,
            host=settings.host,
            port=settings.grpc_port,
            reuse_port=settings.workers > 1,
            max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
            grace_seconds=settings.grpc_grace_seconds,
            check_interval_seconds=settings.health_check_interval_seconds,
        )
        try:
            await grpc_server.start()
            app.state.grpc_server = grpc_server
            yield
        finally:
            await grpc_server.stop()
            await engine.dispose()

    return build_app(
        settings=settings,
        title=SERVICE,
        description="Billing accounts over gRPC (BillingService/CreateBillingAccount); this HTTP port serves health.",
        routers=[health_router(checks={"database": _database_check, "grpc": _grpc_check})],
        lifespan=lifespan,
        error_handlers=DATABASE_ERROR_HANDLERS,
    )


async def _database_check(request: Request) -> bool:
    """Check the database now; this also refreshes the gRPC health status."""
    grpc_server: GrpcServer = request.app.state.grpc_server
    return await grpc_server.refresh()


async def _grpc_check(request: Request) -> bool:
    grpc_server: GrpcServer = request.app.state.grpc_server
    return grpc_server.running
