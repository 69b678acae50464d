"""The one table the launcher knows the services by: name, command, port, health URL, env, replicas."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Service:
    """A process the launcher starts. `port` names a key of Ports; env values are format templates."""

    name: str
    port: str
    database: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    # The variable that sets how many instances `make up` runs (default 1); None: always one.
    replicas_env: str | None = None

    @property
    def command(self) -> tuple[str, ...]:
        """The console script of the service's package (the same entry point its Docker image runs)."""
        return (self.name,)

    @property
    def package(self) -> str:
        """The Python package that implements it."""
        return self.name.replace("-", "_")


# Template fields: every key of Ports; <key>_urls, the base URLs of every instance of the service on that
# port, comma-separated (one URL when it runs once); jwt_secret. Ports and addresses come from the stack,
# so the same table serves `make up` (contract ports) and test stacks (free ports).
SERVICES: tuple[Service, ...] = (
    Service(
        "billing-service",
        port="billing",
        database="billing_service",
        env={"GRPC_PORT": "{billing_grpc}", "JWT_SECRET": "{jwt_secret}"},
    ),
    Service("auth-service", port="auth", database="auth_service", env={"JWT_SECRET": "{jwt_secret}"}),
    Service(
        "patient-service",
        port="patient",
        database="patient_service",
        replicas_env="PATIENT_REPLICAS",
        env={
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:{kafka}",
            "JWT_SECRET": "{jwt_secret}",
            "BILLING_SERVICE_ADDRESS": "127.0.0.1",
            "BILLING_SERVICE_GRPC_PORT": "{billing_grpc}",
        },
    ),
    Service(
        "analytics-service",
        port="analytics",
        database="analytics_service",
        replicas_env="ANALYTICS_REPLICAS",
        env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:{kafka}", "JWT_SECRET": "{jwt_secret}"},
    ),
    Service(
        "api-gateway",
        port="gateway",
        env={
            "JWT_SECRET": "{jwt_secret}",
            "AUTH_SERVICE_URL": "http://127.0.0.1:{auth}",
            "PATIENT_SERVICE_URL": "{patient_urls}",
            "ANALYTICS_SERVICE_URL": "{analytics_urls}",
        },
    ),
)
