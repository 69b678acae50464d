"""Before any load: every service answers, a login through the gateway, the database clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import aiohttp

from .database import connected
from .endpoints import Endpoints


@dataclass(frozen=True)
class Login:
    """The bench user's token, and when the bench started by the database's clock (None: no database access)."""

    token: str
    started_db_time: dt.datetime | None


def preflight(endpoints: Endpoints, email: str, password: str) -> Login:
    """Every service answers; log in through the gateway; note the database clock."""
    return asyncio.run(_preflight(endpoints, email, password))


async def _preflight(endpoints: Endpoints, email: str, password: str) -> Login:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for url in (f"{endpoints.gateway}/health", f"{endpoints.patient}/health"):
            async with session.get(url) as response:
                if response.status != 200:
                    raise SystemExit(f"{url} answers {response.status}: is the stack up (`make up`)?")
        async with session.post(
            f"{endpoints.gateway}/auth/login", json={"email": email, "password": password}
        ) as response:
            if response.status != 200:
                raise SystemExit(f"login through the gateway failed: HTTP {response.status}")
            token = str((await response.json())["token"])
    started_db_time: dt.datetime | None = None
    if endpoints.postgres:
        async with connected(endpoints.database("patient_service")) as connection:
            started_db_time = await connection.fetchval("SELECT now()")
    return Login(token, started_db_time)
