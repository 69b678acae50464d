"""Benchmarks of a running stack (`make bench`): prints a table and writes JSON under bench/results/.

Loopback only, every load bounded in time and count. Needs wrk (installed through apt when missing
and running as root). See bench/README.md for what each figure means and how to read it.

    make up && make bench                              # everything, against the `make up` stack
    make bench BENCH_ARGS="--only get --repeat 5"      # one section, more rounds
    uv run --no-sync python bench/bench.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from devstack.cli import default_stack
from devstack.services import SERVICES
from devstack.stack import Stack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
LUA = HERE / "lua"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
SECTIONS = ("memory", "get", "c128", "create", "lag", "startup")
# A run during which processes outside the stack (other people's tests, ...) used more than this share
# of one core is "disturbed": it is repeated (--retries) and, if kept, marked in the JSON and the table.
DISTURBED_CPU_SHARE = 0.25
TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """A progress line (long work says what it is doing)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_wrk() -> str:
    """Path of wrk; installs Debian's package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is needed: sudo apt-get install wrk")
    log("installing wrk (apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "wrk"


def require_loopback(url: str) -> None:
    """Refuse to load anything that is not on this machine."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing to benchmark {url}: loopback addresses only")


def load_average() -> float:
    """The 1-minute load average (2 cores: above ~1 someone else is busy too)."""
    return os.getloadavg()[0]


# -- processes: CPU and memory -------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcInfo:
    """What /proc says about one process."""

    pid: int
    ppid: int
    pgrp: int
    cpu_s: float


def _proc_table() -> dict[int, ProcInfo]:
    table: dict[int, ProcInfo] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        table[pid] = ProcInfo(pid, int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS)
    return table


def _machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - values[3] - values[4]) / TICKS


class StackProcesses:
    """The stack's processes by role: each service's process group (uvicorn workers included),
    PostgreSQL (postmaster and its backends) and Kafka. Empty when the stack is not the launcher's."""

    def __init__(self, stack: Stack | None) -> None:
        self.stack = stack

    def roles(self, table: dict[int, ProcInfo]) -> dict[str, set[int]]:
        """role -> pids alive now."""
        if self.stack is None:
            return {}
        roles: dict[str, set[int]] = {}
        for service in SERVICES:
            pgid = _read_int(self.stack.pid_file(service))
            if pgid is not None:
                roles[service.name] = {p.pid for p in table.values() if p.pgrp == pgid}
        kafka = _read_int(self.stack.kafka.pid_file)
        if kafka is not None:
            roles["kafka"] = {p.pid for p in table.values() if p.pgrp == kafka}
        postmaster = _read_int(self.stack.postgres.data_dir / "postmaster.pid")
        if postmaster is not None:
            roles["postgresql"] = {p.pid for p in table.values() if postmaster in (p.pid, p.ppid)}
        return {role: pids for role, pids in roles.items() if pids}

    def service_pids(self) -> dict[str, set[int]]:
        """Service name -> pids of its process group."""
        service_names = {s.name for s in SERVICES}
        return {r: pids for r, pids in self.roles(_proc_table()).items() if r in service_names}


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class CpuWindow:
    """CPU seconds used per role between start() and stop(), and by everything else on the machine."""

    processes: StackProcesses
    started: float = 0.0
    _table: dict[int, ProcInfo] = field(default_factory=dict)
    _busy: float = 0.0
    _self: float = 0.0

    def start(self) -> None:
        self._table = _proc_table()
        self._busy = _machine_busy_s()
        times = os.times()
        self._self = times.user + times.system + times.children_user + times.children_system
        self.started = time.monotonic()

    def stop(self) -> dict[str, float]:
        """{role: cpu-s, ..., "bench+wrk": cpu-s, "others": cpu-s, "elapsed_s": s}."""
        elapsed = time.monotonic() - self.started
        table = _proc_table()
        busy = _machine_busy_s() - self._busy
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system - self._self
        result: dict[str, float] = {}
        for role, pids in self.processes.roles(table).items():
            used = sum(table[p].cpu_s - (self._table[p].cpu_s if p in self._table else 0.0) for p in pids)
            result[role] = round(used, 2)
        result["bench+wrk"] = round(own, 2)
        result["others"] = round(max(0.0, busy - sum(result.values())), 2)
        result["elapsed_s"] = round(elapsed, 2)
        return result


def disturbed(cpu: dict[str, float]) -> bool:
    """True when processes outside the stack and the bench used a noticeable share of a core."""
    return cpu.get("others", 0.0) > DISTURBED_CPU_SHARE * max(cpu.get("elapsed_s", 1.0), 1.0)


