"""The `analytics-service` console script as the launcher runs it: migrate, consume, serve, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from devstack import process
from devstack.kafka import KafkaBroker
from pm_common.settings import DEMO_JWT_SECRET

from .conftest import ADMIN_AUTHORIZATION, Topics, patient_event


async def test_console_script_consumes_and_serves(
    database_url: str, kafka: KafkaBroker, topics: Topics, group: str, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    port = process.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_", "KAFKA_"))},
        "ENVIRONMENT": "test",
        "JWT_SECRET": DEMO_JWT_SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": database_url,  # an empty database: the script migrates it
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "KAFKA_TOPIC": topics.name,
        "KAFKA_DLT_TOPIC": topics.dlt,
        "KAFKA_GROUP_ID": group,
    }
    pid_file, log_file = tmp_path / "analytics.pid", tmp_path / "analytics.log"
    key, value = patient_event("PATIENT_CREATED")
    await producer.send_and_wait(topics.name, value=value, key=key)
    process.start(
        [str(Path(sys.executable).parent / "analytics-service")], pid_file=pid_file, log_file=log_file, env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(process.wait_http_ok, f"{base}/health", timeout_seconds=60, pid_file=pid_file)
        async with httpx.AsyncClient(base_url=base, timeout=5, headers=ADMIN_AUTHORIZATION) as client:
            for _ in range(100):
                summary = (await client.get("/analytics/summary")).json()
                if summary["totalEvents"] == 1:
                    break
                await asyncio.sleep(0.1)
            assert summary["eventsByType"]["PATIENT_CREATED"] == 1
            docs = (await client.get("/openapi.json")).json()
            assert {"/analytics/summary", "/health"} <= set(docs["paths"])
    finally:
        assert process.stop(pid_file, timeout_seconds=20)
    log = log_file.read_text()
    assert "batch stored" in log
    assert "Traceback" not in log
    # No patient data in any log line.
    assert "test.patient@example.com" not in log
    assert "Test Patient" not in log
