"""Background processes with a pid file and a log file, stopped by pid (their whole process group)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, below the kernel's ephemeral range.

    Not port 0's answer: that comes from the ephemeral range, where the kernel also picks the local port of
    every outgoing connection, so the port could be taken before its user binds it. A service's lifespan
    connects to PostgreSQL and Kafka before uvicorn binds its port, and lost it that way in a CI run
    (Errno 98). Ports handed out by this process are not handed out again.
    """
    below = _ephemeral_range_start()
    for _ in range(1000):
        port = random.randrange(_LOWEST_FREE_PORT, below)  # noqa: S311 (a port number, not a secret)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {_LOWEST_FREE_PORT} and {below}")


_LOWEST_FREE_PORT = 10_000
_handed_out: set[int] = set()


def _ephemeral_range_start() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def read_pid(pid_file: Path) -> int | None:
    """The pid in pid_file if that process still runs, else None (and a stale file is removed)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid
    return pid


def start(
    command: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start command in its own session (so workers it forks stop with it); return its pid."""
    running = read_pid(pid_file)
    if running is not None:
        return running
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid))
    return process.pid


def stop(pid_file: Path, *, timeout_seconds: float = 20.0) -> bool:
    """SIGTERM the process group in pid_file, SIGKILL it after timeout_seconds; True if one was running."""
    pid = read_pid(pid_file)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline and _group_alive(pid):
        _reap(pid)
        time.sleep(0.1)
    if _group_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _group_alive(pid):
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    pid_file.unlink(missing_ok=True)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader of our own still "exists"; reaping it lets the group disappear.
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _exited(pid_file: Path | None, alive: Callable[[], bool] | None) -> bool:
    if pid_file is not None and read_pid(pid_file) is None:
        return True
    return alive is not None and not alive()


def wait_http_ok(
    url: str, *, timeout_seconds: float, pid_file: Path | None = None, alive: Callable[[], bool] | None = None
) -> None:
    """Poll url until it answers 200; fail early if the process behind pid_file has exited (or alive() is False)."""
    deadline = time.monotonic() + timeout_seconds
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if _exited(pid_file, alive):
                raise RuntimeError(f"{url}: the process exited (see its log)")
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout_seconds:.0f}s ({last})")


def wait_port(
    port: int,
    *,
    timeout_seconds: float,
    pid_file: Path | None = None,
    alive: Callable[[], bool] | None = None,
    host: str = "127.0.0.1",
) -> None:
    """Wait until host:port accepts connections; fail early if the process has exited."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        if _exited(pid_file, alive):
            raise RuntimeError(f"port {port}: the process exited (see its log)")
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_seconds:.0f}s")
