"""The whole local stack: PostgreSQL, Kafka and the services of SERVICES, on chosen ports."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import pwd
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack import postgres, process
from devstack.kafka import KafkaBroker, ensure_jars
from devstack.services import SERVICES, Service
from pm_common.settings import DEMO_JWT_SECRET

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Ports:
    """Every port of the stack; `make up` uses the contract's, tests take free ones."""

    gateway: int = 4004
    auth: int = 4005
    patient: int = 4000
    billing: int = 4001
    billing_grpc: int = 9001
    analytics: int = 4002
    postgres: int = 5432
    kafka: int = 9092
    kafka_controller: int = 9093

    @classmethod
    def from_env(cls) -> Ports:
        """Contract defaults, each overridable as <NAME>_PORT (GATEWAY_PORT, KAFKA_PORT, ...)."""
        defaults = dataclasses.asdict(cls())
        return cls(**{name: int(os.environ.get(f"{name.upper()}_PORT", port)) for name, port in defaults.items()})

    @classmethod
    def free(cls) -> Ports:
        """Free ports for every role (a test stack beside a running `make up`)."""
        return cls(**{f.name: process.free_port() for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Stack:
    """Where a stack keeps its state (pids, logs, data) and which ports it uses."""

    state_dir: Path
    ports: Ports
    environment: str = "dev"
    jwt_secret: str = DEMO_JWT_SECRET
    fast_postgres: bool = False
    log_level: str = "INFO"

    # -- infrastructure ------------------------------------------------------------------------
    @property
    def postgres(self) -> postgres.PostgresCluster:
        """The cluster; as root it lives in a postgres-owned folder the postgres user can reach."""
        data_dir = self.state_dir / "postgres"
        if os.geteuid() == 0:
            digest = hashlib.sha1(str(self.state_dir.resolve()).encode()).hexdigest()[:12]  # noqa: S324
            data_dir = Path("/var/tmp/patient-management") / digest / "postgres"
        return postgres.PostgresCluster(
            data_dir=data_dir, port=self.ports.postgres, log_file=data_dir.parent / "postgres.log"
        )

    @property
    def kafka(self) -> KafkaBroker:
        """The broker, with jars from the shared cache (.cache/kafka-jars or $PM_KAFKA_JARS)."""
        jar_dir = Path(os.environ.get("PM_KAFKA_JARS", ROOT / ".cache" / "kafka-jars"))
        return KafkaBroker(
            data_dir=self.state_dir / "kafka",
            port=self.ports.kafka,
            controller_port=self.ports.kafka_controller,
            jar_dir=jar_dir,
            log_file=self.log_dir / "kafka.log",
            pid_file=self.pid_dir / "kafka.pid",
        )

    @property
    def log_dir(self) -> Path:
        """One log file per process."""
        return self.state_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        """One pid file per process this stack started."""
        return self.state_dir / "pids"

    def start_postgres(self) -> None:
        """Provision (once) and start PostgreSQL, then make one database per service that stores data."""
        cluster = self.postgres
        if os.geteuid() == 0:
            base = cluster.data_dir.parent
            base.mkdir(parents=True, exist_ok=True)
            owner = pwd.getpwnam(postgres.USER)
            os.chown(base, owner.pw_uid, owner.pw_gid)
            base.parent.chmod(0o755)
        cluster.init()
        cluster.start(fast=self.fast_postgres)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        link = self.log_dir / "postgres.log"
        if cluster.log_file != link and not link.is_symlink():
            link.symlink_to(cluster.log_file)
        for service in SERVICES:
            if service.database:
                cluster.create_database(service.database)

    def start_kafka(self) -> None:
        """Fetch the jars (once), format (once), start the broker and create the topics."""
        ensure_jars(self.kafka.jar_dir)
        self.kafka.start()

    # -- services ------------------------------------------------------------------------------
    def available(self) -> list[Service]:
        """The services whose package exists in this checkout (the launcher starts only those)."""
        return [
            s
            for s in SERVICES
            if importlib.util.find_spec(s.package) is not None
            and importlib.util.find_spec(f"{s.package}.__main__") is not None
        ]

    def env_for(self, service: Service) -> dict[str, str]:
        """The environment a service runs with in this stack."""
        values = {**dataclasses.asdict(self.ports), "jwt_secret": self.jwt_secret}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_"))}
        env.update(
            ENVIRONMENT=self.environment,
            HOST="127.0.0.1",
            PORT=str(getattr(self.ports, service.port)),
            LOG_LEVEL=self.log_level,
            PYTHONUNBUFFERED="1",
        )
        if service.database:
            env["DATABASE_URL"] = self.postgres.url(service.database)
        env.update({k: v.format(**values) for k, v in service.env.items()})
        return env

    def url(self, service: Service) -> str:
        """Base URL of a service's HTTP port."""
        return f"http://127.0.0.1:{getattr(self.ports, service.port)}"

    def start_services(self, services: Iterable[Service] | None = None, *, timeout_seconds: float = 90.0) -> None:
        """Start the services (each runs its migrations first) and wait until every /health is 200."""
        chosen = list(services) if services is not None else self.available()
        bin_dir = Path(sys.executable).parent
        for service in chosen:
            command = [str(bin_dir / service.command[0]), *service.command[1:]]
            process.start(
                command,
                pid_file=self.pid_file(service),
                log_file=self.log_dir / f"{service.name}.log",
                env=self.env_for(service),
                cwd=ROOT,
            )
        for service in chosen:
            process.wait_http_ok(
                self.url(service) + service.health_path,
                timeout_seconds=timeout_seconds,
                pid_file=self.pid_file(service),
            )

    def stop_service(self, service: Service) -> None:
        """Stop one service by pid."""
        process.stop(self.pid_file(service))

    def pid_file(self, service: Service) -> Path:
        """Where a service's pid is kept."""
        return self.pid_dir / f"{service.name}.pid"

    def service(self, name: str) -> Service:
        """Look a service up by name."""
        return next(s for s in SERVICES if s.name == name)

    # -- whole stack ---------------------------------------------------------------------------
    def up(self, *, timeout_seconds: float = 90.0) -> list[Service]:
        """Everything, in order; safe to call again while it runs."""
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.start_postgres()
        print(f"postgres   ready on 127.0.0.1:{self.ports.postgres} ({time.monotonic() - started:.1f}s)", flush=True)
        self.start_kafka()
        print(f"kafka      ready on {self.kafka.bootstrap} ({time.monotonic() - started:.1f}s)", flush=True)
        services = self.available()
        self.start_services(services, timeout_seconds=timeout_seconds)
        print(f"services   healthy: {len(services)} ({time.monotonic() - started:.1f}s)", flush=True)
        return services

    def down(self) -> None:
        """Stop every process this stack started, services first, by pid."""
        for service in reversed(SERVICES):
            self.stop_service(service)
        self.kafka.stop()
        self.postgres.stop()

    def clean(self) -> None:
        """down(), then delete all state (databases, topics, logs)."""
        self.down()
        if os.geteuid() == 0:
            shutil.rmtree(self.postgres.data_dir.parent, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
