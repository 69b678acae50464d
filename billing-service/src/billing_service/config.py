"""billing-service settings: HTTP port (health, docs), gRPC port, database, the JWT key its callers sign with."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pm_common.settings import DatabaseSettings, JwtSettings, ServiceSettings

SERVICE = "billing-service"


class Settings(ServiceSettings, DatabaseSettings, JwtSettings):
    """Env: PORT (4001), GRPC_PORT (9001), DATABASE_URL, JWT_SECRET, plus the shared pieces."""

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
    grpc_grace_seconds: float = Field(default=5.0, validation_alias="GRPC_GRACE_SECONDS", ge=0)
    health_check_interval_seconds: float = Field(default=5.0, validation_alias="HEALTH_CHECK_INTERVAL_SECONDS", gt=0)
    # An RPC's deadline is short (patient-service gives it 2 s): a statement must give up well before.
    database_statement_timeout_seconds: float = Field(
        default=5.0, validation_alias="DATABASE_STATEMENT_TIMEOUT_SECONDS", gt=0, le=600
    )
    # Off: the ping is BEGIN/SELECT/ROLLBACK before every call. A call that meets a dropped connection fails
    # (UNAVAILABLE), the pool is invalidated, and the caller's retry (the outbox relay's) gets a fresh one.
    database_pool_pre_ping: bool = Field(default=False, validation_alias="DATABASE_POOL_PRE_PING")
    # For a deployment whose patient-service is still the original (Java) one, which sends no credential:
    # calls without one are accepted (with a warning at start-up); a call with a bad credential is still refused.
    billing_allow_unauthenticated: bool = Field(default=False, validation_alias="BILLING_ALLOW_UNAUTHENTICATED")
