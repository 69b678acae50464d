"""api-gateway: the proxy (raw ASGI, in front) and a small FastAPI app for /health, /ready and 404s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api_gateway.config import SERVICE, Settings
from api_gateway.health import health_routers
from api_gateway.proxy import Gateway
from api_gateway.refusals import RefusalRecorder
from api_gateway.routes import build_routes
from api_gateway.upstreams import Upstreams
from pm_common.app import build_app
from pm_common.settings import jwt_key, load_settings
from pm_common.tokens import ServiceTokens, TokenVerifier


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway; the upstream HTTP session is made in the lifespan."""
    settings = settings or load_settings(Settings, SERVICE)
    upstreams = Upstreams(settings)
    routes = build_routes(settings)
    refusals = RefusalRecorder(
        upstreams=upstreams,
        patients=routes.balancer_of("patient-service"),
        credentials=ServiceTokens(jwt_key(settings.jwt_secret), service=SERVICE),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstreams.start()
        refusals.start()
        try:
            yield
        finally:
            await refusals.close()  # a clean shutdown hands over every queued refusal
            await upstreams.close()

    app = build_app(
        settings=settings,
        title=SERVICE,
        description="The only public door: verifies JWTs and proxies to the services.",
        routers=health_routers(settings, upstreams, routes.upstreams()),
        lifespan=lifespan,
        metrics_port=settings.metrics_port,  # not on the public port
        # No OpenAPI of its own: /docs and /openapi.json are not gateway routes (the contract's 404).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    # The proxy sees every request first and hands the rest (health, readiness, 404) to the app.
    app.add_middleware(
        Gateway,
        routes=routes,
        verifier=TokenVerifier(jwt_key(settings.jwt_secret)),
        upstreams=upstreams,
        body_timeout_seconds=settings.request_body_timeout_seconds,
        head_timeout_seconds=settings.header_read_timeout_seconds,
        cors_origins=settings.cors_origins(),
        refusals=refusals,
    )
    return app
