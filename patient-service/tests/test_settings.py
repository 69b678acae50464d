"""Settings: the contract's defaults and names, the original's aliases, demo data off in production."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from patient_service.config import Settings

URL = "postgresql://u@localhost/patient_service"
# A key of this deployment's own (the demo key is refused in production).
OWN_KEY = base64.b64encode(b"a-key-of-this-deployment-32-bytes-long!").decode()


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("PORT", "SERVER_PORT", "ENVIRONMENT", "SEED_DEMO_DATA", "BILLING_SERVICE_ADDRESS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWT_SECRET", OWN_KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, DATABASE_URL=URL)
    assert s.port == 4000
    assert s.billing_target == "localhost:9001"
    assert s.billing_deadline_seconds == 2.0
    assert s.patient_topic == "patient"
    assert s.database_url == "postgresql+asyncpg://u@localhost/patient_service"
    assert s.outbox_relay_enabled
    assert not s.seed_enabled  # production is the default environment


@pytest.mark.parametrize(
    ("environment", "flag", "seeded"),
    [
        ("dev", None, True),
        ("test", None, True),
        ("dev", "false", False),
        ("production", None, False),
        ("production", "false", False),
    ],
)
def test_seed_default_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: str, flag: str | None, seeded: bool
) -> None:
    env = {"DATABASE_URL": URL, "ENVIRONMENT": environment}
    if flag is not None:
        env["SEED_DEMO_DATA"] = flag
    assert settings(monkeypatch, **env).seed_enabled is seeded


def test_demo_data_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="SEED_DEMO_DATA"):
        settings(monkeypatch, DATABASE_URL=URL, ENVIRONMENT="production", SEED_DEMO_DATA="true")


def test_the_originals_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch,
        SPRING_DATASOURCE_URL="jdbc:postgresql://db:5432/patients",
        SPRING_DATASOURCE_USERNAME="admin",
        SPRING_DATASOURCE_PASSWORD="p@ss",
        SPRING_KAFKA_BOOTSTRAP_SERVERS="kafka:9092",
        SERVER_PORT="4100",
        BILLING_SERVICE_ADDRESS="billing-service",
        BILLING_SERVICE_GRPC_PORT="9101",
    )
    assert s.database_url == "postgresql+asyncpg://admin:p%40ss@db:5432/patients"
    assert s.kafka_bootstrap_servers == "kafka:9092"
    assert s.port == 4100
    assert s.billing_target == "billing-service:9101"


def test_a_missing_database_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPRING_DATASOURCE_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        settings(monkeypatch)
