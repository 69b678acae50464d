"""Settings pieces: env names and aliases, JDBC conversion, the JWT key rules, the exit message."""

import base64

import pytest
from pydantic import ValidationError

from pm_common.settings import (
    DEMO_JWT_SECRET,
    DatabaseSettings,
    Environment,
    JwtSettings,
    KafkaSettings,
    ServiceSettings,
    jdbc_to_asyncpg_url,
    jwt_key,
    load_settings,
)


class AppSettings(ServiceSettings, DatabaseSettings, KafkaSettings, JwtSettings):
    """A service's settings, assembled as every service does."""


GOOD_SECRET = base64.b64encode(b"x" * 32).decode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "SPRING_DATASOURCE_URL",
        "SPRING_DATASOURCE_USERNAME",
        "SPRING_DATASOURCE_PASSWORD",
        "KAFKA_BOOTSTRAP_SERVERS",
        "SPRING_KAFKA_BOOTSTRAP_SERVERS",
        "JWT_SECRET",
        "ENVIRONMENT",
        "PORT",
        "SERVER_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_python_style_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4000")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/patients")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    settings = AppSettings()
    assert settings.port == 4000
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/patients"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.environment is Environment.PRODUCTION
    assert jwt_key(settings.jwt_secret) == b"x" * 32


def test_the_originals_spring_names_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_PORT", "4000")
    monkeypatch.setenv("SPRING_DATASOURCE_URL", "jdbc:postgresql://patient-service-db:5432/db")
    monkeypatch.setenv("SPRING_DATASOURCE_USERNAME", "admin_user")
    monkeypatch.setenv("SPRING_DATASOURCE_PASSWORD", "p@ss:word/")
    monkeypatch.setenv("SPRING_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    settings = AppSettings()
    assert settings.port == 4000
    assert settings.database_url == "postgresql+asyncpg://admin_user:p%40ss%3Aword%2F@patient-service-db:5432/db"
    assert settings.kafka_bootstrap_servers == "kafka:9092"


def test_the_password_is_not_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/x")
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    assert "hunter2" not in repr(AppSettings())
    assert GOOD_SECRET not in repr(AppSettings())


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("not base64!", "base64"),
        (base64.b64encode(b"short").decode(), "at least 32 bytes"),
        (DEMO_JWT_SECRET, "demo key"),
    ],
)
def test_bad_jwt_secrets_are_refused_in_production(monkeypatch: pytest.MonkeyPatch, secret: str, problem: str) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ValidationError, match=problem):
        AppSettings()


def test_the_demo_secret_is_accepted_in_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("ENVIRONMENT", "dev")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("JWT_SECRET", DEMO_JWT_SECRET)
    assert AppSettings().is_dev


def test_missing_settings_stop_the_process_naming_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        load_settings(AppSettings, "demo-service")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "demo-service: refusing to start" in err
    assert "DATABASE_URL" in err


def test_missing_jwt_secret_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    with pytest.raises(SystemExit):
        load_settings(AppSettings, "demo-service")
    assert "JWT_SECRET" in capsys.readouterr().err


def test_a_malformed_port_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    with pytest.raises(SystemExit):
        load_settings(AppSettings, "demo-service")
    assert "PORT" in capsys.readouterr().err


def test_jdbc_url_needs_the_postgresql_scheme() -> None:
    with pytest.raises(ValueError, match="jdbc:postgresql"):
        jdbc_to_asyncpg_url("jdbc:mysql://db/x", None, None)
    assert jdbc_to_asyncpg_url("jdbc:postgresql://db:5432/x?sslmode=require", "u", None) == (
        "postgresql+asyncpg://u@db:5432/x?sslmode=require"
    )


def test_a_non_postgres_database_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("DATABASE_URL", "mysql://db/x")
    monkeypatch.setenv("JWT_SECRET", GOOD_SECRET)
    with pytest.raises(ValidationError, match="postgresql"):
        AppSettings()


def test_settings_can_be_built_in_code_by_field_name() -> None:
    settings = AppSettings(port=4000, database_url="postgresql://db/x", jwt_secret=GOOD_SECRET)
    assert (settings.port, settings.database_url) == (4000, "postgresql+asyncpg://db/x")
