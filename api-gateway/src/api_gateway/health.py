"""The gateway's own endpoints: liveness (/health: the process answers) and readiness (/ready: upstreams answer)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from fastapi import APIRouter, Request

from api_gateway.config import Settings
from api_gateway.upstreams import Upstreams
from pm_common.health import Check, health_router


def health_routers(settings: Settings, upstreams: Upstreams, bases: Mapping[str, str]) -> list[APIRouter]:
    """/health needs no upstream; /ready is 200 when every upstream's /health answers 200 in time."""
    limit = aiohttp.ClientTimeout(total=settings.readiness_timeout_seconds)

    def answers(base_url: str) -> Check:
        async def check(request: Request) -> bool:
            try:
                async with upstreams.session.get(base_url + "/health", timeout=limit) as response:
                    await response.read()
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        return check

    return [
        health_router(checks={}, summary="Liveness"),
        health_router(path="/ready", checks={name: answers(url) for name, url in bases.items()}, summary="Readiness"),
    ]
