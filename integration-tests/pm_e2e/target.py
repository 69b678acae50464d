"""Which stack the suite checks: a running one (--base-url), docker compose, or the native launcher."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from devstack.services import SERVICES
from devstack.stack import Stack
from pm_common.settings import DEMO_JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SEED_EMAIL = "testuser@test.com"
SEED_PASSWORD = "password123"  # the contract's demo user (dev/test seed data)
DISABLED = "none"
SERVICE_NAMES = ("billing-service", "auth-service", "patient-service", "analytics-service", "api-gateway")


class StackControls(Protocol):
    """Process control the fault tests need; only a stack the suite started itself offers it."""

    def stop_kafka(self) -> None:
        """Stop the broker (its data is kept)."""

    def start_kafka(self) -> None:
        """Start the broker again and wait until it serves."""

    def stop_service(self, name: str) -> None:
        """Stop one service by name (e.g. billing-service)."""

    def start_service(self, name: str) -> None:
        """Start one service and wait until its /health is 200."""

    def ensure_up(self) -> None:
        """Start whatever an earlier test left stopped."""


@dataclass(frozen=True)
class Target:
    """Where the stack answers. grpc_address/kafka_bootstrap are None when the user disabled them."""

    origin: str  # "external", "compose" or "native"
    base_url: str
    grpc_address: str | None
    kafka_bootstrap: str | None
    jwt_secret: str | None  # base64 JWT_SECRET if known (tests forging tokens need it)
    email: str
    password: str
    controls: StackControls | None
    # Each service's own HTTP port (for the checks that bypass the gateway): {"patient-service": url, ...}.
    direct: Mapping[str, str] = field(default_factory=dict)
    # What only a stack of our own exposes: each database's URL, and the folder of every process's log.
    databases: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None


@dataclass(frozen=True)
class Choice:
    """What the command line and the environment asked for."""

    base_url: str | None
    grpc_address: str | None
    kafka_bootstrap: str | None
    stack: str  # auto, native or compose

    def external(self) -> Target:
        """A stack someone else runs: gRPC and Kafka default to the gateway's host on the contract ports."""
        assert self.base_url is not None
        host = urlsplit(self.base_url).hostname or "127.0.0.1"
        return Target(
            origin="external",
            base_url=self.base_url.rstrip("/"),
            grpc_address=_enabled(self.grpc_address or f"{host}:9001"),
            kafka_bootstrap=_enabled(self.kafka_bootstrap or f"{host}:9092"),
            jwt_secret=os.environ.get("INTEGRATION_JWT_SECRET") or None,
            email=os.environ.get("INTEGRATION_EMAIL", SEED_EMAIL),
            password=os.environ.get("INTEGRATION_PASSWORD", SEED_PASSWORD),
            controls=None,
            direct={
                name: url
                for name in SERVICE_NAMES
                if (url := os.environ.get(f"INTEGRATION_{name.split('-')[0].upper()}_URL"))
            },
        )


def _enabled(address: str) -> str | None:
    return None if address.strip().lower() == DISABLED else address.strip()


def docker_engine_available() -> bool:
    """True when a Docker engine answers (the CLI alone is not enough: `docker version` asks the server)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


# -- native launcher ---------------------------------------------------------------------------------


class NativeControls:
    """Stop and start the processes of a devstack Stack through its supervisord (a stopped one stays stopped)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def stop_kafka(self) -> None:
        """Stop the broker; topics and offsets stay on disk."""
        self.stack.kafka.stop()

    def start_kafka(self) -> None:
        """Start the broker on the same port; blocks (runs its own event loop, so call from a thread)."""
        self.stack.start_kafka()

    def stop_service(self, name: str) -> None:
        """Stop one service (every instance of it)."""
        self.stack.stop_service(self.stack.service(name))

    def start_service(self, name: str) -> None:
        """Start one service with the stack's env and wait for its /health."""
        self.stack.start_services([self.stack.service(name)])

    def ensure_up(self) -> None:
        """Kafka and every service running; one supervisord query per process, cheap when nothing is down."""
        if not self.stack.kafka.running:
            self.stack.start_kafka()
        stopped = [s for s in self.stack.available() if not self.stack.running(s)]
        if stopped:
            self.stack.start_services(stopped)


