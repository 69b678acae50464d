"""Settings: defaults and the accepted env names."""

from __future__ import annotations

import pytest

from billing_service.config import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "SERVER_PORT", "GRPC_PORT", "GRPC_SERVER_PORT", "BILLING_SERVICE_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/billing")
    settings = Settings()
    assert (settings.port, settings.grpc_port) == (4001, 9001)
    assert settings.database_url == "postgresql+asyncpg://u@db/billing"


def test_grpc_port_names_in_order_of_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/billing")
    monkeypatch.setenv("BILLING_SERVICE_GRPC_PORT", "9103")
    assert Settings().grpc_port == 9103
    monkeypatch.setenv("GRPC_SERVER_PORT", "9102")
    assert Settings().grpc_port == 9102
    monkeypatch.setenv("GRPC_PORT", "9101")
    assert Settings().grpc_port == 9101
