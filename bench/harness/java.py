"""The comparison with the Java original (`--only java`): the loads it was measured with, each one first run
for `--warmup` seconds (not measured; the Java figures are after 60 s of warm-up), then `--repeat` rounds.

Order: idle memory (before any load), the list of the 15 seed patients (before anything creates one),
GET by id of those patients, login, creates (then the delivery check of every patient they made);
the start-up time is measured at the end of the bench (it restarts the services).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from auth_service.auth.passwords import Passwords
from devstack.stack import Stack

from .context import BenchContext
from .cpu import load_average
from .database import connected
from .delivery import check_delivery
from .endpoints import Endpoints
from .figures import Figures, HashParameters, JavaComparison, LoadFigures, MemoryFigures, Skipped, StartupFigures
from .memory import measure_memory
from .outbox import wait_for_relay
from .paths import RESULTS, ROOT
from .progress import log
from .summary import medians
from .wrk import WrkRun

SEED_PATIENTS = 15  # the Java list figure is `GET /api/patients` with the 15 patients of the seed data
LIST_CONNECTIONS = GET_CONNECTIONS = 32
CREATE_CONNECTIONS = 16
LOGIN_CONNECTIONS = 4
# More login attempts than auth-service's default per-client limit (LOGIN_CLIENT_LIMIT, 30 a minute): a
# stack that still has a limit of that order answers some of them 429.
LOGIN_BURST = 32
THROTTLED = "throttled: raise LOGIN_CLIENT_LIMIT for the bench stack (LOGIN_CLIENT_LIMIT=1000000 make up)"
# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_MEMORY_KIB, OWASP_TIME_COST, OWASP_PARALLELISM = 19 * 1024, 2, 1
PHC = re.compile(r"^\$(?P<variant>argon2id|argon2i|argon2d)\$(?:v=\d+\$)?m=(?P<m>\d+),t=(?P<t>\d+),p=(?P<p>\d+)")


def java_loads(
    context: BenchContext, *, warmup: int, email: str, password: str, memory: MemoryFigures | None
) -> JavaComparison:
    """Every comparison figure but the start-up time (see `java_startup`)."""
    endpoints = context.endpoints
    result: JavaComparison = {"warmup_seconds": warmup}
    if memory is None:  # the `memory` section measured it already when it ran
        memory = measure_memory(context.processes, "memory_idle, comparison")
    if memory is not None:
        result["memory_idle_rss_mib"] = memory["total_rss_mib"]

    ids = asyncio.run(_list_ids(endpoints.gateway, context.token))
    result["list_rows"] = len(ids)
    comparable = "" if len(ids) == SEED_PATIENTS else f": NOT COMPARABLE, the Java figure is for {SEED_PATIENTS}"
    log(f"comparison: GET /api/patients returns {len(ids)} patients{comparable}")
    result["list"] = _load(
        context,
        warmup,
        label=f"GET list c{LIST_CONNECTIONS}",
        script="plain.lua",
        connections=LIST_CONNECTIONS,
        env={"BENCH_METHOD": "GET", "BENCH_PATH": "/api/patients", "BENCH_TOKEN": context.token},
    )

    RESULTS.mkdir(exist_ok=True)
    ids_file = RESULTS / f"java-ids-{urlsplit(endpoints.gateway).port}.ids"
    ids_file.write_text("\n".join(ids) + "\n")
    result["get_by_id"] = _load(
        context,
        warmup,
        label=f"GET by id c{GET_CONNECTIONS}",
        script="get_by_id.lua",
        connections=GET_CONNECTIONS,
        env={"BENCH_IDS": str(ids_file), "BENCH_PREFIX": "/api/patients", "BENCH_TOKEN": context.token},
    )

    result["login_hash"] = hash_parameters(endpoints, email)
    result["login"] = _login(context, warmup, email, password)

    since = _database_now(endpoints)
    result["create"] = _load(
        context,
        warmup,
        label=f"POST c{CREATE_CONNECTIONS}",
        script="create.lua",
        connections=CREATE_CONNECTIONS,
        env={"BENCH_PATH": "/api/patients", "BENCH_TOKEN": context.token},
        after_each=lambda: wait_for_relay(endpoints.patient, "comparison creates"),
    )
    result["create_delivery"] = check_delivery(endpoints, since)
    return result


def _load(
    context: BenchContext,
    warmup: int,
    *,
    label: str,
    script: str,
    connections: int,
    env: dict[str, str],
    before_each: Callable[[], object] | None = None,
    after_each: Callable[[], float] | None = None,
) -> LoadFigures:
    """`warmup` seconds of the load (not counted), then `repeat` rounds; medians. Each run gets a fresh
    BENCH_RUN_TAG (create.lua's e-mails are unique per run)."""
    url = context.endpoints.gateway

    def run(wrk_label: str, seconds: int | None) -> WrkRun:
        wrk = context.wrk if seconds is None else dataclasses.replace(context.wrk, seconds=seconds, retries=0)
        env_run = {**env, "BENCH_RUN_TAG": uuid.uuid4().hex[:8]}
        return wrk.run(label=wrk_label, url=url, script=script, connections=connections, env=env_run)

    if warmup > 0:
        log(f"comparison: {label}, warm-up {warmup}s (load {load_average():.2f})")
        warm = run(f"{label} warm-up", warmup)
        log(f"  warm-up                {warm.summary()}")
        if after_each is not None:
            after_each()
    runs: list[WrkRun] = []
    catch_up: list[float] = []
    for round_number in range(1, context.repeat + 1):
        log(f"comparison: {label}, round {round_number}/{context.repeat} (load {load_average():.2f})")
        if before_each is not None:
            before_each()
        runs.append(run(label, None))
        log(f"  {label:<22} {runs[-1].summary()}")
        if after_each is not None:
            catch_up.append(round(after_each(), 2))
    figures = medians(runs)
    if catch_up:
        figures["relay_catch_up_seconds"] = catch_up
    return figures


def _login(context: BenchContext, warmup: int, email: str, password: str) -> LoadFigures | Skipped:
    """POST /auth/login at 4 connections, unless auth-service's per-client throttle would refuse the load."""
    gateway = context.endpoints.gateway
    statuses = asyncio.run(_login_burst(gateway, email, password, LOGIN_BURST))
    log(f"comparison: login burst of {LOGIN_BURST}, {LOGIN_CONNECTIONS} at once: {dict(sorted(statuses.items()))}")
    if statuses[429]:
        log(f"  {THROTTLED}; no login figure")
        return {"skipped": THROTTLED}
    if set(statuses) != {200}:
        return {"skipped": f"login answered {dict(statuses)}"}
    body = json.dumps({"email": email, "password": password})
    figures = _load(
        context,
        warmup,
        label=f"POST login c{LOGIN_CONNECTIONS}",
        script="plain.lua",
        connections=LOGIN_CONNECTIONS,
        env={"BENCH_METHOD": "POST", "BENCH_PATH": "/auth/login", "BENCH_BODY": body},
        before_each=lambda: _reset_account(gateway, email, password),
    )
    if figures["non_2xx"] and asyncio.run(_login_burst(gateway, email, password, 1))[429]:
        log(f"  the load met the throttle ({figures['non_2xx']} non-2xx): {THROTTLED}")
        return {"skipped": f"{THROTTLED}, or LOGIN_FAILURE_LIMIT (the load got {figures['non_2xx']} non-2xx answers)"}
    return figures


def _reset_account(gateway: str, email: str, password: str) -> None:
    """One login on its own, so that a run starts with the account's counter at zero.

    The end of a wrk run cuts the logins still in flight: each was counted (before its verification)
    and never succeeded, so up to 4 counts stay on the account and the next run's first logins met the
    per-account limit (LOGIN_FAILURE_LIMIT, 5) in a trial run. A success deletes the counter.
    """
    time.sleep(1)  # the cut logins of the previous run are over
    statuses = asyncio.run(_login_burst(gateway, email, password, 1))
    if not statuses[200]:
        log(f"  resetting the account's login counter failed: {dict(statuses)}")


async def _login_burst(gateway: str, email: str, password: str, count: int) -> Counter[int]:
    """Status -> how many of `count` logins through the gateway, `LOGIN_CONNECTIONS` at a time."""
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=LOGIN_CONNECTIONS)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), connector=connector) as session:

        async def one() -> None:
            async with session.post(f"{gateway}/auth/login", json={"email": email, "password": password}) as r:
                await r.read()
                statuses[r.status] += 1

        await asyncio.gather(*(one() for _ in range(count)))
    return statuses


