"""billing-service settings: HTTP port (health, docs), gRPC port, database."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pm_common.settings import DatabaseSettings, ServiceSettings


class Settings(ServiceSettings, DatabaseSettings):
    """Env: PORT (4001), GRPC_PORT (9001), DATABASE_URL, plus the shared pieces."""

    port: int = Field(default=4001, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)
    # GRPC_SERVER_PORT is the original's Spring property (grpc.server.port); BILLING_SERVICE_GRPC_PORT is
    # what patient-service dials, so a shared env file that sets only that one still lines both sides up.
    grpc_port: int = Field(
        default=9001,
        validation_alias=AliasChoices("GRPC_PORT", "GRPC_SERVER_PORT", "BILLING_SERVICE_GRPC_PORT"),
        gt=0,
        lt=65536,
    )
    grpc_max_concurrent_rpcs: int = Field(default=200, validation_alias="GRPC_MAX_CONCURRENT_RPCS", ge=1)
    grpc_grace_s: float = Field(default=5.0, validation_alias="GRPC_GRACE_S", ge=0)
    health_check_interval_s: float = Field(default=5.0, validation_alias="HEALTH_CHECK_INTERVAL_S", gt=0)
    statement_timeout_ms: int = Field(default=5_000, validation_alias="DATABASE_STATEMENT_TIMEOUT_MS", ge=100)
