"""Settings: defaults, the accepted env names and the JWT key its callers sign with."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from billing_service.config import Settings
from pm_common.settings import DEMO_JWT_SECRET, jwt_key

OWN_SECRET = base64.b64encode(b"k" * 32).decode()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENVIRONMENT", "JWT_SECRET", "BILLING_ALLOW_UNAUTHENTICATED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/billing")
    monkeypatch.setenv("JWT_SECRET", OWN_SECRET)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "SERVER_PORT", "GRPC_PORT", "GRPC_SERVER_PORT", "BILLING_SERVICE_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.port, settings.grpc_port) == (4001, 9001)
    assert settings.database_url == "postgresql+asyncpg://u@db/billing"
    assert jwt_key(settings.jwt_secret) == b"k" * 32
    assert settings.billing_allow_unauthenticated is False


def test_jwt_secret_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET")
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings()


@pytest.mark.parametrize(
    ("secret", "message"),
    [("not base64!", "must be standard base64"), (base64.b64encode(b"short").decode(), "at least 32 bytes")],
)
def test_a_bad_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch, secret: str, message: str) -> None:
    monkeypatch.setenv("JWT_SECRET", secret)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_demo_jwt_secret_only_in_dev_and_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", DEMO_JWT_SECRET)
    with pytest.raises(ValidationError, match="published demo key"):
        Settings()  # ENVIRONMENT defaults to production
    for environment in ("dev", "test"):
        monkeypatch.setenv("ENVIRONMENT", environment)
        assert Settings().jwt_secret.get_secret_value() == DEMO_JWT_SECRET


def test_the_secret_is_not_in_the_repr() -> None:
    assert OWN_SECRET not in repr(Settings())


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("false", False), ("0", False)])
def test_allow_unauthenticated(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("BILLING_ALLOW_UNAUTHENTICATED", value)
    assert Settings().billing_allow_unauthenticated is expected


def test_grpc_port_names_in_order_of_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_SERVICE_GRPC_PORT", "9103")
    assert Settings().grpc_port == 9103
    monkeypatch.setenv("GRPC_SERVER_PORT", "9102")
    assert Settings().grpc_port == 9102
    monkeypatch.setenv("GRPC_PORT", "9101")
    assert Settings().grpc_port == 9101