def hash_parameters(endpoints: Endpoints, email: str) -> HashParameters | Skipped:
    """The parameters of the hashes auth-service's hasher makes (and of the bench user's stored hash)."""
    match = PHC.match(Passwords().hash("bench-parameters"))
    if match is None:
        return {"skipped": "auth-service's hasher does not make argon2 hashes"}
    m, t, p = int(match["m"]), int(match["t"]), int(match["p"])
    strong = (
        match["variant"] == "argon2id" and m >= OWASP_MEMORY_KIB and t >= OWASP_TIME_COST and p >= OWASP_PARALLELISM
    )
    result: HashParameters = {
        "algorithm": match["variant"],
        "time_cost": t,
        "memory_cost_kib": m,
        "parallelism": p,
        "at_least_owasp_minimum": strong,
    }
    log(
        f"comparison: password hash {describe_hash(result)}; OWASP minimum m=19 MiB, t=2, p=1: "
        + ("ours is at least as strong" if strong else "ours is WEAKER")
    )
    if endpoints.postgres:
        stored = asyncio.run(_stored_hash(endpoints, email))
        if stored is not None:
            found = PHC.match(stored)
            result["bench_user_hash"] = found[0] if found else stored.split("$")[1]  # parameters only, no salt
            log(f"  {email}'s stored hash (what each login verifies): {result['bench_user_hash']}")
    return result


