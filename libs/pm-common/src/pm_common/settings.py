"""Settings pieces shared by the services: environment, server, database, Kafka and JWT key."""

from __future__ import annotations

import base64
import binascii
import sys
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The demo key that `make up`, docker-compose's .env.example and the tests use. Anything outside
# dev/test mode refuses it: it is published in this repository.
DEMO_JWT_SECRET = base64.b64encode(b"patient-management-demo-key-never-use-in-production").decode()


class Environment(StrEnum):
    """Where a service runs: dev and test accept demo data and the demo secret; production does not."""

    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


def _check_jwt_secret(value: SecretStr) -> SecretStr:
    try:
        key = base64.b64decode(value.get_secret_value(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be standard base64") from None
    if len(key) < 32:
        raise ValueError(f"must decode to at least 32 bytes (got {len(key)})")
    return value


JwtSecret = Annotated[SecretStr, AfterValidator(_check_jwt_secret)]


def jwt_key(secret: SecretStr) -> bytes:
    """The HMAC key: the decoded bytes of the base64 JWT_SECRET (as the original used it)."""
    return base64.b64decode(secret.get_secret_value())


class SettingsPiece(BaseSettings):
    """Base of every settings piece, so that a service's class combining several has one config."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ServiceSettings(SettingsPiece):
    """Settings every process has. Env names are upper case; the original's names are aliases."""

    environment: Environment = Field(default=Environment.PRODUCTION, validation_alias="ENVIRONMENT")
    host: str = Field(default="0.0.0.0", validation_alias="HOST")
    port: int = Field(validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)
    workers: int = Field(default=1, validation_alias="WORKERS", ge=1, le=64)
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    # Tracing: pm_common.telemetry reads the standard OTEL_* variables itself; these are declared so that a
    # protocol it does not speak is refused at start. Empty endpoint: nothing is exported.
    otel_exporter_otlp_endpoint: str = Field(default="", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf", validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    otel_traces_sampler: str = Field(default="parentbased_always_on", validation_alias="OTEL_TRACES_SAMPLER")

    @property
    def is_dev(self) -> bool:
        """True in dev and test mode, where demo data and the demo secret are allowed."""
        return self.environment is not Environment.PRODUCTION


class JwtSettings(SettingsPiece):
    """The shared HS256 key (auth-service signs with it, api-gateway verifies with it)."""

    jwt_secret: JwtSecret = Field(validation_alias="JWT_SECRET", repr=False)

    @model_validator(mode="after")
    def _refuse_demo_secret_outside_dev(self) -> Self:
        environment = getattr(self, "environment", Environment.PRODUCTION)
        if environment is Environment.PRODUCTION and self.jwt_secret.get_secret_value() == DEMO_JWT_SECRET:
            raise ValueError("JWT_SECRET is the published demo key; set a secret of your own in production")
        return self


def jdbc_to_asyncpg_url(jdbc_url: str, username: str | None, password: str | None) -> str:
    """Turn `jdbc:postgresql://host:port/db` plus credentials into a SQLAlchemy asyncpg URL."""
    if not jdbc_url.startswith("jdbc:postgresql://"):
        raise ValueError("SPRING_DATASOURCE_URL must start with jdbc:postgresql://")
    parts = urlsplit(jdbc_url.removeprefix("jdbc:"))
    credentials = ""
    if username:
        credentials = quote(username, safe="")
        if password:
            credentials += ":" + quote(password, safe="")
        credentials += "@"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(("postgresql+asyncpg", credentials + host, parts.path, parts.query, ""))


def asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError("must be a postgresql:// URL")
    return f"postgresql+asyncpg://{rest}"


class DatabaseSettings(SettingsPiece):
    """DATABASE_URL, or the original's SPRING_DATASOURCE_URL/USERNAME/PASSWORD."""

    database_url: str = Field(default="", validation_alias="DATABASE_URL", repr=False)
    spring_datasource_url: str | None = Field(default=None, validation_alias="SPRING_DATASOURCE_URL")
    spring_datasource_username: str | None = Field(default=None, validation_alias="SPRING_DATASOURCE_USERNAME")
    spring_datasource_password: SecretStr | None = Field(
        default=None, validation_alias="SPRING_DATASOURCE_PASSWORD", repr=False
    )
    database_pool_size: int = Field(default=10, validation_alias="DATABASE_POOL_SIZE", ge=1, le=200)
    # Every statement and connect attempt is bounded; PostgreSQL cancels a statement running longer.
    database_statement_timeout_seconds: float = Field(
        default=10.0, validation_alias="DATABASE_STATEMENT_TIMEOUT_SECONDS", gt=0, le=600
    )
    # Test each connection as it leaves the pool (a round trip): a service on a hot path turns it off and
    # retries a read that meets a dropped connection instead (bench/README.md).
    database_pool_pre_ping: bool = Field(default=True, validation_alias="DATABASE_POOL_PRE_PING")

    @model_validator(mode="before")
    @classmethod
    def _resolve_database_url(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        lowered = {str(k).lower(): v for k, v in data.items()}
        data = {k: v for k, v in data.items() if str(k).lower() != "database_url"}
        url = lowered.get("database_url")
        if url:
            data["DATABASE_URL"] = asyncpg_url(str(url))
        elif lowered.get("spring_datasource_url"):
            password = lowered.get("spring_datasource_password")
            if isinstance(password, SecretStr):
                password = password.get_secret_value()
            data["DATABASE_URL"] = jdbc_to_asyncpg_url(
                str(lowered["spring_datasource_url"]), lowered.get("spring_datasource_username"), password
            )
        else:
            raise ValueError("DATABASE_URL is required (or SPRING_DATASOURCE_URL with USERNAME/PASSWORD)")
        return data


class KafkaSettings(SettingsPiece):
    """Where the Kafka brokers are (KAFKA_BOOTSTRAP_SERVERS, alias SPRING_KAFKA_BOOTSTRAP_SERVERS)."""

    kafka_bootstrap_servers: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SPRING_KAFKA_BOOTSTRAP_SERVERS"),
        min_length=1,
    )


class RetentionSettings(SettingsPiece):
    """How long an Idempotency-Key is kept, and how often expired rows (keys, counters) are deleted."""

    # A repeat within this time replays the first answer; after it the key is free again.
    idempotency_key_ttl_seconds: float = Field(
        default=86_400, validation_alias="IDEMPOTENCY_KEY_TTL_SECONDS", gt=0, le=30 * 86_400
    )
    purge_interval_seconds: float = Field(default=300, validation_alias="PURGE_INTERVAL_SECONDS", gt=0, le=86_400)


class DemoDataSettings(SettingsPiece):
    """SEED_DEMO_DATA: the published demo rows (user, patients) are for dev/test and refused in production."""

    # None means "the environment decides": on in dev/test, off in production.
    seed_demo_data: bool | None = Field(default=None, validation_alias="SEED_DEMO_DATA")

    @model_validator(mode="after")
    def _refuse_demo_data_in_production(self) -> Self:
        environment = getattr(self, "environment", Environment.PRODUCTION)
        if self.seed_demo_data and environment is Environment.PRODUCTION:
            raise ValueError("SEED_DEMO_DATA: the demo data has a published password; not allowed in production")
        return self

    @property
    def seed_enabled(self) -> bool:
        """Whether the prestart step inserts the demo data: SEED_DEMO_DATA, else on in dev/test only."""
        environment = getattr(self, "environment", Environment.PRODUCTION)
        return environment is not Environment.PRODUCTION if self.seed_demo_data is None else self.seed_demo_data


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], service: str) -> SettingsT:
    """Build the settings or stop the process with one line per bad setting, naming its env var."""
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "configuration"
            lines.append(f"  {name}: {error['msg']}")
        sys.stderr.write(f"{service}: refusing to start, invalid settings:\n" + "\n".join(lines) + "\n")
        raise SystemExit(2) from None
