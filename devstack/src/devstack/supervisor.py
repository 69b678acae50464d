"""supervisord behind the launcher: one config written from the stack's programs, driven over XML-RPC.

supervisord (the `supervisor` package, installed in the venv) runs in the background with its socket,
pid file, log and config in one folder of the stack's state dir. Every program is `autostart=false`:
the launcher starts them in order through the API and waits for each to be ready; supervisord then
restarts whatever dies (`autorestart`), with its backoff for processes that die while starting.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import Faults, SupervisorTransport  # type: ignore[import-untyped]

from devstack import process

# States in which supervisord still keeps a program going (BACKOFF: it will try again).
ALIVE_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


@dataclass(frozen=True)
class Program:
    """One `[program:x]` section. Lower priority starts first and stops last (supervisord's order)."""

    name: str
    command: tuple[str, ...]
    log_file: Path
    directory: Path
    priority: int
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    stopasgroup: bool = True  # uvicorn workers stop with their parent
    startretries: int = 5

    def section(self) -> str:
        """The ini text of this program."""
        environment = ",".join(f"{key}={_quoted(value)}" for key, value in sorted(self.env.items()))
        command = self.command
        if self.user is None:
            # The program writes its log file itself (the shell opens it, then execs the program: same pid).
            # Through supervisord's pipe every line cost its Python process a read and a write: ~11 % of a
            # core at 1,000 access-log lines a second under bench load.
            command = ("/bin/sh", "-c", f'exec "$@" >> {shlex.quote(str(self.log_file))} 2>&1', self.name, *command)
        lines = {
            "command": " ".join(_escape(shlex.quote(arg)) for arg in command),
            "directory": _escape(str(self.directory)),
            "environment": environment,
            "user": self.user or "",
            "priority": str(self.priority),
            "autostart": "false",
            "autorestart": "true",
            "startsecs": "1",
            "startretries": str(self.startretries),
            "stopsignal": self.stopsignal,
            "stopwaitsecs": str(self.stopwaitsecs),
            "stopasgroup": str(self.stopasgroup).lower(),
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": "NONE" if self.user is None else _escape(str(self.log_file)),
            "stdout_logfile_maxbytes": "50MB",
            "stdout_logfile_backups": "2",
        }
        body = "".join(f"{key}={value}\n" for key, value in lines.items() if value)
        return f"[program:{self.name}]\n{body}"


def _escape(value: str) -> str:
    if "\n" in value:
        raise ValueError(f"a newline cannot go into supervisord.conf: {value!r}")
    return value.replace("%", "%%")  # supervisord expands %(name)s in these values


def _quoted(value: str) -> str:
    # supervisord splits `environment` with a non-POSIX shlex: quotes group, nothing escapes them.
    quote = '"' if '"' not in value else "'"
    if quote in value or value.strip("'\"") != value:  # it strips quotes at either end
        raise ValueError(f"supervisord.conf cannot hold this environment value: {value!r}")
    return quote + _escape(value) + quote


@dataclass(frozen=True)
class ProcessStatus:
    """What `devstack status` shows for one program."""

    name: str
    state: str
    pid: int | None
    uptime_seconds: float | None
    restarts: int
    detail: str  # why it is not running (spawn error), when supervisord says


@dataclass(frozen=True)
class Supervisor:
    """One supervisord, its files in directory (inside the stack's state dir)."""

    directory: Path

    @property
    def config_file(self) -> Path:
        """supervisord.conf, rewritten from the stack's programs before every start."""
        return self.directory / "supervisord.conf"

    @property
    def socket_file(self) -> Path:
        """The XML-RPC endpoint: a unix socket only its owner may use (no TCP port)."""
        return self.directory / "supervisord.sock"

    @property
    def pid_file(self) -> Path:
        """supervisord's own pid."""
        return self.directory / "supervisord.pid"

    @property
    def log_file(self) -> Path:
        """supervisord's own log: spawns, exits, give-ups (restart counts are read from it)."""
        return self.directory / "supervisord.log"

    def render(self, programs: Iterable[Program]) -> str:
        """The whole config file."""
        header = f"""; written by devstack on every `make up`; edits are overwritten
[supervisord]
logfile={_escape(str(self.log_file))}
logfile_maxbytes=0
loglevel=info
pidfile={_escape(str(self.pid_file))}
identifier=devstack
minfds=4096

[unix_http_server]
file={_escape(str(self.socket_file))}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_escape(str(self.socket_file))}
"""
        return "\n".join([header, *(program.section() for program in programs)])

    # -- the daemon ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True when supervisord of this folder answers on its socket."""
        if process.read_pid(self.pid_file) is None or not self.socket_file.exists():
            return False
        try:
            self._rpc().supervisor.getState()
        except (OSError, xmlrpc.client.Error):
            return False
        return True

    def apply(self, programs: Iterable[Program], *, env: Mapping[str, str] | None = None) -> None:
        """Write the config; start supervisord with it, or make a running one take the changes."""
        if len(str(self.socket_file)) > _SOCKET_PATH_MAX:
            raise RuntimeError(f"state dir path too long for a unix socket: {self.socket_file}")
        programs = list(programs)
        for folder in {self.directory, *(program.log_file.parent for program in programs)}:
            folder.mkdir(parents=True, exist_ok=True)  # supervisord refuses a config naming a missing one
        text = self.render(programs)
        changed = not self.config_file.exists() or self.config_file.read_text() != text
        if changed:
            self.config_file.write_text(text)
            self.config_file.chmod(0o600)  # it holds JWT_SECRET
        if not self.running:
            self._start_daemon(env)
        elif changed:
            self._update()

    def _start_daemon(self, env: Mapping[str, str] | None) -> None:
        if self.log_file.exists():  # restart counts are per supervisord run
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))
        command = [str(Path(sys.executable).parent / "supervisord"), "-c", str(self.config_file)]
        # supervisord forks into the background (its own session) and the first process exits.
        result = subprocess.run(
            command, env=dict(env) if env is not None else None, capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"supervisord did not start: {(result.stderr or result.stdout).strip()}")
        deadline = time.monotonic() + 15
        while not self.running:
            if time.monotonic() > deadline:
                raise TimeoutError(f"supervisord did not answer on {self.socket_file} (see {self.log_file})")
            time.sleep(0.05)

    def _update(self) -> None:
        """What `supervisorctl update` does: re-read the config, replace changed programs, drop removed ones."""
        rpc = self._rpc().supervisor
        [[added, changed, removed]] = rpc.reloadConfig()
        for name in [*changed, *removed]:
            rpc.stopProcessGroup(name, True)
            rpc.removeProcessGroup(name)
        for name in [*changed, *added]:
            rpc.addProcessGroup(name)

    def shutdown(self, *, timeout_seconds: float = 180.0) -> bool:
        """Stop every program (reverse priority order), then supervisord; True if it was running."""
        pid = process.read_pid(self.pid_file)
        if pid is None:
            return False
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            self._rpc().supervisor.shutdown()
        if not self._gone(timeout_seconds):
            with contextlib.suppress(ProcessLookupError):  # SIGTERM: supervisord stops its programs, then exits
                os.kill(pid, signal.SIGTERM)
            if not self._gone(timeout_seconds):
                raise TimeoutError(f"supervisord (pid {pid}) did not stop; see {self.log_file}")
        self.pid_file.unlink(missing_ok=True)
        return True

    def _gone(self, timeout_seconds: float) -> bool:
        deadline = time.monotonic() + timeout_seconds
        while process.read_pid(self.pid_file) is not None:  # supervisord removes its pid file last
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    # -- programs ------------------------------------------------------------------------------
    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket_file}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def start(self, name: str) -> None:
        """Start a program without waiting (a running one is left alone); readiness is the caller's."""
        try:
            self._rpc().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.ALREADY_STARTED:
                raise

    def stop(self, name: str) -> None:
        """Stop a program and wait until it has; it stays stopped (no restart) until start()."""
        if not self.running:
            return
        try:
            self._rpc().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode not in (Faults.NOT_RUNNING, Faults.BAD_NAME):
                raise

    def info(self, name: str) -> dict[str, Any] | None:
        """supervisord's getProcessInfo for one program, None when it does not know it (or is down)."""
        try:
            return cast(dict[str, Any], self._rpc().supervisor.getProcessInfo(name))
        except (OSError, xmlrpc.client.Error):
            return None

    def pid(self, name: str) -> int | None:
        """The pid of a running program (its process group: supervisord starts each in its own)."""
        found = self.info(name)
        return int(found["pid"]) if found and found["pid"] else None

    def alive(self, name: str) -> bool:
        """False once supervisord has given up on a program (FATAL) or it was stopped."""
        found = self.info(name)
        return found is not None and found["statename"] in ALIVE_STATES

    def processes(self) -> list[ProcessStatus]:
        """Every program, in config order, with its restarts since supervisord started."""
        infos: list[dict[str, Any]] = self._rpc().supervisor.getAllProcessInfo()
        order = re.findall(r"^\[program:(.+)\]$", self.config_file.read_text(), re.MULTILINE)
        infos.sort(key=lambda info: order.index(info["name"]) if info["name"] in order else len(order))
        restarts = self.restarts()
        return [
            ProcessStatus(
                name=info["name"],
                state=info["statename"],
                pid=info["pid"] or None,
                uptime_seconds=info["now"] - info["start"] if info["statename"] == "RUNNING" else None,
                restarts=restarts.get(info["name"], 0),
                detail=info["spawnerr"] or "",
            )
            for info in infos
        ]

    def restarts(self) -> dict[str, int]:
        """Per program, how often supervisord spawned it again after it died (read from its log)."""
        counts: dict[str, int] = {}
        died: set[str] = set()
        if not self.log_file.exists():
            return counts
        for line in self.log_file.read_text(errors="replace").splitlines():
            if exited := _EXITED.search(line):
                died.add(exited["name"])
            elif gave_up := _GAVE_UP.search(line):
                died.discard(gave_up["name"])
            elif (spawned := _SPAWNED.search(line)) and spawned["name"] in died:
                died.discard(spawned["name"])
                counts[spawned["name"]] = counts.get(spawned["name"], 0) + 1
        return counts


_EXITED = re.compile(r" exited: (?P<name>\S+) \(.*; not expected\)$")
_GAVE_UP = re.compile(r" gave up: (?P<name>\S+) ")
_SPAWNED = re.compile(r" spawned: '(?P<name>[^']+)' with pid ")