def describe_hash(parameters: HashParameters) -> str:
    """`argon2id t=3, m=64 MiB (65536 KiB), p=4`."""
    m, t, p = parameters["memory_cost_kib"], parameters["time_cost"], parameters["parallelism"]
    return f"{parameters['algorithm']} t={t}, m={m / 1024:g} MiB ({m} KiB), p={p}"


async def _stored_hash(endpoints: Endpoints, email: str) -> str | None:
    async with connected(endpoints.database("auth_service")) as connection:
        value = await connection.fetchval("SELECT password_hash FROM users WHERE lower(email) = lower($1)", email)
    return None if value is None else str(value)


def _database_now(endpoints: Endpoints) -> dt.datetime | None:
    """PostgreSQL's clock (the delivery check selects the patients created since); None: no database access."""
    if not endpoints.postgres:
        return None

    async def now() -> dt.datetime:
        async with connected(endpoints.database("patient_service")) as connection:
            value: dt.datetime = await connection.fetchval("SELECT now()")
            return value

    return asyncio.run(now())


async def _list_ids(gateway: str, token: str) -> list[str]:
    """The ids `GET /api/patients` returns (the list load's rows)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), headers=headers) as session,
        session.get(f"{gateway}/api/patients") as response,
    ):
        if response.status != 200:
            raise SystemExit(f"GET /api/patients answered {response.status}")
        return [str(patient["id"]) for patient in await response.json()]


def java_startup(stack: Stack | None, repeat: int, startup: StartupFigures | None) -> float | None:
    """Median seconds of `make up` to all healthy with PostgreSQL and Kafka running (the `startup` section's
    figure when it ran); None: not the launcher's stack."""
    if startup is not None:
        return startup["services_only_seconds"]
    if stack is None:
        log("comparison start-up: skipped (not the `make up` stack)")
        return None
    seconds: list[float] = []
    for round_number in range(1, repeat + 1):
        log(f"comparison start-up, round {round_number}/{repeat}: services stopped, PostgreSQL and Kafka running")
        for service in stack.available():
            stack.stop_service(service)
        started = time.monotonic()
        subprocess.run(["make", "-s", "up"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        seconds.append(time.monotonic() - started)
        log(f"  make up: {seconds[-1]:.1f}s")
    return round(statistics.median(seconds), 2)


def comparison_failed(figures: Figures) -> bool:
    """A comparison load had errors or non-2xx answers, or its creates were not all delivered."""
    java = figures.get("java")
    if java is None:
        return False
    loads = [java.get("list"), java.get("get_by_id"), java.get("create"), java.get("login")]
    errors = any(
        load is not None and "skipped" not in load and bool(load["errors"] or load["non_2xx"]) for load in loads
    )
    delivery = java.get("create_delivery")
    return errors or (delivery is not None and "skipped" not in delivery and delivery.get("ok") is False)
