"""auth-service: login (throttled), token validation and, for ADMINs, user management over its users table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth_service.auth import views
from auth_service.auth.models import idempotency_keys, login_attempts
from auth_service.auth.passwords import Passwords
from auth_service.auth.schemas import FIELD_MESSAGES
from auth_service.auth.throttle import THROTTLE_ERROR_HANDLERS, LoginThrottle
from auth_service.config import SERVICE, Settings
from auth_service.users import views as user_views
from pm_common.app import background, build_app
from pm_common.auth import AUTH_ERROR_HANDLERS
from pm_common.database import DATABASE_ERROR_HANDLERS, database_check, engine_from, purge_expired_periodically
from pm_common.health import health_router
from pm_common.idempotency import IDEMPOTENCY_ERROR_HANDLERS
from pm_common.settings import jwt_key, load_settings
from pm_common.tokens import TokenVerifier


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; the engine, the password hasher and the counters' cleanup are made in the lifespan."""
    settings = settings or load_settings(Settings, SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from(settings)
        app.state.engine = engine
        app.state.passwords = await asyncio.to_thread(Passwords)  # its dummy hash costs one argon2 hash
        purge = purge_expired_periodically(
            engine,
            tables=(login_attempts, idempotency_keys),
            interval_seconds=settings.purge_interval_seconds,
        )
        try:
            async with background(purge, name="purge-expired"):
                yield
        finally:
            await engine.dispose()

    app = build_app(
        settings=settings,
        title=SERVICE,
        description="Login with email and password; issues and validates HS256 JWTs; ADMINs manage users.",
        routers=[views.router, user_views.router, health_router(checks={"database": database_check})],
        lifespan=lifespan,
        error_handlers={
            **DATABASE_ERROR_HANDLERS,
            **AUTH_ERROR_HANDLERS,
            **THROTTLE_ERROR_HANDLERS,
            **IDEMPOTENCY_ERROR_HANDLERS,
        },
        field_overrides=FIELD_MESSAGES,
        invalid_path_message="User id must be a UUID",
    )
    app.state.throttle = LoginThrottle.from_settings(settings)
    app.state.token_verifier = TokenVerifier(jwt_key(settings.jwt_secret))
    return app
