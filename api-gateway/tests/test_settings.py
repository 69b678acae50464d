"""Gateway settings: defaults, the JWT key checks and upstream URLs."""

from __future__ import annotations

import base64

import pytest

from api_gateway.config import Settings
from api_gateway.routes import build_routes
from pm_common.settings import DEMO_JWT_SECRET, load_settings

GOOD_SECRET = base64.b64encode(b"y" * 48).decode()
NAMES = (
    "JWT_SECRET",
    "ENVIRONMENT",
    "PORT",
    "SERVER_PORT",
    "AUTH_SERVICE_URL",
    "PATIENT_SERVICE_URL",
    "ANALYTICS_SERVICE_URL",
    "UPSTREAM_CONNECT_TIMEOUT_SECONDS",
    "UPSTREAM_READ_TIMEOUT_SECONDS",
    "UPSTREAM_POOL_TIMEOUT_SECONDS",
    "PATIENT_READ_TIMEOUT_SECONDS",
    "CORS_ALLOWED_ORIGINS",
    "HEADER_READ_TIMEOUT_SECONDS",
    "REQUEST_BODY_TIMEOUT_SECONDS",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any gateway setting."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_contract_ports(env: pytest.MonkeyPatch) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)

    settings = load_settings(Settings, "api-gateway")

    assert settings.port == 4004
    assert (settings.auth_service_url, settings.patient_service_url, settings.analytics_service_url) == (
        "http://localhost:4005",
        "http://localhost:4000",
        "http://localhost:4002",
    )
    timeout = build_routes(settings).match(b"/api/patients")[0].timeout  # type: ignore[index]
    assert (timeout.sock_connect, timeout.connect, timeout.sock_read, timeout.total) == (2.0, 4.0, 10.0, None)


def test_per_route_read_timeout_overrides_the_default(env: pytest.MonkeyPatch) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)
    env.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "7")
    env.setenv("PATIENT_READ_TIMEOUT_SECONDS", "3")

    routes = build_routes(load_settings(Settings, "api-gateway"))

    assert routes.match(b"/api/patients/1")[0].timeout.sock_read == 3  # type: ignore[index]
    assert routes.match(b"/auth/login")[0].timeout.sock_read == 7  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "value", "environment"),
    [
        ("JWT_SECRET", None, "dev"),
        ("JWT_SECRET", "%%%", "dev"),
        ("JWT_SECRET", base64.b64encode(b"too short").decode(), "dev"),
        ("JWT_SECRET", DEMO_JWT_SECRET, "production"),
        ("PATIENT_SERVICE_URL", "patient-service:4000", "dev"),
        ("AUTH_SERVICE_URL", "ftp://auth", "dev"),
        ("UPSTREAM_READ_TIMEOUT_SECONDS", "0", "dev"),
        ("CORS_ALLOWED_ORIGINS", "*", "dev"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example/", "dev"),
        ("CORS_ALLOWED_ORIGINS", "app.example", "dev"),
        ("HEADER_READ_TIMEOUT_SECONDS", "0", "dev"),
    ],
)
def test_bad_settings_stop_the_process_naming_them(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str | None, environment: str
) -> None:
    env.setenv("ENVIRONMENT", environment)
    if name != "JWT_SECRET":
        env.setenv("JWT_SECRET", GOOD_SECRET)
    if value is not None:
        env.setenv(name, value)

    with pytest.raises(SystemExit):
        load_settings(Settings, "api-gateway")

    assert name in capsys.readouterr().err


def test_cors_is_closed_by_default_and_origins_are_a_comma_separated_list(env: pytest.MonkeyPatch) -> None:
    env.setenv("JWT_SECRET", GOOD_SECRET)
    assert load_settings(Settings, "api-gateway").cors_origins() == frozenset()

    env.setenv("CORS_ALLOWED_ORIGINS", " https://app.example, http://localhost:3000 ,")
    settings = load_settings(Settings, "api-gateway")

    assert settings.cors_origins() == {b"https://app.example", b"http://localhost:3000"}
    assert (settings.header_read_timeout_seconds, settings.request_body_timeout_seconds) == (10.0, 20.0)
