"""The whole local stack: PostgreSQL, Kafka and the services of SERVICES, on chosen ports, under supervisord.

supervisord.conf is written from this module (the services from the table in services.py), so the
supervisor runs exactly what the launcher knows; the launcher starts the programs in order over
XML-RPC and waits for each to be ready.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import pwd
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from devstack import postgres, process
from devstack.kafka import DEFAULT_RETENTION_SECONDS, KafkaBroker, ensure_jars
from devstack.services import SERVICES, Service
from devstack.supervisor import Program, Supervisor
from pm_common.settings import DEMO_JWT_SECRET

ROOT = Path(__file__).resolve().parents[3]
REPLICA_PORT_STEP = 100  # instance i (from 0) of a service listens on the service's port + 100 * i
# supervisord's order: lower priority starts first and stops last (services stop before Kafka and PostgreSQL).
POSTGRES_PRIORITY, KAFKA_PRIORITY, SERVICES_PRIORITY = 10, 20, 100


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
class Instance:
    """One process of a service: the first has the service's name and port, replica i (from 0) `name-<i+1>`."""

    service: Service
    index: int
    port: int

    @property
    def name(self) -> str:
        """The supervisord program (and log file) name."""
        return self.service.name if self.index == 0 else f"{self.service.name}-{self.index + 1}"

    @property
    def url(self) -> str:
        """Base URL of its HTTP port."""
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Stack:
    """Where a stack keeps its state (supervisord, logs, data), which ports it uses, how many replicas."""

    state_dir: Path
    ports: Ports
    environment: str = "dev"
    jwt_secret: str = DEMO_JWT_SECRET
    fast_postgres: bool = False
    log_level: str = "INFO"
    replicas: Mapping[str, int] = field(default_factory=dict)  # service name -> instances (default 1)
    patient_topic_retention_seconds: int = DEFAULT_RETENTION_SECONDS

    @property
    def supervisor(self) -> Supervisor:
        """The stack's supervisord (config, socket, pid file and log in <state dir>/supervisor/)."""
        return Supervisor(self.state_dir / "supervisor")

    # -- infrastructure ------------------------------------------------------------------------
    @property
    def postgres(self) -> postgres.PostgresCluster:
        """The cluster; as root it lives in a postgres-owned folder the postgres user can reach."""
        data_dir = self.state_dir / "postgres"
        if os.geteuid() == 0:
            digest = hashlib.sha1(str(self.state_dir.resolve()).encode()).hexdigest()[:12]  # noqa: S324
            data_dir = Path("/var/tmp/patient-management") / digest / "postgres"
        return postgres.PostgresCluster(
            data_dir=data_dir,
            port=self.ports.postgres,
            log_file=data_dir.parent / "postgres.log",
            supervisor=self.supervisor,
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
            supervisor=self.supervisor,
            retention_seconds=self.patient_topic_retention_seconds,
        )

    @property
    def log_dir(self) -> Path:
        """One log file per process."""
        return self.state_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        """Pid files of an older, unsupervised launcher (stopped by the first supervised start)."""
        return self.state_dir / "pids"

    def programs(self) -> list[Program]:
        """What supervisord runs: PostgreSQL, Kafka and every instance of every available service."""
        bin_dir = Path(sys.executable).parent
        programs = [
            self.postgres.program(fast=self.fast_postgres, priority=POSTGRES_PRIORITY),
            self.kafka.program(priority=KAFKA_PRIORITY),
        ]
        for number, service in enumerate(self.available()):
            programs += [
                Program(
                    name=instance.name,
                    command=(str(bin_dir / service.command[0]), *service.command[1:]),
                    log_file=self.log_dir / f"{instance.name}.log",
                    directory=ROOT,
                    priority=SERVICES_PRIORITY + number,
                    env=self.service_env(service, instance.index),
                )
                for instance in self.instances(service)
            ]
        return programs

    def supervise(self) -> Supervisor:
        """Write supervisord.conf from the programs; start supervisord, or make the running one take changes."""
        if not self.supervisor.running:
            self._stop_unsupervised()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor.apply(self.programs(), env=self.inherited_env())
        return self.supervisor

    def _stop_unsupervised(self) -> None:
        """Whatever an older launcher started by pid (pid files, pg_ctl) in this state dir."""
        for pid_file in sorted(self.pid_dir.glob("*.pid")):
            process.stop(pid_file, timeout_seconds=30.0)
        cluster = dataclasses.replace(self.postgres, supervisor=None)
        if cluster.running:
            cluster.stop()

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
        self.supervise()
        cluster.start()
        link = self.log_dir / "postgres.log"
        if cluster.log_file != link and not link.is_symlink():
            link.symlink_to(cluster.log_file)
        for service in SERVICES:
            if service.database:
                cluster.create_database(service.database)

    def start_kafka(self) -> None:
        """Fetch the jars (once), format (once), start the broker and create the topics."""
        ensure_jars(self.kafka.jar_dir)
        self.supervise()
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

    def instances(self, service: Service) -> list[Instance]:
        """The service's processes: `replicas` of it (only a service with replicas_env may have more than one)."""
        count = self.replicas.get(service.name, 1)
        if count < 1 or (count > 1 and service.replicas_env is None):
            raise ValueError(f"{service.name} cannot run {count} instances")
        port = getattr(self.ports, service.port)
        return [Instance(service, index, port + REPLICA_PORT_STEP * index) for index in range(count)]

    def inherited_env(self) -> dict[str, str]:
        """The launcher's environment as every process inherits it (supervisord's own environment)."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_"))}

    def service_env(self, service: Service, index: int = 0) -> dict[str, str]:
        """What one instance of a service gets on top of the inherited environment (supervisord.conf has it)."""
        values: dict[str, object] = {**dataclasses.asdict(self.ports), "jwt_secret": self.jwt_secret}
        values.update({f"{s.port}_urls": ",".join(i.url for i in self.instances(s)) for s in SERVICES})
        env = {
            "ENVIRONMENT": self.environment,
            "HOST": "127.0.0.1",
            "PORT": str(getattr(self.ports, service.port) + REPLICA_PORT_STEP * index),
            "LOG_LEVEL": self.log_level,
            "PYTHONUNBUFFERED": "1",
        }
        if service.database:
            env["DATABASE_URL"] = self.postgres.url(service.database)
        env.update({k: v.format(**values) for k, v in service.env.items()})
        return env

    def env_for(self, service: Service, index: int = 0) -> dict[str, str]:
        """The whole environment an instance of a service runs with in this stack."""
        return {**self.inherited_env(), **self.service_env(service, index)}

    def url(self, service: Service) -> str:
        """Base URL of a service's (first instance's) HTTP port."""
        return f"http://127.0.0.1:{getattr(self.ports, service.port)}"

    def start_services(self, services: Iterable[Service] | None = None, *, timeout_seconds: float = 90.0) -> None:
        """Start the services (each runs its migrations first) and wait until every /health is 200.

        Every service's first instance first, then the replicas: these find their database migrated.
        """
        chosen = list(services) if services is not None else self.available()
        supervisor = self.supervise()
        instances = [instance for service in chosen for instance in self.instances(service)]
        for batch in ([i for i in instances if i.index == 0], [i for i in instances if i.index > 0]):
            for instance in batch:
                supervisor.start(instance.name)
            for instance in batch:
                process.wait_http_ok(
                    instance.url + instance.service.health_path,
                    timeout_seconds=timeout_seconds,
                    alive=partial(supervisor.alive, instance.name),
                )

    def stop_service(self, service: Service) -> None:
        """Stop every instance of a service; supervisord keeps them stopped until start_services()."""
        for instance in reversed(self.instances(service)):
            self.supervisor.stop(instance.name)

    def running(self, service: Service) -> bool:
        """True when every instance of the service has a process (it may still be starting)."""
        return all(self.supervisor.pid(instance.name) is not None for instance in self.instances(service))

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
        count = sum(len(self.instances(s)) for s in services)
        print(f"services   healthy: {count} processes ({time.monotonic() - started:.1f}s)", flush=True)
        return services

    def down(self) -> None:
        """Stop every program (services first, PostgreSQL last), then supervisord itself."""
        self.supervisor.shutdown()
        self._stop_unsupervised()

    def clean(self) -> None:
        """down(), then delete all state (databases, topics, logs)."""
        self.down()
        if os.geteuid() == 0:
            shutil.rmtree(self.postgres.data_dir.parent, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
