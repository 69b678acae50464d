"""analytics-service settings: HTTP port, database, Kafka topics/group and consumer tuning."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from pm_common.settings import DatabaseSettings, JwtSettings, KafkaSettings, ServiceSettings

SERVICE = "analytics-service"


class Settings(ServiceSettings, DatabaseSettings, KafkaSettings, JwtSettings):
    """Env: PORT (4002), DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, KAFKA_GROUP_ID, ..."""

    # The original listened on 8080 by mistake; the contract says 4002.
    port: int = Field(default=4002, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)
    kafka_topic: str = Field(default="patient", validation_alias="KAFKA_TOPIC", min_length=1)
    kafka_dlt_topic: str = Field(default="patient.DLT", validation_alias="KAFKA_DLT_TOPIC", min_length=1)
    kafka_group_id: str = Field(
        default="analytics-service",
        validation_alias=AliasChoices("KAFKA_GROUP_ID", "SPRING_KAFKA_CONSUMER_GROUP_ID"),
        min_length=1,
    )
    consumer_batch_size: int = Field(default=500, validation_alias="CONSUMER_BATCH_SIZE", ge=1, le=5000)
    consumer_poll_timeout_seconds: float = Field(default=1.0, validation_alias="CONSUMER_POLL_TIMEOUT_SECONDS", ge=0.01)
    # /health reports the consumer DOWN when its loop has not polled for this long (aio-libs/aiokafka#1037).
    consumer_max_poll_age_seconds: float = Field(default=30.0, validation_alias="CONSUMER_MAX_POLL_AGE_SECONDS", gt=0)
    # While Kafka has not been reached since start, /health stays UP for this long.
    consumer_start_grace_seconds: float = Field(default=60.0, validation_alias="CONSUMER_START_GRACE_SECONDS", ge=0)
    consumer_max_poll_interval_seconds: float = Field(
        default=300.0, validation_alias="CONSUMER_MAX_POLL_INTERVAL_SECONDS", ge=10
    )
    consumer_session_timeout_seconds: float = Field(
        default=30.0, validation_alias="CONSUMER_SESSION_TIMEOUT_SECONDS", ge=6
    )
    # Upper bound of the backoff between retries of a batch that could not be stored.
    consumer_retry_max_delay_seconds: float = Field(
        default=10.0, validation_alias="CONSUMER_RETRY_MAX_DELAY_SECONDS", gt=0
    )
    # Off: each batch saves the ping's BEGIN/SELECT/ROLLBACK; a batch that meets a dropped connection fails,
    # invalidates the pool and is read again after consumer_retry (bench/README.md has the restart test).
    database_pool_pre_ping: bool = Field(default=False, validation_alias="DATABASE_POOL_PRE_PING")