def memory_by_service(processes: StackProcesses) -> dict[str, dict[str, float]]:
    """Per service: RSS and PSS (MiB) summed over its processes, and how many processes it has."""
    result: dict[str, dict[str, float]] = {}
    for name, pids in processes.service_pids().items():
        rss = pss = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                continue
        result[name] = {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1), "processes": len(pids)}
    return result


# -- wrk -------------------------------------------------------------------------------------------------
@dataclass
class WrkRun:
    """One wrk run's figures (latencies in ms) and the CPU the machine spent meanwhile."""

    label: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int
    cpu: dict[str, float]
    disturbed: bool

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        """One progress line."""
        flags = ""
        if self.errors or self.non_2xx:
            flags += f"  ERRORS {self.errors} NON-2XX {self.non_2xx}"
        if self.disturbed:
            flags += f"  (disturbed: others used {self.cpu.get('others', 0):.1f} cpu-s)"
        return f"{self.rps:7.0f} req/s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms{flags}"

    def as_json(self) -> dict[str, Any]:
        """For the results file."""
        return {**asdict(self), "rps": round(self.rps, 1)}


@dataclass
class Wrk:
    """Runs bounded wrk loads (one thread: the services need the other core more than wrk does)."""

    path: str
    processes: StackProcesses
    seconds: int
    retries: int

    def run(self, *, label: str, url: str, script: str, connections: int, env: dict[str, str]) -> WrkRun:
        """One load; repeated up to `retries` times while other processes disturb it."""
        for attempt in range(self.retries + 1):
            result = self._run_once(label=label, url=url, script=script, connections=connections, env=env)
            if not result.disturbed or attempt == self.retries:
                return result
            log(f"  {label}: {result.summary()}; repeating it")
            time.sleep(2)
        raise AssertionError("unreachable")

    def _run_once(self, *, label: str, url: str, script: str, connections: int, env: dict[str, str]) -> WrkRun:
        command = [
            self.path,
            "-t1",
            f"-c{connections}",
            f"-d{self.seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(LUA / script),
            url,
        ]
        window = CpuWindow(self.processes)
        window.start()
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=self.seconds + 60,
            env={**os.environ, "BENCH_LUA_DIR": str(LUA), **env},
        )
        cpu = window.stop()
        line = next((ln for ln in reversed(completed.stdout.splitlines()) if ln.startswith("{")), None)
        if completed.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()[:500]}")
        data = json.loads(line)
        return WrkRun(
            label=label,
            connections=connections,
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
            non_2xx=data["non_2xx"],
            cpu=cpu,
            disturbed=disturbed(cpu),
        )


