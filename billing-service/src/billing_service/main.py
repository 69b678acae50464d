"""The billing-service app: HTTP (health, OpenAPI) on PORT; its lifespan runs the gRPC server on GRPC_PORT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from billing_service.config import Settings
from billing_service.grpc_server import GrpcServer
from billing_service.health import router as health_router
from pm_common.database import create_engine
from pm_common.http import install_http_basics
from pm_common.server import tune_gc
from pm_common.settings import load_settings

SERVICE = "billing-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Engine and gRPC server live exactly as long as the app (one set per uvicorn worker)."""
    settings: Settings = app.state.settings
    engine = create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.statement_timeout_ms,
    )
    grpc_server = GrpcServer(
        engine=engine,
        host=settings.host,
        port=settings.grpc_port,
        reuse_port=settings.workers > 1,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        grace_s=settings.grpc_grace_s,
        check_interval_s=settings.health_check_interval_s,
    )
    try:
        await grpc_server.start()
        app.state.grpc_server = grpc_server
        tune_gc()
        yield
    finally:
        await grpc_server.stop()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings come from the environment when not given (uvicorn's factory call)."""
    if settings is None:
        settings = load_settings(Settings, SERVICE)
    app = FastAPI(
        title="billing-service",
        summary="Billing accounts over gRPC (BillingService/CreateBillingAccount); this HTTP port serves health.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_http_basics(app)
    app.include_router(health_router)
    return app
