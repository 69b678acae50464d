"""What each service installs, read from uv.lock: the gateway image carries no database or Kafka client."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATABASE_AND_KAFKA = {"sqlalchemy", "asyncpg", "alembic", "aiokafka"}


def installed_by(package: str) -> set[str]:
    """Every package `uv sync --no-dev --package <package>` installs (the closure over uv.lock, extras included)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages: dict[str, dict[str, Any]] = {entry["name"]: entry for entry in lock["package"]}
    seen: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(package, ())]
    while pending:
        name, extras = pending.pop()
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        entry = packages[name]
        wanted = list(entry.get("dependencies", []))
        for extra in extras:
            wanted += entry.get("optional-dependencies", {}).get(extra, [])
        pending += [(dep["name"], tuple(dep.get("extra", ()))) for dep in wanted]
    return {key.split("[", 1)[0] for key in seen}


def test_the_gateway_installs_no_database_or_kafka_client() -> None:
    assert installed_by("api-gateway") & DATABASE_AND_KAFKA == set()


@pytest.mark.parametrize(
    ("service", "clients"),
    [
        ("auth-service", {"sqlalchemy", "asyncpg", "alembic"}),
        ("billing-service", {"sqlalchemy", "asyncpg", "alembic"}),
        ("patient-service", DATABASE_AND_KAFKA),
        ("analytics-service", DATABASE_AND_KAFKA),
    ],
)
def test_each_service_installs_the_clients_it_uses(service: str, clients: set[str]) -> None:
    assert installed_by(service) & DATABASE_AND_KAFKA == clients
