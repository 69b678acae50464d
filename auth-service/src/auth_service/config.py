"""auth-service settings: server, database, the shared JWT key, token lifetime, login throttling, demo seeding."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pm_common.settings import DatabaseSettings, DemoDataSettings, JwtSettings, RetentionSettings, ServiceSettings

SERVICE = "auth-service"


class Settings(ServiceSettings, DatabaseSettings, JwtSettings, DemoDataSettings, RetentionSettings):
    """Everything auth-service reads from the environment (see README.md for the names)."""

    port: int = Field(default=4005, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)
    jwt_lifetime_seconds: int = Field(default=36_000, validation_alias="JWT_LIFETIME_SECONDS", ge=60, le=30 * 86_400)
    # Failed logins for one email within a window; beyond the limit that email gets 429 until the window ends.
    login_failure_limit: int = Field(default=5, validation_alias="LOGIN_FAILURE_LIMIT", ge=1, le=1_000_000)
    login_failure_window_seconds: int = Field(
        default=900, validation_alias="LOGIN_FAILURE_WINDOW_SECONDS", ge=1, le=30 * 86_400
    )
    # Login attempts from one client address within a window.
    login_client_limit: int = Field(default=30, validation_alias="LOGIN_CLIENT_LIMIT", ge=1, le=1_000_000)
    login_client_window_seconds: int = Field(
        default=60, validation_alias="LOGIN_CLIENT_WINDOW_SECONDS", ge=1, le=86_400
    )
