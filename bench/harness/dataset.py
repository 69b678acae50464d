"""The GET data set: bench patients created through the gateway once, their ids kept in bench/results/."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from .context import BenchContext
from .outbox import wait_for_relay
from .paths import RESULTS, ROOT
from .patients import gateway_session, patient_body
from .progress import log


def dataset(context: BenchContext, patients: int) -> Path:
    """Ids of at least `patients` bench patients, created through the gateway once and kept in results/."""
    endpoints = context.endpoints
    RESULTS.mkdir(exist_ok=True)
    ids_file = RESULTS / f"dataset-{urlsplit(endpoints.gateway).port}.ids"
    ids = ids_file.read_text().split() if ids_file.exists() else []
    if len(ids) >= patients and asyncio.run(_all_exist(endpoints.patient, ids[:: max(1, len(ids) // 50)])):
        log(f"data set: reusing {len(ids)} patients listed in {ids_file.relative_to(ROOT)}")
        return ids_file
    log(f"data set: creating {patients} patients through the gateway (32 at a time)")
    started = time.monotonic()
    ids = asyncio.run(_create_patients(endpoints.gateway, context.token, patients))
    ids_file.write_text("\n".join(ids) + "\n")
    log(f"data set: {len(ids)} patients in {time.monotonic() - started:.0f}s")
    wait_for_relay(endpoints.patient, "data set")
    return ids_file


async def _all_exist(patient_url: str, ids: list[str]) -> bool:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for patient_id in ids:
            async with session.get(f"{patient_url}/patients/{patient_id}") as response:
                if response.status != 200:
                    return False
    return True


async def _create_patients(gateway_url: str, token: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    ids: list[str] = []
    numbers = iter(range(count))
    async with gateway_session(token, timeout_seconds=30, connections=32) as session:

        async def worker() -> None:
            for n in numbers:
                body = patient_body(
                    name=f"Dataset Patient {n}",
                    email=f"dataset-{tag}-{n}@bench.example.com",
                    address=f"{n} Dataset Street",
                    date_of_birth="1970-01-01",
                )
                async with session.post(f"{gateway_url}/api/patients", json=body) as response:
                    if response.status != 201:
                        raise RuntimeError(f"creating the data set: HTTP {response.status}")
                    ids.append(str((await response.json())["id"]))
                if len(ids) % 2500 == 0:
                    log(f"data set: {len(ids)}/{count}")

        await asyncio.gather(*(worker() for _ in range(32)))
    return ids
