"""A PostgreSQL cluster of the project's own: initdb once, start/stop with pg_ctl, one database per service."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.process import port_open

USER = "postgres"


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

    def start(self, *, fast: bool = False) -> None:
        """Start (or keep) the server; fast=True trades crash safety for speed (tests)."""
        if self.running:
            return
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.data_dir}",
            "-c max_connections=300",
            "-c shared_buffers=128MB",
        ]
        if fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        subprocess.run(
            [
                *_as_owner(),
                str(_bin_dir() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                " ".join(options),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown: open sessions are ended)."""
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