def start_native(stack: Stack) -> Target:
    """PostgreSQL, Kafka and all five services of the test stack; fails naming what is missing."""
    missing = [name for name in SERVICE_NAMES if stack.service(name) not in stack.available()]
    if missing:
        raise RuntimeError(
            "the native stack needs every service, but these packages have no __main__ yet: "
            + ", ".join(missing)
            + " (or point the suite at a running stack with --base-url)"
        )
    stack.start_postgres()
    stack.start_kafka()
    try:
        stack.start_services()
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{exc}\n{_log_tails(stack)}") from exc
    return Target(
        origin="native",
        base_url=f"http://127.0.0.1:{stack.ports.gateway}",
        grpc_address=f"127.0.0.1:{stack.ports.billing_grpc}",
        kafka_bootstrap=stack.kafka.bootstrap,
        jwt_secret=stack.jwt_secret,
        email=SEED_EMAIL,
        password=SEED_PASSWORD,
        controls=NativeControls(stack),
        direct={name: stack.url(stack.service(name)) for name in SERVICE_NAMES},
        databases={s.database: stack.postgres.url(s.database) for s in SERVICES if s.database},
        log_dir=stack.log_dir,
    )


def _log_tails(stack: Stack, lines: int = 15) -> str:
    parts = []
    for name in SERVICE_NAMES:
        log = stack.log_dir / f"{name}.log"
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


# -- docker compose ----------------------------------------------------------------------------------


class ComposeControls:
    """Stop and start compose services (`docker compose stop` / `up --wait <service>`)."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.disturbed = False  # `up --wait` costs seconds: only after a fault test stopped something

    def _run(self, *args: str) -> None:
        subprocess.run([*self.command, *args], cwd=ROOT, check=True, capture_output=True, timeout=300)

    def stop_kafka(self) -> None:
        """Stop the kafka container (its volume keeps the data)."""
        self.disturbed = True
        self._run("stop", "kafka")

    def start_kafka(self) -> None:
        """Start the kafka container and wait for its health check."""
        self._run("up", "--wait", "kafka")

    def stop_service(self, name: str) -> None:
        """Stop one service's container (compose service names are the contract's process names)."""
        self.disturbed = True
        self._run("stop", name)

    def start_service(self, name: str) -> None:
        """Start one service's container and wait for its health check."""
        self._run("up", "--wait", name)

    def ensure_up(self) -> None:
        """Everything in the compose file up and healthy again after a fault test."""
        if self.disturbed:
            self._run("up", "--wait")
            self.disturbed = False


COMPOSE_PROJECT = "pm-integration-tests"  # never the user's own `patient-management` project (down -v!)


@contextmanager
def compose_stack() -> Iterator[Target]:
    """`docker compose up --build --wait` via testcontainers in test mode; contract ports on 127.0.0.1."""
    from testcontainers.compose import DockerCompose  # only needed where a Docker engine exists

    env_file = Path(tempfile.mkdtemp(prefix="pm-compose-")) / "test.env"
    env_file.write_text(
        "\n".join(
            [
                "ENVIRONMENT=test",  # seeds the demo user; accepts the demo key
                f"JWT_SECRET={DEMO_JWT_SECRET}",
                f"POSTGRES_PASSWORD=it-{secrets.token_hex(12)}",
                f"POSTGRES_HOST_PORT={os.environ.get('INTEGRATION_COMPOSE_POSTGRES_PORT', '5432')}",
                "",
            ]
        )
    )
    previous = os.environ.get("COMPOSE_PROJECT_NAME")
    os.environ["COMPOSE_PROJECT_NAME"] = COMPOSE_PROJECT  # the flag order: -p > this env > `name:` in the file
    compose = DockerCompose(
        context=ROOT, compose_file_name="docker-compose.yml", env_file=str(env_file), build=True, wait=True
    )
    try:
        compose.start()
        yield Target(
            origin="compose",
            base_url="http://127.0.0.1:4004",
            grpc_address="127.0.0.1:9001",
            kafka_bootstrap="127.0.0.1:9094",  # the EXTERNAL listener, advertised as localhost:9094
            jwt_secret=DEMO_JWT_SECRET,
            email=SEED_EMAIL,
            password=SEED_PASSWORD,
            controls=ComposeControls(compose.compose_command_property),
            direct={
                "auth-service": "http://127.0.0.1:4005",
                "patient-service": "http://127.0.0.1:4000",
                "billing-service": "http://127.0.0.1:4001",
                "analytics-service": "http://127.0.0.1:4002",
            },
        )
    finally:
        compose.stop(down=True)  # down --volumes: the project is the suite's own
        if previous is None:
            os.environ.pop("COMPOSE_PROJECT_NAME", None)
        else:
            os.environ["COMPOSE_PROJECT_NAME"] = previous
        shutil.rmtree(env_file.parent, ignore_errors=True)
