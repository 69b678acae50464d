"""The gateway's own endpoints: liveness (/health) and readiness of the upstreams (/ready)."""

from __future__ import annotations

import asyncio
from typing import cast

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_gateway.config import Settings
from api_gateway.routes import RouteTable
from api_gateway.upstreams import Upstreams

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """The gateway process serves: 200 `{"status": "UP"}` (it needs no upstream for that)."""
    return {"status": "UP"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """200 when every upstream's /health answers 200 in time, else 503; lists each upstream UP/DOWN."""
    state = request.app.state
    settings = cast(Settings, state.settings)
    upstreams = cast(Upstreams, state.upstreams).session
    table = cast(RouteTable, state.routes).upstreams()
    limit = aiohttp.ClientTimeout(total=settings.readiness_timeout_seconds)
    results = await asyncio.gather(*(_check(upstreams, url + "/health", limit) for url in table.values()))
    checks = dict(zip(table, results, strict=True))
    up = all(result == "UP" for result in checks.values())
    return JSONResponse({"status": "UP" if up else "DOWN", "upstreams": checks}, status_code=200 if up else 503)


async def _check(session: aiohttp.ClientSession, url: str, limit: aiohttp.ClientTimeout) -> str:
    try:
        async with session.get(url, timeout=limit) as response:
            await response.read()
            return "UP" if response.status == 200 else "DOWN"
    except (aiohttp.ClientError, TimeoutError):
        return "DOWN"
