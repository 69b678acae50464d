"""The chaos run's killer: every `interval` seconds a random supervised program gets SIGKILL.

The programs are the supervisor's (PostgreSQL, Kafka, every service instance); the pid is supervisord's, and
as supervisord starts each program as the leader of its own process group, the group is killed with it
(PostgreSQL's backends, uvicorn's workers). Nothing is restarted by hand: after each kill the supervisor is
watched until it reports the program RUNNING again with a new pid, and the program until it serves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass

import aiohttp

from devstack.stack import Stack

from .database import connected
from .endpoints import postgres_url
from .progress import log


@dataclass
class Kill:
    """One SIGKILL: which program, when (monotonic), and how long until it was back."""

    program: str
    kind: str  # "service", "postgres" or "kafka"
    at: float
    pid: int
    running_after: float | None = None  # seconds until the supervisor said RUNNING (new pid)
    serving_after: float | None = None  # seconds until it answered again (/health 200, or its port)


def kind_of(program: str) -> str:
    """PostgreSQL, Kafka, or a service instance."""
    return program if program in ("postgres", "kafka") else "service"


class Killer:
    """Picks and kills; records every kill with the time its program needed to come back."""

    def __init__(self, stack: Stack, *, interval: float, seed: int, watch_timeout: float = 60.0) -> None:
        self.stack = stack
        self.interval = interval
        self.rng = random.Random(seed)
        self.watch_timeout = watch_timeout
        self.kills: list[Kill] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._ports = {
            instance.name: instance.port for service in stack.available() for instance in stack.instances(service)
        }
        self._ports.update({"postgres": stack.ports.postgres, "kafka": stack.ports.kafka})
        self._health = {
            instance.name: instance.url + service.health_path
            for service in stack.available()
            for instance in stack.instances(service)
        }

    async def run(self, seconds: float) -> None:
        """A kill every `interval` seconds (the first after one interval) while the run lasts; the watchers of
        the last kills may still run (await settled())."""
        started = time.monotonic()
        for number in range(1, 10_000):
            at = started + number * self.interval
            if at >= started + seconds:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            kill = await asyncio.to_thread(self.kill_one)
            if kill is not None:
                log(f"kill -9 {kill.program} (pid {kill.pid})")
                self.kills.append(kill)
                self._watchers.append(asyncio.create_task(self._watch(kill)))

    async def settled(self) -> None:
        """Wait for every kill's watcher (each bounded by watch_timeout)."""
        await asyncio.gather(*self._watchers)

    def kill_one(self) -> Kill | None:
        """SIGKILL a random RUNNING program (and its process group when it leads one)."""
        running = {p.name: p.pid for p in self.stack.supervisor.processes() if p.state == "RUNNING" and p.pid}
        if not running:
            return None
        program = self.rng.choice(sorted(running))
        pid = running[program]
        assert pid is not None
        at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            leader = os.getpgid(pid) == pid
            os.kill(pid, signal.SIGKILL)
            if leader:
                os.killpg(pid, signal.SIGKILL)
        return Kill(program=program, kind=kind_of(program), at=at, pid=pid)

    async def _watch(self, kill: Kill) -> None:
        deadline = kill.at + self.watch_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            respawned = False
            while time.monotonic() < deadline:
                if kill.running_after is None:
                    info = await asyncio.to_thread(self.stack.supervisor.info, kill.program)
                    respawned = respawned or bool(info and info["pid"] and info["pid"] != kill.pid)
                    if respawned and info and info["statename"] == "RUNNING":
                        kill.running_after = time.monotonic() - kill.at
                if respawned and kill.serving_after is None and await self._serving(session, kill.program):
                    kill.serving_after = time.monotonic() - kill.at
                if kill.running_after is not None and kill.serving_after is not None:
                    return
                await asyncio.sleep(0.1)

    async def _serving(self, session: aiohttp.ClientSession, program: str) -> bool:
        url = self._health.get(program)
        if url is not None:
            try:
                async with session.get(url) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False
        if program == "postgres":  # accepting connections is not enough while it recovers: a query is
            try:
                async with asyncio.timeout(2), connected(f"{postgres_url(self.stack)}/postgres") as connection:
                    return bool(await connection.fetchval("SELECT 1"))
            except Exception:
                return False
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self._ports[program]), 1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True
