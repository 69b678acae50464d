"""api-gateway settings: server, the shared JWT key, upstream URLs (one or several each) and per-route timeouts."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator, model_validator

from pm_common.settings import JwtSettings, ServiceSettings

SERVICE = "api-gateway"


class Settings(ServiceSettings, JwtSettings):
    """Everything api-gateway reads from the environment (see README.md for the names)."""

    port: int = Field(default=4004, validation_alias=AliasChoices("PORT", "SERVER_PORT"), gt=0, lt=65536)

    auth_service_url: str = Field(default="http://localhost:4005", validation_alias="AUTH_SERVICE_URL")
    patient_service_url: str = Field(default="http://localhost:4000", validation_alias="PATIENT_SERVICE_URL")
    analytics_service_url: str = Field(default="http://localhost:4002", validation_alias="ANALYTICS_SERVICE_URL")

    # Timeouts for every upstream call (seconds). connect: TCP connect of a new connection; pool: wait
    # for a free pooled connection; read: the longest silence between two reads of the response.
    upstream_connect_timeout_seconds: float = Field(
        default=2.0, validation_alias="UPSTREAM_CONNECT_TIMEOUT_SECONDS", gt=0, le=60
    )
    upstream_pool_timeout_seconds: float = Field(
        default=2.0, validation_alias="UPSTREAM_POOL_TIMEOUT_SECONDS", gt=0, le=60
    )
    upstream_read_timeout_seconds: float = Field(
        default=10.0, validation_alias="UPSTREAM_READ_TIMEOUT_SECONDS", gt=0, le=600
    )
    # Per-route read timeouts; unset means UPSTREAM_READ_TIMEOUT_SECONDS.
    auth_read_timeout_seconds: float | None = Field(
        default=None, validation_alias="AUTH_READ_TIMEOUT_SECONDS", gt=0, le=600
    )
    patient_read_timeout_seconds: float | None = Field(
        default=None, validation_alias="PATIENT_READ_TIMEOUT_SECONDS", gt=0, le=600
    )
    analytics_read_timeout_seconds: float | None = Field(
        default=None, validation_alias="ANALYTICS_READ_TIMEOUT_SECONDS", gt=0, le=600
    )
    # Connection pool to all upstreams together; idle connections are closed before uvicorn's 5 s
    # keep-alive would close them under us.
    upstream_pool_size: int = Field(default=100, validation_alias="UPSTREAM_POOL_SIZE", ge=1, le=10_000)
    upstream_keepalive_seconds: float = Field(default=4.0, validation_alias="UPSTREAM_KEEPALIVE_SECONDS", gt=0, le=300)
    readiness_timeout_seconds: float = Field(default=2.0, validation_alias="READINESS_TIMEOUT_SECONDS", gt=0, le=60)
    # The request head must be complete within this many seconds of its first byte (api_gateway.protocol).
    header_read_timeout_seconds: float = Field(
        default=10.0, validation_alias="HEADER_READ_TIMEOUT_SECONDS", gt=0, le=600
    )
    # The whole request body must arrive within this many seconds of the request head (slow clients).
    request_body_timeout_seconds: float = Field(
        default=20.0, validation_alias="REQUEST_BODY_TIMEOUT_SECONDS", gt=0, le=600
    )
    # Passive health and retries over a service's instances (see README.md): an instance that refuses
    # connections sits out this long, doubling per failure up to the max; at most this many attempts.
    upstream_cooldown_seconds: float = Field(default=1.0, validation_alias="UPSTREAM_COOLDOWN_SECONDS", gt=0, le=300)
    upstream_max_cooldown_seconds: float = Field(
        default=10.0, validation_alias="UPSTREAM_MAX_COOLDOWN_SECONDS", gt=0, le=3600
    )
    upstream_max_attempts: int = Field(default=2, validation_alias="UPSTREAM_MAX_ATTEMPTS", ge=1, le=10)
    # /metrics is served on this port only (bound to HOST), never through the public routes; 0: not served.
    metrics_port: int = Field(default=9464, validation_alias="METRICS_PORT", ge=0, lt=65536)
    # Browser origins allowed to call the API (comma-separated); empty: CORS stays closed.
    cors_allowed_origins: str = Field(default="", validation_alias="CORS_ALLOWED_ORIGINS")

    @field_validator("auth_service_url", "patient_service_url", "analytics_service_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # One base URL, or several (the instances of a replicated service), comma-separated.
        urls = [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
        for url in urls:
            if not url.startswith(("http://", "https://")) or not url.split("://", 1)[1].strip("/"):
                raise ValueError("must be an http:// or https:// URL, or a comma-separated list of them")
        if not urls:
            raise ValueError("must be an http:// or https:// URL, or a comma-separated list of them")
        if len(set(urls)) != len(urls):
            raise ValueError("lists a URL twice")
        return ",".join(urls)

    @model_validator(mode="after")
    def _check_cooldown(self) -> Settings:
        if self.upstream_max_cooldown_seconds < self.upstream_cooldown_seconds:
            raise ValueError("UPSTREAM_MAX_COOLDOWN_SECONDS must not be below UPSTREAM_COOLDOWN_SECONDS")
        return self

    @field_validator("cors_allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        origins = [origin.strip() for origin in value.split(",") if origin.strip()]
        for origin in origins:
            host = origin.split("://", 1)[-1]
            if not origin.startswith(("http://", "https://")) or not host or "/" in host:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path, no '*')")
        return ",".join(origins)

    def cors_origins(self) -> frozenset[bytes]:
        """CORS_ALLOWED_ORIGINS as the byte strings a request's Origin header is compared with."""
        return frozenset(origin.encode() for origin in self.cors_allowed_origins.split(",") if origin)

    def read_timeout(self, per_route: float | None) -> float:
        """A route's read timeout: its own setting, else the default."""
        return self.upstream_read_timeout_seconds if per_route is None else per_route


def service_urls(value: str) -> tuple[str, ...]:
    """The base URLs of a `*_SERVICE_URL` setting (one, or the comma-separated instances of a service)."""
    return tuple(url for url in value.split(",") if url)
