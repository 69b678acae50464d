"""auth-service settings: server, database, the shared JWT key, token lifetime and demo seeding."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pm_common.settings import DatabaseSettings, DemoDataSettings, JwtSettings, ServiceSettings

SERVICE = "auth-service"


class Settings(ServiceSettings, DatabaseSettings, JwtSettings, DemoDataSettings):
    """Everything auth-service reads from the environment (see README.md for the names)."""

    port: int = Field(default=4005, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)
    jwt_lifetime_seconds: int = Field(default=36_000, validation_alias="JWT_LIFETIME_SECONDS", ge=60, le=30 * 86_400)
