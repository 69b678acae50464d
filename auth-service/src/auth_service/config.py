"""auth-service settings: server, database, the shared JWT key, token lifetime and demo seeding."""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, Field, model_validator

from pm_common.settings import DatabaseSettings, JwtSettings, ServiceSettings


class Settings(ServiceSettings, DatabaseSettings, JwtSettings):
    """Everything auth-service reads from the environment (see README.md for the names)."""

    port: int = Field(default=4005, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)
    jwt_lifetime_seconds: int = Field(default=36_000, validation_alias="JWT_LIFETIME_SECONDS", ge=60, le=30 * 86_400)
    # None means "the environment decides": on in dev/test, off in production.
    seed_demo_data: bool | None = Field(default=None, validation_alias="SEED_DEMO_DATA")

    @model_validator(mode="after")
    def _refuse_demo_user_in_production(self) -> Self:
        if self.seed_demo_data and not self.is_dev:
            raise ValueError("SEED_DEMO_DATA: the demo user has a published password; not allowed in production")
        return self

    @property
    def seed_enabled(self) -> bool:
        """Whether the prestart step inserts the demo user."""
        return self.is_dev if self.seed_demo_data is None else self.seed_demo_data
