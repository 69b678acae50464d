"""A single-node Apache Kafka broker in KRaft mode, run from jars that Maven resolves from Maven Central.

The JVM runs in the foreground under the stack's supervisord (program `kafka`).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from devstack import process
from devstack.supervisor import Program, Supervisor

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
PROGRAM = "kafka"
# Topic -> partitions: `patient` has 3, so that up to three analytics-service instances share its load.
TOPICS = {"patient": 3, "patient.DLT": 1}
RETAINED_TOPIC = "patient"  # PATIENT_TOPIC_RETENTION_SECONDS applies to this one
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600


def ensure_jars(jar_dir: Path) -> Path:
    """Resolve the broker's jars into jar_dir once (Maven Central); later calls reuse the folder."""
    marker = jar_dir / ".complete"
    if marker.exists() and marker.read_text() == POM.read_text():
        return jar_dir
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch Apache Kafka's jars: apt-get install maven")
    if jar_dir.exists():
        shutil.rmtree(jar_dir)
    jar_dir.mkdir(parents=True)
    print(f"resolving Apache Kafka jars from Maven Central into {jar_dir} ...", flush=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jar_dir}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    marker.write_text(POM.read_text())
    return jar_dir


@dataclass(frozen=True)
class KafkaBroker:
    """One KRaft node (broker and controller) on 127.0.0.1, data in data_dir."""

    data_dir: Path
    port: int
    controller_port: int
    jar_dir: Path
    log_file: Path
    supervisor: Supervisor
    heap: str = "512m"
    retention_seconds: int = DEFAULT_RETENTION_SECONDS  # of the `patient` topic

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        """server.properties, written on every start so ports can change between runs."""
        return self.data_dir / "server.properties"

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir / 'logs'}",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            os.environ.get("JAVA", "java"),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{self.jar_dir}/*",
            main_class,
            *args,
        ]

    def format(self) -> None:
        """kafka-storage.sh format, once: the data (topics, offsets) then persists across restarts."""
        self._write_config()
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        subprocess.run(
            # `--cluster-id=<id>` in one argument: a random id may start with "-" (base64url), which the
            # tool's parser would read as an option when it stands alone.
            [
                *self._java("kafka.tools.StorageTool"),
                "format",
                f"--cluster-id={_cluster_id()}",
                "-c",
                str(self.config_file),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def program(self, *, priority: int) -> Program:
        """kafka-server-start.sh in the foreground; SIGTERM is its controlled shutdown."""
        return Program(
            name=PROGRAM,
            command=tuple(self._java("kafka.Kafka", str(self.config_file))),
            log_file=self.log_file,
            directory=self.data_dir,
            priority=priority,
            stopwaitsecs=60,
        )

    @property
    def running(self) -> bool:
        """True when the supervisor has the broker's JVM running (or starting)."""
        return self.supervisor.pid(PROGRAM) is not None

    def start(self, *, timeout_seconds: float = 90.0) -> None:
        """Start the broker (or keep it) and wait until it serves and the topics exist."""
        self.format()
        self.supervisor.start(PROGRAM)
        process.wait_port(self.port, timeout_seconds=timeout_seconds, alive=lambda: self.supervisor.alive(PROGRAM))
        # In a thread of its own, so that start() also works where an event loop already runs (async tests).
        topics = create_topics(
            self.bootstrap, retention_seconds=self.retention_seconds, timeout_seconds=timeout_seconds
        )
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, topics).result()

    def stop(self) -> None:
        """Stop the broker (controlled shutdown); the supervisor keeps it stopped until start()."""
        self.supervisor.stop(PROGRAM)


def _cluster_id() -> str:
    # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding (what random-uuid prints).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def create_topics(
    bootstrap: str, *, retention_seconds: int = DEFAULT_RETENTION_SECONDS, timeout_seconds: float = 60.0
) -> None:
    """Create the project's topics if missing, else raise `patient` to its partitions; (re)apply the
    retention of `patient`. Retries while the broker finishes starting."""
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    configs = {RETAINED_TOPIC: {"retention.ms": str(retention_seconds * 1000)}}
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, n, 1, topic_configs=configs.get(name, {}))
                for name, n in TOPICS.items()
                if name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another starter won the race
                    await admin.create_topics(missing)
            await _update_existing(admin, [name for name in TOPICS if name in existing], configs)
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def _update_existing(admin: AIOKafkaAdminClient, names: list[str], configs: dict[str, dict[str, str]]) -> None:
    """Topics made by an earlier run: add partitions up to TOPICS, set the configs again (they may have changed)."""
    if not names:
        return
    fewer = {
        topic["topic"]: NewPartitions(TOPICS[topic["topic"]])
        for topic in await admin.describe_topics(names)
        if len(topic["partitions"]) < TOPICS[topic["topic"]]
    }
    if fewer:
        await admin.create_partitions(fewer)
    resources = [ConfigResource(ConfigResourceType.TOPIC, n, configs=configs[n]) for n in names if n in configs]
    if resources:
        responses = await admin.alter_configs(resources)
        errors = [r for response in responses for r in response.to_object()["resources"] if r["error_code"]]
        if errors:
            raise RuntimeError(f"Kafka refused the topic configs: {errors}")
