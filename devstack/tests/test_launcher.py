"""The launcher's promises: stop leaves nothing behind, up twice is safe, data persists until clean,
PostgreSQL comes back after a kill -9."""

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

from devstack import process
from devstack.kafka import PROGRAM, KafkaBroker
from devstack.services import SERVICES
from devstack.stack import Ports, Stack

# A parent that forks a child, as uvicorn does with WORKERS > 1.
PARENT_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running: look at its state.
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in {"Z", "X"}


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    pid_file, log_file = tmp_path / "p.pid", tmp_path / "p.log"
    pid = process.start([sys.executable, "-c", PARENT_WITH_CHILD], pid_file=pid_file, log_file=log_file)
    deadline = time.monotonic() + 10
    while not log_file.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(log_file.read_text().split()[0])
    assert alive(pid)
    assert alive(child)

    assert process.start([sys.executable, "-c", PARENT_WITH_CHILD], pid_file=pid_file, log_file=log_file) == pid

    assert process.stop(pid_file) is True
    assert not alive(pid)
    assert not alive(child)
    assert not pid_file.exists()
    assert process.stop(pid_file) is False


def test_a_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    pid_file = tmp_path / "gone.pid"
    pid_file.write_text("999999999")
    assert process.read_pid(pid_file) is None
    assert not pid_file.exists()


def test_the_service_table_is_complete_and_consistent() -> None:
    names = [s.name for s in SERVICES]
    assert sorted(names) == ["analytics-service", "api-gateway", "auth-service", "billing-service", "patient-service"]
    ports = Ports()
    assert {s.name: getattr(ports, s.port) for s in SERVICES} == {
        "api-gateway": 4004,
        "auth-service": 4005,
        "patient-service": 4000,
        "billing-service": 4001,
        "analytics-service": 4002,
    }
    assert (ports.billing_grpc, ports.postgres, ports.kafka) == (9001, 5432, 9092)
    stack = Stack(state_dir=Path("/nonexistent"), ports=Ports.free())
    for service in SERVICES:
        env = stack.env_for(service)
        assert env["PORT"] == str(getattr(stack.ports, service.port))
        assert ("DATABASE_URL" in env) == (service.database is not None)
        assert "{" not in "".join(env[k] for k in service.env)


def test_ports_are_overridable_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "14004")
    monkeypatch.setenv("KAFKA_PORT", "19092")
    ports = Ports.from_env()
    assert (ports.gateway, ports.kafka, ports.auth) == (14004, 19092, 4005)


def test_postgres_data_persists_across_restarts_until_clean() -> None:
    stack = Stack(state_dir=Path(tempfile.mkdtemp(prefix="pm-persist-")), ports=Ports.free(), fast_postgres=True)
    try:
        stack.start_postgres()
        stack.start_postgres()  # twice is safe
        cluster = stack.postgres
        cluster.psql("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('still here')", "patient_service")
        cluster.stop()
        assert not cluster.running
        stack.start_postgres()
        assert cluster.psql("SELECT value FROM kept", "patient_service").strip() == "still here"
        postmaster = stack.supervisor.pid("postgres")
        assert postmaster is not None
        os.kill(postmaster, signal.SIGKILL)  # supervisord starts it again: crash recovery keeps the data
        wait_for_new_pid(stack, "postgres", postmaster)
        cluster.wait_ready(timeout_seconds=30)
        assert cluster.psql("SELECT value FROM kept", "patient_service").strip() == "still here"
        databases = set(cluster.psql("SELECT datname FROM pg_database").split())
        assert {"auth_service", "patient_service", "billing_service", "analytics_service"} <= databases
    finally:
        stack.clean()
    assert not stack.postgres.data_dir.exists()
    assert not process.port_open(stack.ports.postgres)


async def test_kafka_broker_has_the_topics_and_restarts(kafka: KafkaBroker) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {"patient", "patient.DLT"} <= topics
    assert kafka.supervisor.pid(PROGRAM) is not None
    kafka.stop()
    assert not kafka.running
    assert not process.port_open(kafka.port)
    await asyncio.sleep(1.5)  # stopped on purpose: supervisord does not start it again
    assert not kafka.running
    kafka.start()
    assert kafka.running


def wait_for_new_pid(stack: Stack, program: str, old: int, timeout_seconds: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_seconds
    while (pid := stack.supervisor.pid(program)) in (None, old):
        assert time.monotonic() < deadline, f"{program} not restarted within {timeout_seconds}s"
        time.sleep(0.05)
    assert pid is not None
    return pid
