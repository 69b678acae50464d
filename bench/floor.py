"""The floor of this design on this machine: what no code of ours can go below, measured.

1. Two bare HTTP hops, as every request through the gateway makes: wrk -> a proxy (raw ASGI, uvicorn, one
   aiohttp session: the gateway's stack) -> a service (raw ASGI, uvicorn) that answers a fixed JSON body.
   No token, database, log line, metric or span. Its req/s bounds what the real stack can serve. Then the
   same with the service as one FastAPI route (the services' framework, with nothing of ours).
2. The libraries: for each service, the third-party modules it imports (found by importing it), imported
   alone in a fresh interpreter: their RSS and CPU seconds bound its idle memory and its start-up.

Stop the stack first (`make down`): the floor shares the two cores with nothing. About four minutes.

    uv run --no-sync python bench/floor.py
    uv run --no-sync python bench/floor.py --seconds 5 --rounds 1     # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from bench.harness.paths import BENCH_DIR, LUA
    from bench.harness.processes import TICKS
    from bench.harness.progress import log
    from bench.harness.wrk import ensure_wrk, parse_report
else:
    from harness.paths import BENCH_DIR, LUA
    from harness.processes import TICKS
    from harness.progress import log
    from harness.wrk import ensure_wrk, parse_report

from devstack.process import free_port, port_open

# The module each service's process runs (its console script) and the app module uvicorn imports.
SERVICES = {
    "api-gateway": ("api_gateway.__main__", "api_gateway.main"),
    "auth-service": ("auth_service.__main__", "auth_service.main"),
    "patient-service": ("patient_service.__main__", "patient_service.main"),
    "billing-service": ("billing_service.__main__", "billing_service.main"),
    "analytics-service": ("analytics_service.__main__", "analytics_service.main"),
}
# Issue 17's targets, for the arithmetic at the end.
TARGET_LIST_RPS = 2800
TARGET_GET_RPS = 4000
TARGET_RSS_MIB = 350e6 / 2**20
TARGET_UP_SECONDS = 4.0
CORES = os.cpu_count() or 1

# Run in a fresh interpreter: import the modules, print CPU seconds, RSS (KiB) and the third-party modules
# loaded (those from site-packages, in the order they were loaded).
_PROBE = """
import importlib, json, sys, time
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name)
loaded = [n for n, m in list(sys.modules.items()) if 'site-packages' in (getattr(m, '__file__', None) or '')]
print(json.dumps({"cpu": time.process_time(), "rss_kib": rss(), "third_party": loaded, "failed": failed}))
"""


class Probe(TypedDict):
    """What _PROBE prints."""

    cpu: float
    rss_kib: int
    third_party: list[str]
    failed: list[str]


def _probe(modules: list[str]) -> Probe:
    done = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, check=True)
    result: Probe = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def _uvicorn(app: str, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """(pid, port) of `uvicorn floor_apps:<app>` run as pm_common.server runs the services."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", f"floor_apps:{app}", "--app-dir", str(BENCH_DIR / "harness"),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"floor app {app} did not start")
            time.sleep(0.05)
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _load(wrk: str, url: str, *, seconds: int, pids: dict[str, int]) -> tuple[float, float, dict[str, float]]:
    """(req/s, p99 ms, CPU ms per request of each pid) of one wrk run (one thread, 32 connections)."""
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    env = {**os.environ, "BENCH_LUA_DIR": str(LUA), "BENCH_PATH": "/patients"}
    command = [wrk, "-t1", "-c32", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA / "plain.lua"), url]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 60)
    report = parse_report(done.stdout)
    if report is None or report["non_2xx"] or report["connect_errors"] + report["read_errors"] + report["timeouts"]:
        raise SystemExit(f"floor load failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    requests = report["requests"]
    cpu = {name: 1000 * (_cpu_seconds(pid) - before[name]) / requests for name, pid in pids.items()}
    return requests / (report["duration_us"] / 1e6), report["p99_us"] / 1000, cpu


def hops(*, service: str, body_bytes: int, seconds: int, rounds: int) -> float:
    """Median req/s through the bare proxy to `service` (an app of floor_apps); prints each round."""
    wrk = ensure_wrk()
    with _uvicorn(service, {"FLOOR_BODY_BYTES": str(body_bytes)}) as (service_pid, service_port):
        upstream = f"http://127.0.0.1:{service_port}"
        with _uvicorn("proxy", {"FLOOR_UPSTREAM": upstream}) as (proxy_pid, proxy_port):
            pids = {"proxy": proxy_pid, "service": service_pid}
            _load(wrk, f"http://127.0.0.1:{proxy_port}", seconds=2, pids=pids)  # warm-up: connections, caches
            direct, _, direct_cpu = _load(wrk, upstream, seconds=seconds, pids=pids)
            alone = f"{direct:7,.0f} req/s ({direct_cpu['service']:.3f} ms CPU a request)"
            log(f"  {service}, {body_bytes} B body, alone: {alone}")
            rates = []
            for round_ in range(1, rounds + 1):
                rate, p99, cpu = _load(wrk, f"http://127.0.0.1:{proxy_port}", seconds=seconds, pids=pids)
                rates.append(rate)
                figures = (
                    f"{rate:7,.0f} req/s, p99 {p99:.1f} ms,"
                    f" CPU a request: proxy {cpu['proxy']:.3f} ms, service {cpu['service']:.3f} ms"
                )
                log(f"  {service}, {body_bytes} B body, through the proxy, round {round_}/{rounds}: {figures}")
    return statistics.median(rates)


def libraries() -> tuple[float, float]:
    """(sum of RSS MiB, sum of CPU s) of the five services' third-party imports; prints one line each."""
    total_rss = total_cpu = 0.0
    bare = _probe([])
    log(f"  a bare interpreter: {bare['rss_kib'] / 1024:.0f} MiB, {bare['cpu']:.2f} s")
    for service, modules in SERVICES.items():
        whole = _probe(list(modules))
        alone = _probe(whole["third_party"])
        rss, cpu = alone["rss_kib"] / 1024, alone["cpu"]
        total_rss += rss
        total_cpu += cpu
        log(
            f"  {service:18} third-party modules ({len(whole['third_party'])}) alone: {rss:4.0f} MiB, {cpu:.2f} s CPU;"
            f" with the service's own code: {whole['rss_kib'] / 1024:4.0f} MiB, {whole['cpu']:.2f} s"
            + (f" ({len(alone['failed'])} not importable alone)" if alone["failed"] else "")
        )
    return total_rss, total_cpu


def main() -> int:
    """Measure and print the floor, then what it leaves of each target."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each load (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="loads through the proxy per body size (default 3)")
    args = parser.parse_args()
    log(f"two bare hops (wrk -t1 -c32 -d{args.seconds}s; {CORES} cores shared by wrk, proxy and service)")
    rates = {
        (service, size): hops(service=service, body_bytes=size, seconds=args.seconds, rounds=args.rounds)
        for service in ("service", "framework")
        for size in (200, 3000)
    }
    log("the libraries each service imports, alone in a fresh interpreter")
    rss, cpu = libraries()
    print()
    print("| floor (nothing of ours runs) | measured | issue 17's target |")
    print("|---|---:|---:|")
    targets = {200: f"GET by id >= {TARGET_GET_RPS:,} req/s", 3000: f"list >= {TARGET_LIST_RPS:,} req/s"}
    for (service, size), rate in rates.items():
        hop = "two bare hops" if service == "service" else "bare proxy -> one FastAPI route"
        print(f"| {hop}, {size:,} B body | {rate:,.0f} req/s | {targets[size]} |")
    print(f"| the five services' third-party imports, RSS | {rss:,.0f} MiB | <= {TARGET_RSS_MIB:,.0f} MiB |")
    print(
        f"| their import CPU, and that spread over {CORES} cores | {cpu:.1f} s, {cpu / CORES:.1f} s"
        f" | make up <= {TARGET_UP_SECONDS:.0f} s |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
