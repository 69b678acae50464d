"""The wrk runner: installs wrk, runs a script of bench/lua/ for a bounded time and reads its JSON line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import TypedDict

from .cpu import CpuWindow, disturbed
from .paths import LUA
from .processes import StackProcesses
from .progress import log


class WrkReport(TypedDict):
    """The line lua/report.lua prints from done() (times in µs)."""

    requests: int
    duration_us: int
    bytes: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx: int


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


def parse_report(stdout: str) -> WrkReport | None:
    """The last JSON line of wrk's output (None: the script printed none)."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        return None
    report: WrkReport = json.loads(line)
    return report


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

    @classmethod
    def of(cls, label: str, connections: int, report: WrkReport, cpu: dict[str, float]) -> WrkRun:
        """A run from wrk's report and the CPU used meanwhile."""
        return cls(
            label=label,
            connections=connections,
            requests=report["requests"],
            seconds=report["duration_us"] / 1e6,
            p50_ms=report["p50_us"] / 1000,
            p90_ms=report["p90_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            max_ms=report["max_us"] / 1000,
            errors=report["connect_errors"] + report["read_errors"] + report["write_errors"] + report["timeouts"],
            non_2xx=report["non_2xx"],
            cpu=cpu,
            disturbed=disturbed(cpu),
        )

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

    def as_json(self) -> dict[str, object]:
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
        report = parse_report(completed.stdout)
        if completed.returncode != 0 or report is None:
            raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()[:500]}")
        return WrkRun.of(label, connections, report, cpu)
