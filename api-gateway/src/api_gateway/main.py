"""The api-gateway application: the proxy (raw ASGI) wrapped around a small FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api_gateway import health
from api_gateway.config import Settings
from api_gateway.proxy import Gateway
from api_gateway.routes import build_routes
from api_gateway.tokens import TokenVerifier
from api_gateway.upstreams import Upstreams
from pm_common.http import install_error_handlers
from pm_common.server import tune_gc
from pm_common.settings import jwt_key, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway; the upstream HTTP session is made in the lifespan."""
    settings = settings or load_settings(Settings, "api-gateway")
    upstreams = Upstreams(settings)
    routes = build_routes(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstreams.start()
        tune_gc()
        try:
            yield
        finally:
            await upstreams.close()

    # No OpenAPI of its own: /docs and /openapi.json are not gateway routes (the contract's "404").
    app = FastAPI(title="api-gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app, database=False)  # 404/405 as {"message"}; no database here
    app.state.settings = settings
    app.state.upstreams = upstreams
    app.state.routes = routes
    app.include_router(health.router)
    # The proxy sees every request first and hands the rest (health, readiness, 404) to FastAPI.
    app.add_middleware(
        Gateway, routes=routes, verifier=TokenVerifier(jwt_key(settings.jwt_secret)), upstreams=upstreams
    )
    return app
