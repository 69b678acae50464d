"""A PostgreSQL cluster of the project's own: initdb once, run under supervisord, one database per service.

Without a supervisor (a cluster of an older launcher) it is started and stopped with pg_ctl.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.process import port_open
from devstack.supervisor import Program, Supervisor

# The server log carries no values: no DETAIL lines (a unique violation's DETAIL quotes the key, e.g. an
# email), no statement text with errors, no statements at all.
LOG_WITHOUT_VALUES = (
    "log_error_verbosity=terse",
    "log_min_error_statement=panic",
    "log_statement=none",
    "log_min_duration_statement=-1",
)
USER = "postgres"
PROGRAM = "postgres"


def _bin_dir() -> Path:
    """The server binaries: $PG_BIN, else the newest /usr/lib/postgresql/*/bin, else the PATH."""
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates:
        return Path(candidates[-1])
    found = shutil.which("initdb")
    if found is None:
        raise RuntimeError("PostgreSQL server binaries not found: install postgresql (or set PG_BIN)")
    return Path(found).parent


def _as_owner() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user when we are root."""
    return ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []


@dataclass(frozen=True)
class PostgresCluster:
    """One cluster in data_dir, listening on 127.0.0.1:port only, trusting loopback connections."""

    data_dir: Path
    port: int
    log_file: Path
    supervisor: Supervisor | None = None

    def url(self, database: str) -> str:
        """A SQLAlchemy/asyncpg URL for one database of this cluster."""
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        """True when the postmaster of data_dir is up and accepts connections."""
        return (self.data_dir / "postmaster.pid").exists() and port_open(self.port)

    def init(self) -> None:
        """initdb once; later calls keep the data (it persists until `make clean`)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(USER)
            for path in (self.data_dir, self.log_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                *_as_owner(),
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _options(self, *, fast: bool) -> list[str]:
        settings = ["listen_addresses=127.0.0.1", "max_connections=300", "shared_buffers=128MB", *LOG_WITHOUT_VALUES]
        if fast:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        return ["-p", str(self.port), "-k", str(self.data_dir), *(arg for s in settings for arg in ("-c", s))]

    def program(self, *, fast: bool, priority: int) -> Program:
        """The postmaster in the foreground, as the postgres user when root; SIGINT is its fast shutdown."""
        return Program(
            name=PROGRAM,
            command=(str(_bin_dir() / "postgres"), "-D", str(self.data_dir), *self._options(fast=fast)),
            log_file=self.log_file,
            directory=self.data_dir.parent,
            priority=priority,
            user=USER if os.geteuid() == 0 else None,
            stopsignal="INT",
            stopwaitsecs=60,
            stopasgroup=False,  # the postmaster ends its backends itself; SIGINT to them would only cancel queries
            startretries=10,  # after a kill -9, its old backends may hold the shared memory for a moment
        )

    def start(self, *, fast: bool = False, timeout_seconds: float = 60.0) -> None:
        """Start (or keep) the server and wait until it accepts connections; fast=True trades crash safety
        for speed (tests; under a supervisor its program says that instead)."""
        if self.supervisor is not None:
            self.supervisor.start(PROGRAM)
            self.wait_ready(timeout_seconds=timeout_seconds)
            return
        if self.running:
            return
        subprocess.run(
            [
                *_as_owner(),
                str(_bin_dir() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                shlex.join(self._options(fast=fast)),
                "-w",
                "-t",
                str(int(timeout_seconds)),
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, *, timeout_seconds: float) -> None:
        """Poll pg_isready until the server accepts connections; fail early once the supervisor gave up."""
        deadline = time.monotonic() + timeout_seconds
        command = [str(_bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"]
        while subprocess.run(command, check=False).returncode != 0:
            if self.supervisor is not None and not self.supervisor.alive(PROGRAM):
                raise RuntimeError(f"PostgreSQL exited (see {self.log_file})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL not ready after {timeout_seconds:.0f}s (see {self.log_file})")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown: open sessions are ended); a supervisor keeps it stopped."""
        if self.supervisor is not None:
            self.supervisor.stop(PROGRAM)
            return
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(
            [*_as_owner(), str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def create_database(self, name: str) -> str:
        """Create database name unless it exists; return its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 (name checked above)
        if self.psql(query).strip() != "1":
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one statement with psql over loopback and return its unaligned output."""
        result = subprocess.run(
            [
                str(_bin_dir() / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout
