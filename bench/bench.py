"""Benchmarks of a running stack (`make bench`): prints a table and writes JSON under bench/results/.

Loopback only, every load bounded in time and count. Needs wrk (installed through apt when missing
and running as root). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
LUA = HERE / "lua"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


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
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    )
    return shutil.which("wrk") or "wrk"


def require_loopback(url: str) -> None:
    """Refuse to load anything that is not on this machine."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"refusing to benchmark {url}: loopback addresses only")


@dataclass
class WrkResult:
    """One wrk run's figures."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(wrk: str, *, url: str, script: str, connections: int, seconds: int, env: dict[str, str]) -> WrkResult:
    """One bounded wrk run (one thread: the other core is the servers')."""
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA / script), url]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, "BENCH_LUA_DIR": str(LUA), **env},
    )
    line = next((ln for ln in reversed(completed.stdout.splitlines()) if ln.startswith("{")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()[:500]}")
    data = json.loads(line)
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"],
        non_2xx=data["non_2xx"],
    )


def median_result(results: list[WrkResult]) -> dict[str, float]:
    """Medians over repeated runs of the same load."""
    return {
        "rps": statistics.median(r.rps for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "errors": sum(r.errors for r in results),
        "non_2xx": sum(r.non_2xx for r in results),
        "runs": len(results),
    }


@dataclass
class Bench:
    """What the benchmark talks to and how long each load lasts."""

    gateway: str
    patient: str
    analytics_db: str | None
    seconds: int
    repeat: int
    patients: int
    token: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    # -- setup ---------------------------------------------------------------------------------
    def login(self, email: str, password: str) -> None:
        """Get a token through the gateway."""
        response = httpx.post(f"{self.gateway}/auth/login", json={"email": email, "password": password}, timeout=10)
        response.raise_for_status()
        self.token = response.json()["token"]

    def dataset(self) -> Path:
        """Ids of at least `patients` bench patients, loaded through the API once and kept in results/."""
        RESULTS.mkdir(exist_ok=True)
        ids_file = RESULTS / f"dataset-{urlsplit(self.gateway).port}.ids"
        if ids_file.exists():
            ids = ids_file.read_text().split()
            probe = httpx.get(f"{self.patient}/patients/{ids[0]}", timeout=5) if ids else None
            if len(ids) >= self.patients and probe is not None and probe.status_code == 200:
                log(f"data set: reusing {len(ids)} patients from {ids_file.name}")
                return ids_file
        log(f"data set: creating {self.patients} patients through the gateway")
        ids = asyncio.run(self._create_patients(self.patients))
        ids_file.write_text("\n".join(ids) + "\n")
        return ids_file

    async def _create_patients(self, count: int) -> list[str]:
        tag = uuid.uuid4().hex[:8]
        ids: list[str] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=self.gateway, timeout=30, limits=limits, headers={"Authorization": f"Bearer {self.token}"}
        ) as client:

            async def worker() -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    response = await client.post(
                        "/api/patients",
                        json={
                            "name": f"Dataset Patient {n}",
                            "email": f"dataset-{tag}-{n}@bench.example.com",
                            "address": f"{n} Dataset Street",
                            "dateOfBirth": "1970-01-01",
                        },
                    )
                    response.raise_for_status()
                    ids.append(response.json()["id"])
                    if len(ids) % 2000 == 0:
                        log(f"data set: {len(ids)}/{count}")

            await asyncio.gather(*(worker() for _ in range(32)))
        return ids

    # -- loads ---------------------------------------------------------------------------------
    def get_by_id(self, wrk: str, ids_file: Path) -> None:
        """Gateway vs direct at 32 connections (interleaved, same minute), then 128 connections."""
        gateway_runs: list[WrkResult] = []
        direct_runs: list[WrkResult] = []
        for round_number in range(1, self.repeat + 1):
            log(f"GET by id, round {round_number}/{self.repeat}: gateway, then direct (32 connections)")
            gateway_runs.append(
                run_wrk(
                    wrk,
                    url=self.gateway,
                    script="get_by_id.lua",
                    connections=32,
                    seconds=self.seconds,
                    env={"BENCH_IDS": str(ids_file), "BENCH_PREFIX": "/api/patients", "BENCH_TOKEN": self.token},
                )
            )
            direct_runs.append(
                run_wrk(
                    wrk,
                    url=self.patient,
                    script="get_by_id.lua",
                    connections=32,
                    seconds=self.seconds,
                    env={"BENCH_IDS": str(ids_file), "BENCH_PREFIX": "/patients", "BENCH_TOKEN": ""},
                )
            )
        ratios = [g.rps / d.rps for g, d in zip(gateway_runs, direct_runs, strict=True) if d.rps]
        self.figures["get_gateway_c32"] = median_result(gateway_runs)
        self.figures["get_direct_c32"] = median_result(direct_runs)
        self.figures["gateway_ratio"] = statistics.median(ratios) if ratios else 0.0
        runs128 = []
        for round_number in range(1, self.repeat + 1):
            log(f"GET by id through the gateway, 128 connections, round {round_number}/{self.repeat}")
            runs128.append(
                run_wrk(
                    wrk,
                    url=self.gateway,
                    script="get_by_id.lua",
                    connections=128,
                    seconds=self.seconds,
                    env={"BENCH_IDS": str(ids_file), "BENCH_PREFIX": "/api/patients", "BENCH_TOKEN": self.token},
                )
            )
        self.figures["get_gateway_c128"] = median_result(runs128)

    def creates(self, wrk: str) -> None:
        """POST /api/patients through the gateway: database + outbox (+ billing and Kafka via the relay)."""
        runs = []
        for round_number in range(1, self.repeat + 1):
            log(f"POST /api/patients, 32 connections, round {round_number}/{self.repeat}")
            runs.append(
                run_wrk(
                    wrk,
                    url=self.gateway,
                    script="create.lua",
                    connections=32,
                    seconds=self.seconds,
                    env={
                        "BENCH_PATH": "/api/patients",
                        "BENCH_TOKEN": self.token,
                        "BENCH_RUN_TAG": uuid.uuid4().hex[:8],
                    },
                )
            )
        self.figures["create_c32"] = median_result(runs)

    def event_lag(self, *, rate: int = 100) -> None:
        """Creates at a fixed rate; lag = analytics' processed_at minus the time the POST answered."""
        if not self.analytics_db:
            log("event lag: skipped (no --analytics-db)")
            self.figures["event_lag"] = {"skipped": "no analytics database URL"}
            return
        log(f"event lag: {rate} creates/s for {self.seconds}s")
        answered = asyncio.run(self._paced_creates(rate=rate, seconds=self.seconds))
        processed = asyncio.run(self._processed_at(list(answered)))
        lags = sorted((processed[p] - answered[p]) * 1000 for p in answered if p in processed)
        self.figures["event_lag"] = {
            "rate_per_s": rate,
            "sent": len(answered),
            "counted": len(lags),
            "p50_ms": _percentile(lags, 50),
            "p99_ms": _percentile(lags, 99),
            "max_ms": lags[-1] if lags else None,
        }

    async def _paced_creates(self, *, rate: int, seconds: int) -> dict[str, float]:
        answered: dict[str, float] = {}
        tag = uuid.uuid4().hex[:8]
        async with httpx.AsyncClient(
            base_url=self.gateway, timeout=10, headers={"Authorization": f"Bearer {self.token}"}
        ) as client:

            async def create(n: int) -> None:
                response = await client.post(
                    "/api/patients",
                    json={
                        "name": f"Lag Patient {n}",
                        "email": f"lag-{tag}-{n}@bench.example.com",
                        "address": "1 Lag Lane",
                        "dateOfBirth": "1990-01-01",
                    },
                )
                if response.status_code == 201:
                    answered[response.json()["id"]] = time.time()

            start = time.monotonic()
            tasks = []
            for n in range(rate * seconds):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(create(n)))
            await asyncio.gather(*tasks)
        return answered

    async def _processed_at(self, patient_ids: list[str], timeout_s: float = 30.0) -> dict[str, float]:
        assert self.analytics_db is not None
        connection = await asyncpg.connect(self.analytics_db.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                rows = await connection.fetch(
                    "SELECT patient_id::text AS patient_id, extract(epoch FROM processed_at) AS at "
                    "FROM processed_events WHERE event_type = 'PATIENT_CREATED' AND patient_id::text = ANY($1)",
                    patient_ids,
                )
                if len(rows) >= len(patient_ids) or time.monotonic() > deadline:
                    return {r["patient_id"]: float(r["at"]) for r in rows}
                await asyncio.sleep(0.5)
        finally:
            await connection.close()


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]


def process_memory(state_dir: Path) -> dict[str, float]:
    """Resident memory (MiB) of each service: its process group (uvicorn workers included)."""
    from devstack.services import SERVICES

    result: dict[str, float] = {}
    for service in SERVICES:
        pid_file = state_dir / "pids" / f"{service.name}.pid"
        if not pid_file.exists():
            continue
        pgid = int(pid_file.read_text())
        total_kib = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    status = (stat.parent / "status").read_text()
                    total_kib += int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))
            except (OSError, StopIteration, IndexError, ValueError):
                continue
        result[service.name] = round(total_kib / 1024, 1)
    return result


def startup_time() -> float:
    """Seconds from `make up` (PostgreSQL and Kafka already up) to every service healthy."""
    from devstack.cli import default_stack

    stack = default_stack()
    for service in stack.available():
        stack.stop_service(service)
    start = time.monotonic()
    subprocess.run(["make", "-s", "up"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def print_table(figures: dict[str, Any]) -> None:
    """The figures as a table, with the targets of the performance issue."""

    def row(name: str, value: str, target: str = "") -> None:
        print(f"| {name:<44} | {value:>22} | {target:<22} |")

    print()
    row("figure", "measured (median)", "target")
    print(f"|{'-' * 46}|{'-' * 24}|{'-' * 24}|")
    for key, label in (
        ("get_gateway_c32", "GET by id via gateway, 32 conns"),
        ("get_direct_c32", "GET by id direct to patient, 32 conns"),
        ("get_gateway_c128", "GET by id via gateway, 128 conns"),
        ("create_c32", "POST patient via gateway, 32 conns"),
    ):
        if key in figures:
            f = figures[key]
            target = {"get_gateway_c32": ">= 1000 req/s, p99 < 100", "create_c32": ">= 250 req/s"}.get(key, "")
            row(label, f"{f['rps']:.0f} req/s", target)
            row("  p50 / p99 latency", f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms")
            row("  errors / non-2xx", f"{f['errors']} / {f['non_2xx']}")
    if "gateway_ratio" in figures:
        row("gateway / direct throughput (same round)", f"{figures['gateway_ratio']:.2f}x", ">= 0.6x")
    lag = figures.get("event_lag", {})
    if lag.get("p99_ms") is not None:
        row(
            f"event lag at {lag['rate_per_s']}/s, p50 / p99",
            f"{lag['p50_ms']:.1f} / {lag['p99_ms']:.1f} ms",
            "p99 < 100 ms",
        )
        row("  events counted / creates", f"{lag['counted']} / {lag['sent']}")
    memory = figures.get("idle_rss_mib", {})
    for name, mib in memory.items():
        row(f"idle RSS {name}", f"{mib:.0f} MiB")
    if memory:
        row("idle RSS, five services together", f"{sum(memory.values()):.0f} MiB", "< 400 MB")
    if "startup_s" in figures:
        row("make up -> all healthy (infra running)", f"{figures['startup_s']:.1f} s")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=os.environ.get("BENCH_BASE_URL", "http://127.0.0.1:4004"))
    parser.add_argument("--patient-url", default=os.environ.get("BENCH_PATIENT_URL", "http://127.0.0.1:4000"))
    parser.add_argument(
        "--analytics-db",
        default=os.environ.get("BENCH_ANALYTICS_DB", "postgresql://postgres@127.0.0.1:5432/analytics_service"),
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("PM_STATE_DIR", str(ROOT / ".run")),
        help="the launcher's state (pid files) for memory and start-up figures",
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each load (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per load; medians are reported (default 3)")
    parser.add_argument("--patients", type=int, default=10_000, help="size of the GET data set (default 10000)")
    parser.add_argument("--email", default="testuser@test.com")
    parser.add_argument("--password", default="password123")
    parser.add_argument("--no-startup", action="store_true", help="skip the restart that times `make up`")
    args = parser.parse_args()
    for url in (args.base_url, args.patient_url):
        require_loopback(url)

    wrk = ensure_wrk()
    bench = Bench(
        gateway=args.base_url.rstrip("/"),
        patient=args.patient_url.rstrip("/"),
        analytics_db=args.analytics_db or None,
        seconds=args.seconds,
        repeat=args.repeat,
        patients=args.patients,
    )
    state_dir = Path(args.state_dir)
    bench.figures["idle_rss_mib"] = process_memory(state_dir)
    bench.login(args.email, args.password)
    ids_file = bench.dataset()
    bench.get_by_id(wrk, ids_file)
    bench.creates(wrk)
    bench.event_lag()
    if not args.no_startup and (state_dir / "pids").exists():
        log("start-up: stopping the services and timing `make up`")
        bench.figures["startup_s"] = startup_time()

    bench.figures["when"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    bench.figures["machine"] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(bench.figures, indent=2))
    print_table(bench.figures)
    log(f"figures written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
