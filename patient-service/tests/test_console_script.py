"""`python -m patient_service` as the launcher runs it: migrate, seed, serve; and no patient data in its logs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from devstack.kafka import KafkaBroker
from devstack.process import free_port
from pm_common.settings import DEMO_JWT_SECRET

from .conftest import ADMIN_AUTHORIZATION, BillingServer, EventLog


async def test_the_entry_point_migrates_seeds_serves_and_logs_no_patient_data(
    database_url: str, kafka: KafkaBroker, billing: BillingServer, event_log: EventLog, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SPRING_", "SEED_"))},
        "ENVIRONMENT": "test",
        "JWT_SECRET": DEMO_JWT_SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "DEBUG",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "BILLING_SERVICE_ADDRESS": "127.0.0.1",
        "BILLING_SERVICE_GRPC_PORT": str(billing.port),
    }
    log_file = tmp_path / "patient-service.log"
    with log_file.open("wb") as sink:  # a file, not a pipe: nobody reads while it runs
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "patient_service", env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    secret_name = f"Secretname {uuid.uuid4().hex[:8]}"
    secret_email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    secret_address = f"{uuid.uuid4().hex[:8]} Hidden Lane"
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=5, headers=ADMIN_AUTHORIZATION
        ) as http:
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                assert process.returncode is None, "the service exited"
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "no healthy /health within 60 s"
                await asyncio.sleep(0.2)
            listed = (await http.get("/patients")).json()
            assert len(listed) == 15  # seeded in test mode
            response = await http.post(
                "/patients",
                json={
                    "name": secret_name,
                    "email": secret_email,
                    "address": secret_address,
                    "dateOfBirth": "1961-07-04",
                },
            )
            assert response.status_code == 201
            patient_id = response.json()["id"]
            await http.put(
                f"/patients/{patient_id}",
                json={
                    "name": secret_name,
                    "email": "taken-" + secret_email,
                    "address": secret_address,
                    "dateOfBirth": "1961-07-04",
                },
            )
            await http.post(
                "/patients",
                json={"name": secret_name, "email": secret_email, "address": "x", "dateOfBirth": "1961-07-04"},
            )

            event_log.keys.add(patient_id)
            await event_log.collect(lambda events: len(events) >= 2)
            deadline = asyncio.get_running_loop().time() + 20
            while patient_id not in billing.servicer.patient_ids():
                assert asyncio.get_running_loop().time() < deadline, "no billing account call"
                await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
    output = log_file.read_bytes()
    # uvicorn re-raises SIGTERM after a graceful shutdown, so -SIGTERM is a clean exit too.
    exit_code: int | None = process.returncode
    assert exit_code in (0, -signal.SIGTERM), output.decode(errors="replace")[-2000:]
    assert b"Application shutdown complete" in output
    assert [e.event_type for _, e in event_log.events] == ["PATIENT_CREATED", "PATIENT_UPDATED"]
    logs = output.decode(errors="replace")
    assert patient_id in logs  # ids are fine and useful
    for secret in (secret_name, secret_email, secret_address, "1961-07-04", "Secretname"):
        assert secret not in logs