def medians(runs: list[WrkRun]) -> dict[str, Any]:
    """Medians over repeated runs of one load; errors summed; CPU per request from the median run."""
    by_rps = sorted(runs, key=lambda r: r.rps)
    middle = by_rps[len(by_rps) // 2]
    cpu_per_request = {
        role: round(1000 * used / middle.requests, 3)
        for role, used in middle.cpu.items()
        if role not in ("elapsed_s", "others") and middle.requests
    }
    return {
        "rps": round(statistics.median(r.rps for r in runs), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
        "errors": sum(r.errors for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "runs": len(runs),
        "disturbed_runs": sum(r.disturbed for r in runs),
        "cpu_ms_per_request": cpu_per_request,
        "each": [r.as_json() for r in runs],
    }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return None
    rank = max(1, min(len(values), int(-(-pct * len(values) // 100))))
    return values[rank - 1]


# -- the benchmark ---------------------------------------------------------------------------------------
@dataclass
class Bench:
    """What the benchmark talks to, how long each load lasts, and what it measured."""

    gateway: str
    patient: str
    postgres: str | None
    wrk: Wrk
    processes: StackProcesses
    repeat: int
    patients: int
    lag_rate: int
    lag_seconds: int
    token: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    started_db_time: Any = None

    # -- setup -------------------------------------------------------------------------------------
    def preflight(self, email: str, password: str) -> None:
        """Every service answers; log in through the gateway; note the database clock."""
        asyncio.run(self._preflight(email, password))

    async def _preflight(self, email: str, password: str) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for url in (f"{self.gateway}/health", f"{self.patient}/health"):
                async with session.get(url) as response:
                    if response.status != 200:
                        raise SystemExit(f"{url} answers {response.status}: is the stack up (`make up`)?")
            async with session.post(
                f"{self.gateway}/auth/login", json={"email": email, "password": password}
            ) as response:
                if response.status != 200:
                    raise SystemExit(f"login through the gateway failed: HTTP {response.status}")
                self.token = (await response.json())["token"]
        if self.postgres:
            connection = await asyncpg.connect(self._db("patient_service"))
            try:
                self.started_db_time = await connection.fetchval("SELECT now()")
            finally:
                await connection.close()

    def _db(self, name: str) -> str:
        assert self.postgres is not None
        return f"{self.postgres.rstrip('/')}/{name}"

    def dataset(self) -> Path:
        """Ids of at least `patients` bench patients, created through the gateway once and kept in results/."""
        RESULTS.mkdir(exist_ok=True)
        ids_file = RESULTS / f"dataset-{urlsplit(self.gateway).port}.ids"
        ids = ids_file.read_text().split() if ids_file.exists() else []
        if len(ids) >= self.patients and asyncio.run(self._all_exist(ids[:: max(1, len(ids) // 50)])):
            log(f"data set: reusing {len(ids)} patients listed in {ids_file.relative_to(ROOT)}")
            return ids_file
        log(f"data set: creating {self.patients} patients through the gateway (32 at a time)")
        started = time.monotonic()
        ids = asyncio.run(self._create_patients(self.patients))
        ids_file.write_text("\n".join(ids) + "\n")
        log(f"data set: {len(ids)} patients in {time.monotonic() - started:.0f}s")
        self.wait_for_relay("data set")
        return ids_file

    async def _all_exist(self, ids: list[str]) -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for patient_id in ids:
                async with session.get(f"{self.patient}/patients/{patient_id}") as response:
                    if response.status != 200:
                        return False
        return True

    async def _create_patients(self, count: int) -> list[str]:
        tag = uuid.uuid4().hex[:8]
        ids: list[str] = []
        numbers = iter(range(count))
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=30), connector=aiohttp.TCPConnector(limit=32)
        ) as session:

            async def worker() -> None:
                for n in numbers:
                    body = {
                        "name": f"Dataset Patient {n}",
                        "email": f"dataset-{tag}-{n}@bench.example.com",
                        "address": f"{n} Dataset Street",
                        "dateOfBirth": "1970-01-01",
                    }
                    async with session.post(f"{self.gateway}/api/patients", json=body) as response:
                        if response.status != 201:
                            raise RuntimeError(f"creating the data set: HTTP {response.status}")
                        ids.append((await response.json())["id"])
                    if len(ids) % 2500 == 0:
                        log(f"data set: {len(ids)}/{count}")

            await asyncio.gather(*(worker() for _ in range(32)))
        return ids

    def wait_for_relay(self, what: str, *, timeout_s: float = 180.0) -> float:
        """Wait until patient-service's outbox has nothing pending (its /health says so); seconds waited."""
        started = time.monotonic()
        pending = -1
        while time.monotonic() - started < timeout_s:
            pending = asyncio.run(self._pending())
            if pending == 0:
                waited = time.monotonic() - started
                if waited > 1:
                    log(f"{what}: outbox drained after {waited:.1f}s")
                return waited
            time.sleep(0.25)
        raise RuntimeError(f"{what}: the outbox still has {pending} pending rows after {timeout_s:.0f}s")

    async def _pending(self) -> int:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.patient}/health") as response,
        ):
            return int((await response.json())["checks"]["outbox"]["pending"])

    # -- loads -------------------------------------------------------------------------------------
    def _get(self, *, via_gateway: bool, connections: int, ids_file: Path) -> WrkRun:
        url, prefix, token = (
            (self.gateway, "/api/patients", self.token) if via_gateway else (self.patient, "/patients", "")
        )
        label = f"GET {'gateway' if via_gateway else 'direct'} c{connections}"
        run = self.wrk.run(
            label=label,
            url=url,
            script="get_by_id.lua",
            connections=connections,
            env={"BENCH_IDS": str(ids_file), "BENCH_PREFIX": prefix, "BENCH_TOKEN": token},
        )
        log(f"  {label:<22} {run.summary()}")
        return run

    def get_by_id(self, ids_file: Path) -> None:
        """Gateway and direct at 32 connections, interleaved (order alternating per round), ratio per round."""
        gateway_runs: list[WrkRun] = []
        direct_runs: list[WrkRun] = []
        for round_number in range(1, self.repeat + 1):
            log(f"GET by id, 32 connections, round {round_number}/{self.repeat} (load {load_average():.2f})")
            order = (True, False) if round_number % 2 else (False, True)
            for via_gateway in order:
                run = self._get(via_gateway=via_gateway, connections=32, ids_file=ids_file)
                (gateway_runs if via_gateway else direct_runs).append(run)
        ratios = [g.rps / d.rps for g, d in zip(gateway_runs, direct_runs, strict=True) if d.rps]
        self.figures["get_gateway_c32"] = medians(gateway_runs)
        self.figures["get_direct_c32"] = medians(direct_runs)
        self.figures["gateway_ratio"] = {
            "median": round(statistics.median(ratios), 3) if ratios else None,
            "rounds": [round(r, 3) for r in ratios],
        }

    def get_c128(self, ids_file: Path) -> None:
        """GET by id through the gateway with 128 connections."""
        runs = []
        for round_number in range(1, self.repeat + 1):
            log(f"GET by id, 128 connections, round {round_number}/{self.repeat} (load {load_average():.2f})")
            runs.append(self._get(via_gateway=True, connections=128, ids_file=ids_file))
        self.figures["get_gateway_c128"] = medians(runs)

    def creates(self) -> None:
        """POST /api/patients through the gateway, 32 connections; the relay catches up between rounds."""
        runs = []
        catch_up = []
        for round_number in range(1, self.repeat + 1):
            log(f"POST /api/patients, 32 connections, round {round_number}/{self.repeat} (load {load_average():.2f})")
            run = self.wrk.run(
                label="POST c32",
                url=self.gateway,
                script="create.lua",
                connections=32,
                env={"BENCH_PATH": "/api/patients", "BENCH_TOKEN": self.token, "BENCH_RUN_TAG": uuid.uuid4().hex[:8]},
            )
            log(f"  POST c32               {run.summary()}")
            runs.append(run)
            catch_up.append(round(self.wait_for_relay("creates"), 2))
        self.figures["create_c32"] = medians(runs)
        self.figures["create_c32"]["relay_catch_up_s"] = catch_up

    def event_lag(self) -> None:
        """Creates at a fixed rate; lag = analytics' processed_at minus the time the POST's answer arrived."""
        if not self.postgres:
            log("event lag: skipped (no database access: --postgres-url)")
            self.figures["event_lag"] = {"skipped": "no database access"}
            return
        rounds = []
        for round_number in range(1, self.repeat + 1):
            self.wait_for_relay("event lag")
            log(
                f"event lag: {self.lag_rate} creates/s for {self.lag_seconds}s, round {round_number}/{self.repeat} "
                f"(load {load_average():.2f})"
            )
            window = CpuWindow(self.processes)
            window.start()
            answered, failures, achieved = asyncio.run(self._paced_creates())
            cpu = window.stop()
            processed = asyncio.run(self._processed_at(list(answered)))
            claimed = asyncio.run(self._claimed_at(list(answered)))
            lags = sorted((processed[p] - answered[p]) * 1000 for p in answered if p in processed)
            # Where the time goes: POST answer -> the relay's claiming transaction (outbox.sent_at is set with
            # now(), the start of that transaction) -> analytics' counting transaction (processed_at, likewise).
            to_claim = sorted((claimed[p] - answered[p]) * 1000 for p in answered if p in claimed)
            to_count = sorted((processed[p] - claimed[p]) * 1000 for p in processed if p in claimed)
            result = {
                "rate_per_s": self.lag_rate,
                "achieved_rate_per_s": round(achieved, 1),
                "sent": len(answered) + failures,
                "failed": failures,
                "counted": len(lags),
                "p50_ms": _round(percentile(lags, 50)),
                "p99_ms": _round(percentile(lags, 99)),
                "max_ms": _round(lags[-1] if lags else None),
                "answer_to_relay_claim_ms": {
                    "p50": _round(percentile(to_claim, 50)),
                    "p99": _round(percentile(to_claim, 99)),
                },
                "relay_claim_to_counted_ms": {
                    "p50": _round(percentile(to_count, 50)),
                    "p99": _round(percentile(to_count, 99)),
                },
                "cpu": cpu,
                "disturbed": disturbed(cpu),
            }
            rounds.append(result)
            log(
                f"  lag p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  max {result['max_ms']} ms; "
                f"counted {result['counted']}/{result['sent']}, {result['achieved_rate_per_s']}/s achieved; "
                f"answer->relay claim p50/p99 {result['answer_to_relay_claim_ms']['p50']}/"
                f"{result['answer_to_relay_claim_ms']['p99']} ms, claim->counted "
                f"{result['relay_claim_to_counted_ms']['p50']}/{result['relay_claim_to_counted_ms']['p99']} ms"
                + ("  (disturbed)" if result["disturbed"] else "")
            )
        complete = [r for r in rounds if r["p99_ms"] is not None]
        self.figures["event_lag"] = {
            "rate_per_s": self.lag_rate,
            "p50_ms": _round(statistics.median(r["p50_ms"] for r in complete)) if complete else None,
            "p99_ms": _round(statistics.median(r["p99_ms"] for r in complete)) if complete else None,
            "sent": sum(r["sent"] for r in rounds),
            "counted": sum(r["counted"] for r in rounds),
            "failed": sum(r["failed"] for r in rounds),
            "disturbed_runs": sum(r["disturbed"] for r in rounds),
            "each": rounds,
        }

    async def _paced_creates(self) -> tuple[dict[str, float], int, float]:
        """(patient id -> wall time its 201 arrived, failures, achieved send rate)."""
        answered: dict[str, float] = {}
        failures = 0
        tag = uuid.uuid4().hex[:8]
        total = self.lag_rate * self.lag_seconds
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(limit=0),
        ) as session:

            async def create(n: int) -> None:
                nonlocal failures
                body = {
                    "name": f"Lag Patient {n}",
                    "email": f"lag-{tag}-{n}@bench.example.com",
                    "address": "1 Lag Lane",
                    "dateOfBirth": "1990-01-01",
                }
                try:
                    async with session.post(f"{self.gateway}/api/patients", json=body) as response:
                        at = time.time()
                        if response.status == 201:
                            answered[(await response.json())["id"]] = at
                        else:
                            failures += 1
                except (aiohttp.ClientError, TimeoutError):
                    failures += 1

            start = time.monotonic()
            tasks = []
            for n in range(total):
                delay = start + n / self.lag_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(create(n)))
            last_sent = time.monotonic()
            await asyncio.gather(*tasks)
        achieved = (total - 1) / (last_sent - start) if total > 1 and last_sent > start else float(total)
        return answered, failures, achieved

    async def _processed_at(self, patient_ids: list[str], timeout_s: float = 60.0) -> dict[str, float]:
        connection = await asyncpg.connect(self._db("analytics_service"))
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                rows = await connection.fetch(
                    "SELECT patient_id, extract(epoch FROM processed_at)::float8 AS at FROM processed_events "
                    "WHERE event_type = 'PATIENT_CREATED' AND patient_id = ANY($1::text[])",
                    patient_ids,
                )
                if len(rows) >= len(patient_ids) or time.monotonic() > deadline:
                    return {r["patient_id"]: r["at"] for r in rows}
                await asyncio.sleep(0.5)
        finally:
            await connection.close()

    async def _claimed_at(self, patient_ids: list[str]) -> dict[str, float]:
        connection = await asyncpg.connect(self._db("patient_service"))
        try:
            rows = await connection.fetch(
                "SELECT aggregate_id::text AS patient_id, extract(epoch FROM sent_at)::float8 AS at FROM outbox "
                "WHERE destination = 'patient-event' AND event_type = 'PATIENT_CREATED' "
                "AND sent_at IS NOT NULL AND aggregate_id = ANY($1::uuid[])",
                patient_ids,
            )
            return {r["patient_id"]: r["at"] for r in rows}
        finally:
            await connection.close()

    # -- end-to-end check --------------------------------------------------------------------------
    def check_delivery(self, timeout_s: float = 120.0) -> None:
        """Every patient created during the bench has its event counted by analytics and a billing account."""
        if not self.postgres or self.started_db_time is None:
            self.checks["delivery"] = {"skipped": "no database access"}
            return
        log("checking that analytics counted, and billing-service has an account for, every patient created")
        started = time.monotonic()
        while True:
            result = asyncio.run(self._delivery())
            if (result["counted"] == result["events"] and result["accounts"] == result["patients"]) or (
                time.monotonic() - started > timeout_s
            ):
                break
            time.sleep(1)
        result["ok"] = result["counted"] == result["events"] == result["patients"] == result["accounts"]
        self.checks["delivery"] = result
        log(
            f"  {result['patients']} patients created: {result['events']} PATIENT_CREATED events, "
            f"{result['counted']} counted by analytics, {result['accounts']} billing accounts"
            + ("" if result["ok"] else "  MISMATCH")
        )

    async def _delivery(self) -> dict[str, Any]:
        patient_db = await asyncpg.connect(self._db("patient_service"))
        try:
            patient_ids = [
                str(r[0])
                for r in await patient_db.fetch("SELECT id FROM patients WHERE created_at >= $1", self.started_db_time)
            ]
            event_ids = [
                str(r[0])
                for r in await patient_db.fetch(
                    "SELECT event_id FROM outbox WHERE destination = 'patient-event' "
                    "AND event_type = 'PATIENT_CREATED' AND created_at >= $1",
                    self.started_db_time,
                )
            ]
        finally:
            await patient_db.close()
        analytics_db = await asyncpg.connect(self._db("analytics_service"))
        try:
            counted = await analytics_db.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = ANY($1::text[])", event_ids
            )
        finally:
            await analytics_db.close()
        billing_db = await asyncpg.connect(self._db("billing_service"))
        try:
            accounts = await billing_db.fetchval(
                "SELECT count(*) FROM billing_accounts WHERE patient_id = ANY($1::text[])", patient_ids
            )
        finally:
            await billing_db.close()
        return {"patients": len(patient_ids), "events": len(event_ids), "counted": counted, "accounts": accounts}

    # -- memory and start-up -----------------------------------------------------------------------
    def memory(self, key: str) -> None:
        """Resident memory of each service now (the caller makes sure the stack is idle)."""
        services = memory_by_service(self.processes)
        if not services:
            log("memory: skipped (no pid files of a `make up` stack)")
            return
        self.figures[key] = {
            "services": services,
            "total_rss_mib": round(sum(s["rss_mib"] for s in services.values()), 1),
            "total_pss_mib": round(sum(s["pss_mib"] for s in services.values()), 1),
        }
        log(f"memory ({key}): {self.figures[key]['total_rss_mib']:.0f} MiB RSS in total")

    def startup(self) -> None:
        """Seconds from `make up` to every service healthy: with PostgreSQL and Kafka running, and stopped."""
        stack = self.processes.stack
        if stack is None:
            log("start-up: skipped (not the `make up` stack)")
            return
        services_only: list[float] = []
        cold: list[float] = []
        for round_number in range(1, self.repeat + 1):
            log(f"start-up, round {round_number}/{self.repeat}: services stopped, PostgreSQL and Kafka running")
            for service in stack.available():
                stack.stop_service(service)
            services_only.append(_time_make_up())
            log(f"  make up: {services_only[-1]:.1f}s")
            log(f"start-up, round {round_number}/{self.repeat}: after `make down` (PostgreSQL and Kafka provisioned)")
            subprocess.run(["make", "-s", "down"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            cold.append(_time_make_up())
            log(f"  make up: {cold[-1]:.1f}s")
        self.figures["startup"] = {
            "services_only_s": round(statistics.median(services_only), 2),
            "from_stopped_s": round(statistics.median(cold), 2),
            "each_services_only_s": [round(s, 2) for s in services_only],
            "each_from_stopped_s": [round(s, 2) for s in cold],
        }


def _time_make_up() -> float:
    started = time.monotonic()
    subprocess.run(["make", "-s", "up"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# -- output ----------------------------------------------------------------------------------------------
TARGETS: dict[str, tuple[str, Callable[[dict[str, Any]], bool | None]]] = {
    "gateway_ratio": (">= 0.6x", lambda f: _ge(f.get("gateway_ratio", {}).get("median"), 0.6)),
    "get_gateway_c32": (
        ">= 1000 req/s, p99 < 100 ms",
        lambda f: (
            None
            if "get_gateway_c32" not in f
            else f["get_gateway_c32"]["rps"] >= 1000 and f["get_gateway_c32"]["p99_ms"] < 100
        ),
    ),
    "create_c32": (">= 250 req/s", lambda f: _ge(f.get("create_c32", {}).get("rps"), 250)),
    "event_lag": ("p99 < 100 ms", lambda f: _lt(f.get("event_lag", {}).get("p99_ms"), 100)),
    "memory": ("< 400 MB", lambda f: _lt(f.get("memory_idle", {}).get("total_rss_mib"), 400 * 1e6 / 2**20)),
}


def _ge(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _lt(value: float | None, limit: float) -> bool | None:
    return None if value is None else value < limit


def verdict(key: str, figures: dict[str, Any]) -> str:
    """`met` / `NOT met` / `` for a target."""
    outcome = TARGETS[key][1](figures)
    return "" if outcome is None else ("met" if outcome else "NOT met")


def print_table(figures: dict[str, Any], checks: dict[str, Any]) -> None:
    """The figures as a markdown table, with the targets of the performance issue."""
    rows: list[tuple[str, str, str, str]] = []

    def wrk_rows(key: str, label: str, target_key: str | None = None) -> None:
        f = figures.get(key)
        if not f:
            return
        target, met = (TARGETS[target_key][0], verdict(target_key, figures)) if target_key else ("", "")
        flags = f" ({f['disturbed_runs']} of {f['runs']} runs disturbed)" if f.get("disturbed_runs") else ""
        rows.append((label, f"{f['rps']:,.0f} req/s", target, met))
        rows.append(("  latency p50 / p99", f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms", "", ""))
        rows.append(("  errors / non-2xx" + flags, f"{f['errors']} / {f['non_2xx']}", "0 / 0", ""))

    wrk_rows("get_gateway_c32", "GET /api/patients/{id} via gateway, 32 conns", "get_gateway_c32")
    wrk_rows("get_direct_c32", "GET /patients/{id} direct, 32 conns")
    if figures.get("gateway_ratio", {}).get("median") is not None:
        ratio = figures["gateway_ratio"]
        each = " ".join(f"{r:.2f}" for r in ratio["rounds"])
        rows.append(
            (
                f"gateway / direct req/s, same round ({each})",
                f"{ratio['median']:.2f}x",
                TARGETS["gateway_ratio"][0],
                verdict("gateway_ratio", figures),
            )
        )
    wrk_rows("get_gateway_c128", "GET /api/patients/{id} via gateway, 128 conns")
    wrk_rows("create_c32", "POST /api/patients via gateway, 32 conns", "create_c32")
    lag = figures.get("event_lag", {})
    if lag.get("p99_ms") is not None:
        rows.append(
            (
                f"event lag POST answer -> counted, {lag['rate_per_s']}/s, p50 / p99",
                f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f} ms",
                TARGETS["event_lag"][0],
                verdict("event_lag", figures),
            )
        )
        rows.append(("  events counted / creates answered 201", f"{lag['counted']} / {lag['sent']}", "all", ""))
    for key, label in (("memory_idle", "idle, before load"), ("memory_after_load", "idle, after load")):
        memory = figures.get(key)
        if not memory:
            continue
        for name, m in memory["services"].items():
            workers = f", {m['processes']} processes" if m["processes"] > 1 else ""
            rows.append((f"  RSS {name} ({label}{workers})", f"{m['rss_mib']:.0f} MiB", "", ""))
        target, met = (TARGETS["memory"][0], verdict("memory", figures)) if key == "memory_idle" else ("", "")
        rows.append(
            (
                f"RSS of the five services ({label}; PSS {memory['total_pss_mib']:.0f} MiB)",
                f"{memory['total_rss_mib']:.0f} MiB",
                target,
                met,
            )
        )
    startup = figures.get("startup")
    if startup:
        rows.append(
            ("make up -> all healthy (PostgreSQL, Kafka running)", f"{startup['services_only_s']:.1f} s", "", "")
        )
        rows.append(("make up -> all healthy (after make down)", f"{startup['from_stopped_s']:.1f} s", "", ""))
    delivery = checks.get("delivery")
    if delivery and "ok" in delivery:
        rows.append(
            (
                "every patient created: event counted, billing account",
                f"{delivery['counted']}/{delivery['events']}, {delivery['accounts']}/{delivery['patients']}",
                "all",
                "ok" if delivery["ok"] else "MISMATCH",
            )
        )
    widths = [max(len(r[i]) for r in [*rows, ("figure", "measured (median)", "target", "")]) for i in range(4)]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(("figure", "median", "target", ""), widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3].ljust(widths[3])]
        print("| " + " | ".join(cells) + " |")
    print()


def compare(before_file: Path, after_file: Path) -> None:
    """A before/after table of two results files (the README's optimisation table)."""
    before = json.loads(before_file.read_text())["figures"]
    after = json.loads(after_file.read_text())["figures"]

    def pick(f: dict[str, Any], path: Iterable[str]) -> float | None:
        value: Any = f
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return float(value) if isinstance(value, int | float) else None

    lines = [
        ("GET via gateway c32, req/s", ("get_gateway_c32", "rps")),
        ("GET via gateway c32, p99 ms", ("get_gateway_c32", "p99_ms")),
        ("GET direct c32, req/s", ("get_direct_c32", "rps")),
        ("GET direct c32, p99 ms", ("get_direct_c32", "p99_ms")),
        ("gateway / direct (same round)", ("gateway_ratio", "median")),
        ("GET via gateway c128, req/s", ("get_gateway_c128", "rps")),
        ("GET via gateway c128, p50 ms", ("get_gateway_c128", "p50_ms")),
        ("GET via gateway c128, p99 ms", ("get_gateway_c128", "p99_ms")),
        ("POST c32, req/s", ("create_c32", "rps")),
        ("POST c32, p50 ms", ("create_c32", "p50_ms")),
        ("POST c32, p99 ms", ("create_c32", "p99_ms")),
        ("event lag at 100/s, p50 ms", ("event_lag", "p50_ms")),
        ("event lag at 100/s, p99 ms", ("event_lag", "p99_ms")),
        ("idle RSS, five services, MiB", ("memory_idle", "total_rss_mib")),
        ("idle PSS, five services, MiB", ("memory_idle", "total_pss_mib")),
        ("make up -> healthy (infra running), s", ("startup", "services_only_s")),
        ("make up -> healthy (after make down), s", ("startup", "from_stopped_s")),
    ]

    def number(value: float | None) -> str:
        if value is None:
            return ""
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"

    print(f"| figure | before ({before_file.name}) | after ({after_file.name}) | after / before |")
    print("|---|---:|---:|---:|")
    for label, path in lines:
        b, a = pick(before, path), pick(after, path)
        ratio = f"{a / b:.2f}" if a is not None and b else ""
        print(f"| {label} | {number(b)} | {number(a)} | {ratio} |")


# -- main ------------------------------------------------------------------------------------------------
def main() -> int:
    stack = default_stack()  # the `make up` stack: contract ports unless <NAME>_PORT, state in PM_STATE_DIR
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=os.environ.get("BENCH_BASE_URL", stack.url(stack.service("api-gateway"))))
    parser.add_argument(
        "--patient-url", default=os.environ.get("BENCH_PATIENT_URL", stack.url(stack.service("patient-service")))
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{stack.ports.postgres}"),
        help="the cluster with the services' databases (event lag and delivery check); '' to skip those",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk load (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per load; medians are reported (default 3)")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a run disturbed by other processes")
    parser.add_argument("--patients", type=int, default=10_000, help="size of the GET data set (default 10000)")
    parser.add_argument("--lag-rate", type=int, default=100, help="creates per second for the event lag (100)")
    parser.add_argument("--lag-seconds", type=int, default=10, help="length of each event-lag round (10)")
    parser.add_argument("--email", default="testuser@test.com")
    parser.add_argument("--password", default="password123")
    parser.add_argument("--output", help="results file (default bench/results/bench-<time>.json)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print a before/after table")
    args = parser.parse_args()
    if args.compare:
        compare(Path(args.compare[0]), Path(args.compare[1]))
        return 0
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    for url in (args.base_url, args.patient_url, args.postgres_url or "postgresql://127.0.0.1"):
        require_loopback(url)
    # Memory, CPU per process and start-up need the launcher's pid files; another stack gets the rest.
    own_stack = urlsplit(args.base_url).port == stack.ports.gateway and stack.pid_dir.exists()
    processes = StackProcesses(stack if own_stack else None)

    bench = Bench(
        gateway=args.base_url.rstrip("/"),
        patient=args.patient_url.rstrip("/"),
        postgres=args.postgres_url or None,
        wrk=Wrk(ensure_wrk(), processes, args.seconds, args.retries),
        processes=processes,
        repeat=args.repeat,
        patients=args.patients,
        lag_rate=args.lag_rate,
        lag_seconds=args.lag_seconds,
    )
    log(
        f"bench: gateway {bench.gateway}, patient-service {bench.patient}; {os.cpu_count()} cores, "
        f"load average {load_average():.2f}"
    )
    if load_average() > 1.0:
        log("note: the machine is busy (load > 1); runs disturbed by other processes are repeated and marked")
    if "memory" in sections:
        bench.memory("memory_idle")
    bench.preflight(args.email, args.password)
    if sections & {"get", "c128"}:
        ids_file = bench.dataset()
        if "get" in sections:
            bench.get_by_id(ids_file)
        if "c128" in sections:
            bench.get_c128(ids_file)
    if "create" in sections:
        bench.creates()
    if "lag" in sections:
        bench.event_lag()
    bench.check_delivery()
    if "memory" in sections:
        bench.wait_for_relay("after the loads")
        time.sleep(3)
        bench.memory("memory_after_load")
    if "startup" in sections:
        bench.startup()

    RESULTS.mkdir(exist_ok=True)
    out = Path(args.output) if args.output else RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "git_commit": _git_commit(),
        "arguments": {k: v for k, v in vars(args).items() if k not in ("password", "compare")},
        "figures": bench.figures,
        "checks": bench.checks,
    }
    out.write_text(json.dumps(document, indent=2, default=str))
    print_table(bench.figures, bench.checks)
    log(f"figures written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    failed_checks = bench.checks.get("delivery", {}).get("ok") is False
    any_errors = any(
        bench.figures.get(k, {}).get("errors") or bench.figures.get(k, {}).get("non_2xx")
        for k in ("get_gateway_c32", "get_direct_c32", "get_gateway_c128", "create_c32")
    )
    return 1 if failed_checks or any_errors else 0


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
