"""Target selection and shared fixtures of the black-box suite (HTTP via the gateway, gRPC, Kafka)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest

# The helpers live beside this file; under --import-mode=importlib that folder is not on sys.path.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from pm_e2e import api  # noqa: E402
from pm_e2e.target import (  # noqa: E402
    COMPOSE_FILE,
    Choice,
    StackControls,
    Target,
    compose_stack,
    docker_engine_available,
    start_native,
)

from pm_proto import billing_service_pb2_grpc  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    """Where the stack under test answers; without --base-url the suite starts one itself."""
    group = parser.getgroup("integration", "black-box suite (integration-tests/)")
    group.addoption(
        "--base-url",
        default=None,
        help="gateway of a running stack, e.g. http://localhost:4004 (env INTEGRATION_BASE_URL)",
    )
    group.addoption(
        "--grpc-address",
        default=None,
        help="billing gRPC host:port (env INTEGRATION_GRPC_ADDRESS; default <base-url host>:9001; 'none' skips)",
    )
    group.addoption(
        "--kafka-bootstrap",
        default=None,
        help="Kafka bootstrap host:port (env INTEGRATION_KAFKA_BOOTSTRAP; default <base-url host>:9092; 'none' skips)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """One line per test when only this suite runs (unless -q/-v was given)."""
    args = [Path(a.split("::")[0]).resolve() for a in config.args]
    if args and config.option.verbose == 0 and all(a == HERE or HERE in a.parents for a in args):
        config.option.verbose = 1


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test of this suite needs a whole stack: never part of the unit tests (`make unit`)."""
    if HERE in Path(item.path).parents:
        item.add_marker(pytest.mark.integration)


def _choice(config: pytest.Config) -> Choice:
    def pick(option: str, env: str) -> str | None:
        value = config.getoption(option) or os.environ.get(env)
        return value or None

    return Choice(
        base_url=pick("--base-url", "INTEGRATION_BASE_URL"),
        grpc_address=pick("--grpc-address", "INTEGRATION_GRPC_ADDRESS"),
        kafka_bootstrap=pick("--kafka-bootstrap", "INTEGRATION_KAFKA_BOOTSTRAP"),
        stack=os.environ.get("INTEGRATION_STACK", "auto"),
    )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The stack under test: --base-url, else docker compose (if an engine answers), else the native launcher."""
    choice = _choice(request.config)
    if choice.base_url:
        yield choice.external()
        return
    use_compose = choice.stack == "compose" or (
        choice.stack == "auto" and COMPOSE_FILE.exists() and docker_engine_available()
    )
    if use_compose:
        with compose_stack() as started:
            yield started
        return
    stack = request.getfixturevalue("test_stack")  # devstack.pytest_plugin: free ports, temp dir, test mode
    try:
        native: Target | None = start_native(stack)
        problem = ""
    except (RuntimeError, TimeoutError) as exc:
        native, problem = None, str(exc)
    if native is None:
        pytest.fail(f"could not start the native stack: {problem}", pytrace=False)
    yield native


@pytest.fixture(autouse=True)
def _stack_running(target: Target) -> None:
    """On a stack of our own, undo what an earlier (failed) fault test may have left stopped."""
    if target.controls is not None:
        target.controls.ensure_up()


@pytest.fixture(scope="session")
def client(target: Target) -> Iterator[httpx.Client]:
    """A client for the gateway; every request has a timeout."""
    with httpx.Client(base_url=target.base_url, timeout=api.HTTP_TIMEOUT) as http:
        yield http


@pytest.fixture(scope="session")
async def aclient(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    """The same for async tests (Kafka, analytics, faults), on the session's event loop."""
    async with httpx.AsyncClient(base_url=target.base_url, timeout=api.HTTP_TIMEOUT) as http:
        yield http


@pytest.fixture(scope="session")
def token(client: httpx.Client, target: Target) -> str:
    """A token of the configured user (seed user by default), obtained once."""
    response = client.post("/auth/login", json={"email": target.email, "password": target.password})
    assert response.status_code == 200, f"login as {target.email} failed: {response.status_code} {response.text}"
    return str(response.json()["token"])


@pytest.fixture(scope="session")
def auth(token: str) -> dict[str, str]:
    """Authorization header with a valid token."""
    return api.bearer(token)


@pytest.fixture(scope="session")
def jwt_secret(target: Target, client: httpx.Client) -> str:
    """The stack's JWT_SECRET: known for our own stacks, INTEGRATION_JWT_SECRET, or the demo key if it works."""
    if target.jwt_secret:
        return target.jwt_secret
    from pm_common.settings import DEMO_JWT_SECRET

    probe = client.get(
        f"/api/patients/{'0' * 8}-0000-4000-8000-{'0' * 12}",
        headers=api.bearer(api.forge_token(DEMO_JWT_SECRET)),
    )
    if probe.status_code != 401:  # the gateway accepted the token (whatever the upstream answered)
        return DEMO_JWT_SECRET  # a dev stack (make up): the published demo key is in use
    pytest.skip("the stack's JWT key is unknown: set INTEGRATION_JWT_SECRET to run the tests that forge tokens")


@pytest.fixture(scope="session")
def grpc_channel(target: Target) -> Iterator[grpc.Channel]:
    """A channel to billing's gRPC port."""
    if target.grpc_address is None:
        pytest.skip("billing gRPC checks disabled (--grpc-address none)")
    with grpc.insecure_channel(target.grpc_address) as channel:
        yield channel


if TYPE_CHECKING:
    _ClientInterceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:  # generic in grpc-stubs only
    _ClientInterceptor = grpc.UnaryUnaryClientInterceptor


class _Credential(_ClientInterceptor):
    """Adds `authorization: Bearer <service token>` to every call, as patient-service does."""

    def __init__(self, authorization: str) -> None:
        self._metadata = (("authorization", authorization),)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = (*(details.metadata or ()), *self._metadata)
        return continuation(details._replace(metadata=metadata), request)


@pytest.fixture(scope="session")
def service_token(jwt_secret: str) -> str:
    """A SERVICE token (billing's callers must present one), valid for the session."""
    return api.forge_token(jwt_secret, sub="integration-tests", role="SERVICE", exp=int(time.time()) + 6 * 3600)


@pytest.fixture(scope="session")
def billing(grpc_channel: grpc.Channel, service_token: str) -> billing_service_pb2_grpc.BillingServiceStub:
    """Stub of /BillingService, calling with a service credential."""
    channel = grpc.intercept_channel(grpc_channel, _Credential(f"Bearer {service_token}"))
    return billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def anonymous_billing(grpc_channel: grpc.Channel) -> billing_service_pb2_grpc.BillingServiceStub:
    """Stub of /BillingService without any credential."""
    return billing_service_pb2_grpc.BillingServiceStub(grpc_channel)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def kafka_bootstrap(target: Target) -> str:
    """Bootstrap address of the stack's Kafka."""
    if target.kafka_bootstrap is None:
        pytest.skip("Kafka checks disabled (--kafka-bootstrap none)")
    return target.kafka_bootstrap


@pytest.fixture
def controls(target: Target) -> StackControls:
    """Process control for fault tests; only a stack this suite started has it."""
    if target.controls is None:
        pytest.skip(
            f"fault test needs a stack the suite starts itself (this run checks an {target.origin} stack at "
            f"{target.base_url}); run without --base-url"
        )
    return target.controls
