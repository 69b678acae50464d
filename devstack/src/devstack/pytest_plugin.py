"""pytest fixtures for tests that need real PostgreSQL, Kafka or the whole stack (free ports, temp dirs).

Fixtures start what they provide on first use, once per test session, and stop it at the end:
- `test_stack`: the Stack (ports, dirs, env_for/start_services/stop_service), its processes under a
  supervisord of its own (one killed is restarted; one stopped stays stopped until started again);
- `postgres`: the running PostgresCluster; `database_url`: a fresh empty database per test;
- `kafka`: the running KafkaBroker (tests may stop and start it; it is restarted if left stopped).

Every test that uses none of them (and is not marked `integration`) is marked `unit`: `pytest -m unit`
runs those alone, without PostgreSQL, Kafka or Java.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresCluster
from devstack.stack import Ports, Stack

_database_numbers = itertools.count(1)
INFRASTRUCTURE_FIXTURES = frozenset({"test_stack", "postgres", "database_url", "kafka"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `unit` every test that needs no infrastructure fixture."""
    for item in items:
        needs = INFRASTRUCTURE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if not needs and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def test_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack on free ports in a temporary folder, in test mode; torn down after the session."""
    if request.config.option.markexpr == "unit":
        pytest.fail("a test marked `unit` asked for PostgreSQL, Kafka or the stack (request.getfixturevalue?)")
    state_dir = Path(tempfile.mkdtemp(prefix="pm-test-stack-"))
    stack = Stack(
        state_dir=state_dir,
        ports=Ports.free(),
        environment="test",
        fast_postgres=True,
        log_level=os.environ.get("TEST_LOG_LEVEL", "INFO"),
    )
    try:
        yield stack
    finally:
        stack.down()
        if os.environ.get("PM_KEEP_TEST_STATE"):
            print(f"\ntest stack state kept in {state_dir}")
        else:
            stack.clean()
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(test_stack: Stack) -> PostgresCluster:
    """PostgreSQL of the test stack, started on first use."""
    if not test_stack.postgres.running:
        test_stack.start_postgres()
    return test_stack.postgres


@pytest.fixture
def database_url(postgres: PostgresCluster) -> str:
    """A new, empty database for one test (SQLAlchemy asyncpg URL)."""
    return postgres.create_database(f"test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(scope="session")
def _kafka_session(test_stack: Stack) -> KafkaBroker:
    test_stack.start_kafka()
    return test_stack.kafka


@pytest.fixture
def kafka(_kafka_session: KafkaBroker) -> Iterator[KafkaBroker]:
    """The test stack's broker, running; if a test stopped it, it is started again afterwards."""
    if not _kafka_session.running:
        _kafka_session.start()
    yield _kafka_session
    if not _kafka_session.running:
        _kafka_session.start()
