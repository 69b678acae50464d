"""The FastAPI application of auth-service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth_service import health
from auth_service.auth import views
from auth_service.auth.passwords import Passwords
from auth_service.auth.schemas import FIELD_MESSAGES
from auth_service.auth.tokens import Tokens
from auth_service.config import Settings
from pm_common.database import create_engine
from pm_common.http import install_http_basics
from pm_common.server import tune_gc
from pm_common.settings import jwt_key, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine and the password hasher are made in the lifespan."""
    settings = settings or load_settings(Settings, "auth-service")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        app.state.engine = engine
        # Making the dummy hash costs one argon2 hash: do it off the loop.
        app.state.passwords = await asyncio.to_thread(Passwords)
        tune_gc()  # after start-up: freeze what imports left, so full collections do not stall requests
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="auth-service",
        version="1.0.0",
        description="Login with email and password; issues and validates HS256 JWTs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.tokens = Tokens(key=jwt_key(settings.jwt_secret), lifetime_seconds=settings.jwt_lifetime_seconds)
    install_http_basics(app, field_overrides=FIELD_MESSAGES)
    app.include_router(views.router)
    app.include_router(health.router)
    return app
