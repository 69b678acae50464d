"""Settings: the JWT key is checked, the demo key and demo user are refused in production."""

from __future__ import annotations

import base64

import pytest

from auth_service.config import Settings
from pm_common.settings import DEMO_JWT_SECRET, load_settings

GOOD_SECRET = base64.b64encode(b"x" * 32).decode()
THROTTLE = {
    "LOGIN_FAILURE_LIMIT": ("login_failure_limit", 5),
    "LOGIN_FAILURE_WINDOW_SECONDS": ("login_failure_window_seconds", 900),
    "LOGIN_CLIENT_LIMIT": ("login_client_limit", 30),
    "LOGIN_CLIENT_WINDOW_SECONDS": ("login_client_window_seconds", 60),
    "PURGE_INTERVAL_SECONDS": ("purge_interval_seconds", 300),
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment with a database URL and no JWT settings."""
    for name in (
        "JWT_SECRET",
        "ENVIRONMENT",
        "SEED_DEMO_DATA",
        "JWT_LIFETIME_SECONDS",
        "PORT",
        "SERVER_PORT",
        *THROTTLE,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://user@127.0.0.1:5432/auth")
    return monkeypatch


@pytest.mark.parametrize(
    ("environment", "secret"),
    [
        pytest.param("dev", None, id="missing"),
        pytest.param("dev", "not base64!", id="malformed-base64"),
        pytest.param("dev", base64.b64encode(b"short key").decode(), id="shorter-than-32-bytes"),
        pytest.param("production", DEMO_JWT_SECRET, id="demo-key-in-production"),
    ],
)
def test_bad_jwt_secret_stops_the_process_naming_it(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], environment: str, secret: str | None
) -> None:
    env.setenv("ENVIRONMENT", environment)
    if secret is not None:
        env.setenv("JWT_SECRET", secret)

    with pytest.raises(SystemExit) as stopped:
        load_settings(Settings, "auth-service")

    assert stopped.value.code == 2
    assert "JWT_SECRET" in capsys.readouterr().err


def test_defaults(env: pytest.MonkeyPatch) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)

    settings = load_settings(Settings, "auth-service")

    assert settings.port == 4005
    assert settings.jwt_lifetime_seconds == 36_000
    assert settings.seed_enabled is False  # production is the default environment
    assert settings.database_url == "postgresql+asyncpg://user@127.0.0.1:5432/auth"


def test_demo_key_and_seed_are_fine_in_dev(env: pytest.MonkeyPatch) -> None:
    env.setenv("ENVIRONMENT", "dev")
    env.setenv("JWT_SECRET", DEMO_JWT_SECRET)
    env.setenv("JWT_LIFETIME_SECONDS", "600")

    settings = load_settings(Settings, "auth-service")

    assert settings.seed_enabled is True
    assert settings.jwt_lifetime_seconds == 600


def test_seed_can_be_switched_off(env: pytest.MonkeyPatch) -> None:
    env.setenv("ENVIRONMENT", "test")
    env.setenv("JWT_SECRET", DEMO_JWT_SECRET)
    env.setenv("SEED_DEMO_DATA", "false")

    assert load_settings(Settings, "auth-service").seed_enabled is False


def test_demo_user_is_refused_in_production(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)
    env.setenv("SEED_DEMO_DATA", "true")

    with pytest.raises(SystemExit):
        load_settings(Settings, "auth-service")

    assert "SEED_DEMO_DATA" in capsys.readouterr().err


def test_login_throttling_defaults_and_overrides(env: pytest.MonkeyPatch) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)
    defaults = load_settings(Settings, "auth-service")
    for name in THROTTLE:
        env.setenv(name, "7")

    overridden = load_settings(Settings, "auth-service")

    for field, default in THROTTLE.values():
        assert getattr(defaults, field) == default
        assert getattr(overridden, field) == 7


@pytest.mark.parametrize("name", sorted(THROTTLE))
def test_throttling_settings_refuse_zero(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)
    env.setenv(name, "0")

    with pytest.raises(SystemExit):
        load_settings(Settings, "auth-service")

    assert name in capsys.readouterr().err
