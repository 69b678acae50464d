"""Settings of patient-service, from the environment (names in upper case; the original's as aliases)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pm_common.settings import (
    DatabaseSettings,
    DemoDataSettings,
    JwtSettings,
    KafkaSettings,
    RetentionSettings,
    ServiceSettings,
)

SERVICE = "patient-service"


class Settings(ServiceSettings, DatabaseSettings, KafkaSettings, JwtSettings, DemoDataSettings, RetentionSettings):
    """Everything patient-service reads from its environment."""

    port: int = Field(default=4000, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)

    # Sized to the requests one worker has in flight (the gateway sends up to UPSTREAM_POOL_SIZE=100): a request
    # that must wait for a pooled connection can be overtaken again and again (asyncio.Queue lets newcomers
    # barge), which turned 32 concurrent GETs into a p99 of ~70 ms with 10 connections, ~20 ms with 32.
    database_pool_size: int = Field(default=32, validation_alias="DATABASE_POOL_SIZE", ge=1, le=200)
    # Off: the hot GET path saves a round trip per request; reads retry once on a dropped connection
    # instead, and a write on one gets a 503 (bench/README.md has the measurements and the restart test).
    database_pool_pre_ping: bool = Field(default=False, validation_alias="DATABASE_POOL_PRE_PING")

    billing_service_address: str = Field(default="localhost", validation_alias="BILLING_SERVICE_ADDRESS", min_length=1)
    billing_service_grpc_port: int = Field(default=9001, validation_alias="BILLING_SERVICE_GRPC_PORT", gt=0, lt=65536)
    billing_deadline_seconds: float = Field(default=2.0, validation_alias="BILLING_DEADLINE_SECONDS", gt=0, le=60)

    patient_topic: str = Field(default="patient", validation_alias="PATIENT_TOPIC", min_length=1)
    outbox_relay_enabled: bool = Field(default=True, validation_alias="OUTBOX_RELAY_ENABLED")
    outbox_batch_size: int = Field(default=100, validation_alias="OUTBOX_BATCH_SIZE", ge=1, le=1000)
    outbox_poll_interval_seconds: float = Field(
        default=0.2, validation_alias="OUTBOX_POLL_INTERVAL_SECONDS", gt=0, le=60
    )
    outbox_initial_backoff_seconds: float = Field(
        default=0.5, validation_alias="OUTBOX_INITIAL_BACKOFF_SECONDS", gt=0, le=60
    )
    outbox_max_backoff_seconds: float = Field(
        default=30.0, validation_alias="OUTBOX_MAX_BACKOFF_SECONDS", gt=0, le=3600
    )
    # The audit trail: reads (and refusals) are written in batches at most this far apart; AUDIT_READS=false
    # stops recording successful reads (for measuring what the trail costs; writes and refusals are always kept).
    audit_reads: bool = Field(default=True, validation_alias="AUDIT_READS")
    audit_flush_interval_seconds: float = Field(
        default=0.5, validation_alias="AUDIT_FLUSH_INTERVAL_SECONDS", gt=0, le=60
    )
    kafka_send_timeout_seconds: float = Field(default=10.0, validation_alias="KAFKA_SEND_TIMEOUT_SECONDS", gt=0, le=300)

    @property
    def billing_target(self) -> str:
        """host:port of billing-service's gRPC server."""
        return f"{self.billing_service_address}:{self.billing_service_grpc_port}"
