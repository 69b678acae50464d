"""Settings: defaults (port 4002, not the original's 8080) and the accepted env names."""

from __future__ import annotations

import pytest

from analytics_service.config import Settings
from pm_common.settings import DEMO_JWT_SECRET


@pytest.fixture(autouse=True)
def _jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", DEMO_JWT_SECRET)
    monkeypatch.setenv("ENVIRONMENT", "test")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "SERVER_PORT", "KAFKA_TOPIC", "KAFKA_DLT_TOPIC", "KAFKA_GROUP_ID", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/analytics")
    settings = Settings()
    assert settings.port == 4002
    assert (settings.kafka_topic, settings.kafka_dlt_topic, settings.kafka_group_id) == (
        "patient",
        "patient.DLT",
        "analytics-service",
    )


def test_original_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SPRING_DATASOURCE_URL", "jdbc:postgresql://db:5432/analytics")
    monkeypatch.setenv("SPRING_DATASOURCE_USERNAME", "admin")
    monkeypatch.setenv("SPRING_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://admin@db:5432/analytics"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
