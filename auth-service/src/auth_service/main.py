"""auth-service: login and token validation over its users table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth_service.auth import views
from auth_service.auth.passwords import Passwords
from auth_service.auth.schemas import FIELD_MESSAGES
from auth_service.config import SERVICE, Settings
from pm_common.app import build_app
from pm_common.database import DATABASE_ERROR_HANDLERS, database_check, engine_from
from pm_common.health import health_router
from pm_common.settings import load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the engine and the password hasher are made in the lifespan."""
    settings = settings or load_settings(Settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine_from(settings)
        app.state.passwords = await asyncio.to_thread(Passwords)  # its dummy hash costs one argon2 hash
        try:
            yield
        finally:
            await app.state.engine.dispose()

    return build_app(
        settings=settings,
        title=SERVICE,
        description="Login with email and password; issues and validates HS256 JWTs.",
        routers=[views.router, health_router(checks={"database": database_check})],
        lifespan=lifespan,
        error_handlers=DATABASE_ERROR_HANDLERS,
        field_overrides=FIELD_MESSAGES,
    )
