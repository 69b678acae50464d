"""Real processes for the gateway's tests: auth-service (devstack), echo upstreams, the gateway itself."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn

from api_gateway.config import Settings
from api_gateway.main import create_app
from api_gateway.protocol import EdgeHttpToolsProtocol
from devstack import process
from devstack.postgres import PostgresCluster
from devstack.process import free_port
from devstack.stack import Stack
from pm_common.settings import DEMO_JWT_SECRET

ECHO_SCRIPT = Path(__file__).with_name("echo_upstream.py")
KEY = base64.b64decode(DEMO_JWT_SECRET)
# Patient calls through the test gateway time out after this many seconds (the 504 test waits longer).
PATIENT_READ_TIMEOUT_SECONDS = 1.0


class EchoUpstream:
    """echo_upstream.py in its own process on a free port; can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state = Path(tempfile.mkdtemp(prefix="echo-upstream-"))
        self._pid_file, self._log_file = state / "echo.pid", state / "echo.log"

    def start(self) -> None:
        """Start it and wait until /health answers."""
        process.start(
            [sys.executable, str(ECHO_SCRIPT), str(self.port)], pid_file=self._pid_file, log_file=self._log_file
        )
        process.wait_http_ok(self.url + "/health", timeout_seconds=20, pid_file=self._pid_file)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait until it is gone."""
        process.stop(self._pid_file, timeout_seconds=10)

    def seen_request_ids(self) -> list[str]:
        """X-Request-IDs it received so far."""
        return list(httpx.get(self.url + "/__seen", timeout=2).json())


@pytest.fixture(scope="session")
def echo() -> Iterator[EchoUpstream]:
    """The stand-in for patient-service, for the whole session."""
    upstream = EchoUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def auth_service_url(postgres: PostgresCluster, test_stack: Stack) -> str:
    """A real auth-service process (migrated, demo user seeded) of the session's test stack."""
    service = test_stack.service("auth-service")
    test_stack.start_services([service])
    return test_stack.url(service)


def gateway_settings(**values: Any) -> Settings:
    """Test-mode gateway settings with the demo key; `values` by field name."""
    defaults: dict[str, Any] = {"environment": "test", "jwt_secret": DEMO_JWT_SECRET, "port": 4004}
    return Settings(**(defaults | values))


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[str]:
    """The gateway app under a real uvicorn server on a free port, in this event loop; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        http=EdgeHttpToolsProtocol,  # as the gateway is to be served (api_gateway.protocol)
        loop="none",
        # As pm_common.server.serve runs it: no Server header, client address never taken from X-Forwarded-For.
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
def dead_url() -> str:
    """A URL nobody listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
async def gateway(auth_service_url: str, echo: EchoUpstream, dead_url: str) -> AsyncIterator[str]:
    """The gateway: real auth-service, echo as patient-service, analytics-service down."""
    settings = gateway_settings(
        auth_service_url=auth_service_url,
        patient_service_url=echo.url,
        analytics_service_url=dead_url,
        patient_read_timeout_seconds=PATIENT_READ_TIMEOUT_SECONDS,
    )
    async with running_gateway(settings) as url:
        yield url


@pytest.fixture(scope="session")
async def echo_gateway(echo: EchoUpstream) -> AsyncIterator[str]:
    """A gateway whose every upstream is the echo (to see what auth and analytics would receive)."""
    settings = gateway_settings(auth_service_url=echo.url, patient_service_url=echo.url, analytics_service_url=echo.url)
    async with running_gateway(settings) as url:
        yield url


@pytest.fixture
async def client(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the gateway (real TCP)."""
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        yield client


@pytest.fixture
async def echo_client(echo_gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the all-echo gateway."""
    async with httpx.AsyncClient(base_url=echo_gateway, timeout=30) as client:
        yield client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """An Authorization header with a fresh ADMIN token of the demo key (every JWT route lets it through)."""
    now = int(time.time())
    claims = {"sub": "admin@test.com", "role": "ADMIN", "iat": now, "exp": now + 600}
    return {"Authorization": f"Bearer {jwt.encode(claims, KEY, algorithm='HS256')}"}


@pytest.fixture
def echo_factory() -> Iterator[Callable[[], EchoUpstream]]:
    """Start extra echo upstreams for one test (a test may stop them); all stopped afterwards."""
    started: list[EchoUpstream] = []

    def start() -> EchoUpstream:
        upstream = EchoUpstream()
        upstream.start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
def gateway_factory(echo: EchoUpstream) -> Callable[..., contextlib.AbstractAsyncContextManager[str]]:
    """Run an extra gateway for one test: every upstream the echo unless overridden (field names)."""

    def run(**overrides: Any) -> contextlib.AbstractAsyncContextManager[str]:
        urls = {"auth_service_url": echo.url, "patient_service_url": echo.url, "analytics_service_url": echo.url}
        return running_gateway(gateway_settings(**(urls | overrides)))

    return run
