"""supervisord under the launcher: a killed process comes back, `status` counts restarts and shows what
gave up, the config holds every service of the table and the replicas, the patient topic's retention."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devstack import cli
from devstack.kafka import DEFAULT_RETENTION_SECONDS, KafkaBroker, create_topics
from devstack.services import SERVICES
from devstack.stack import REPLICA_PORT_STEP, Ports, Stack
from devstack.supervisor import Program, Supervisor


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short path (a unix socket's path has a length limit), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pm-sv-"))
    try:
        yield path
    finally:
        Supervisor(path / "supervisor").shutdown(timeout_seconds=30)
        shutil.rmtree(path, ignore_errors=True)


def program(name: str, code: str, state_dir: Path, startretries: int = 5) -> Program:
    return Program(
        name=name,
        command=(sys.executable, "-c", code),
        log_file=state_dir / "logs" / f"{name}.log",
        directory=state_dir,
        priority=100,
        env={"GREETING": 'a "quoted", 100% value', "PLAIN": "x"},
        startretries=startretries,
    )


def state(supervisor: Supervisor, name: str) -> str | None:
    info = supervisor.info(name)
    return None if info is None else str(info["statename"])


def wait_until(predicate: Callable[[], bool], timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


SLEEPER = "import os, time; assert os.environ['GREETING'] == 'a \"quoted\", 100% value'; time.sleep(600)"


def test_a_killed_process_comes_back_and_status_counts_it(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    supervisor = Supervisor(state_dir / "supervisor")
    supervisor.apply(
        [program("sleeper", SLEEPER, state_dir), program("crasher", "raise SystemExit(3)", state_dir, startretries=1)]
    )
    assert supervisor.running
    supervisor.start("sleeper")
    supervisor.start("crasher")
    wait_until(lambda: state(supervisor, "sleeper") == "RUNNING")
    first = supervisor.pid("sleeper")
    assert first is not None

    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: supervisor.pid("sleeper") not in (None, first), timeout_seconds=2.0)
    assert time.monotonic() - killed < 2.0
    wait_until(lambda: state(supervisor, "crasher") == "FATAL")
    wait_until(lambda: state(supervisor, "sleeper") == "RUNNING")

    assert cli.status(Stack(state_dir=state_dir, ports=Ports.free())) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("sleeper", "crasher"))}
    assert rows["sleeper"][1:3] == ["RUNNING", str(supervisor.pid("sleeper"))]
    assert rows["sleeper"][-1] == "1"  # restarts
    assert rows["crasher"][1] == "FATAL"
    assert "FATAL: supervisord gave up on crasher" in out

    supervisor.stop("sleeper")  # a stop on purpose is not undone
    time.sleep(1.2)
    assert supervisor.pid("sleeper") is None
    assert state(supervisor, "sleeper") == "STOPPED"
    supervisor.start("sleeper")
    wait_until(lambda: supervisor.pid("sleeper") is not None)

    children = [supervisor.pid("sleeper"), supervisor.pid("crasher")]
    assert supervisor.shutdown(timeout_seconds=30) is True
    assert not Supervisor(supervisor.directory).running
    assert not supervisor.pid_file.exists()
    for pid in filter(None, children):
        assert not Path(f"/proc/{pid}").exists()


def test_the_config_holds_every_service_and_the_replicas(state_dir: Path) -> None:
    stack = Stack(state_dir=state_dir, ports=Ports.free(), replicas={"patient-service": 2, "analytics-service": 3})
    parser = configparser.RawConfigParser()
    parser.read_string(stack.supervisor.render(stack.programs()))
    programs = {section.split(":", 1)[1] for section in parser.sections() if section.startswith("program:")}
    assert programs == {
        "postgres",
        "kafka",
        *(s.name for s in SERVICES),
        "patient-service-2",
        "analytics-service-2",
        "analytics-service-3",
    }
    for name in programs:
        section = parser[f"program:{name}"]
        assert (section["autostart"], section["autorestart"], section["startsecs"]) == ("false", "true", "1")
    assert parser["program:postgres"]["stopsignal"] == "INT"
    assert parser.has_option("program:postgres", "user") == (os.geteuid() == 0)
    assert (
        f'PORT="{stack.ports.analytics + 2 * REPLICA_PORT_STEP}"'
        in parser["program:analytics-service-3"]["environment"]
    )
    gateway = parser["program:api-gateway"]["environment"]
    patient = f"http://127.0.0.1:{stack.ports.patient}"
    assert f'PATIENT_SERVICE_URL="{patient},http://127.0.0.1:{stack.ports.patient + REPLICA_PORT_STEP}"' in gateway
    # One instance: the gateway keeps getting a single URL.
    single = Stack(state_dir=state_dir, ports=stack.ports).env_for(stack.service("api-gateway"))
    assert single["PATIENT_SERVICE_URL"] == patient
    with pytest.raises(ValueError, match="cannot run 2 instances"):
        Stack(state_dir=state_dir, ports=stack.ports, replicas={"billing-service": 2}).programs()


def test_replicas_and_retention_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATIENT_REPLICAS", "2")
    monkeypatch.setenv("PATIENT_TOPIC_RETENTION_SECONDS", "3600")
    monkeypatch.delenv("ANALYTICS_REPLICAS", raising=False)
    stack = cli.default_stack()
    assert [i.name for i in stack.instances(stack.service("patient-service"))] == [
        "patient-service",
        "patient-service-2",
    ]
    assert len(stack.instances(stack.service("analytics-service"))) == 1
    assert stack.kafka.retention_seconds == 3600


async def patient_topic(kafka: KafkaBroker) -> tuple[int, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        [topic] = await admin.describe_topics(["patient"])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "patient", None)])
    finally:
        await admin.close()
    [resource] = response.to_object()["resources"]
    entries = {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}
    return len(topic["partitions"]), entries["retention.ms"]


async def test_the_patient_topic_has_its_partitions_and_retention(kafka: KafkaBroker) -> None:
    assert kafka.retention_seconds == DEFAULT_RETENTION_SECONDS
    assert await patient_topic(kafka) == (3, str(DEFAULT_RETENTION_SECONDS * 1000))
    try:
        await create_topics(kafka.bootstrap, retention_seconds=3600)  # what `make up` does to an existing topic
        assert await patient_topic(kafka) == (3, "3600000")
    finally:
        await create_topics(kafka.bootstrap)
    assert await patient_topic(kafka) == (3, str(DEFAULT_RETENTION_SECONDS * 1000))
