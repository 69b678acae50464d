"""The gateway's own endpoints: liveness (/health: the process answers) and readiness (/ready: upstreams answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from fastapi import APIRouter, Request

from api_gateway.balancer import instance_names
from api_gateway.config import Settings, service_urls
from api_gateway.upstreams import Upstreams
from pm_common.health import Check, Info, health_router

# Where an upstream's check leaves its instances' answers for the per-instance entries of the same request.
_INSTANCES_STATE = "ready_instances"


def health_routers(settings: Settings, upstreams: Upstreams, bases: Mapping[str, str]) -> list[APIRouter]:
    """/health needs no upstream; /ready is 200 when every upstream has an instance whose /health answers 200.

    `bases` maps an upstream to its base URL or its instances' comma-separated URLs. An upstream of several
    instances is UP when one of them is (the gateway sends requests to those that answer); each instance is
    listed beside it as `name#1`, `name#2`, ... (information, not deciding the status).
    """
    limit = aiohttp.ClientTimeout(total=settings.readiness_timeout_seconds)

    async def answers(base_url: str) -> bool:
        try:
            async with upstreams.session.get(base_url + "/health", timeout=limit) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def upstream_check(urls: tuple[str, ...], names: tuple[str, ...]) -> Check:
        async def check(request: Request) -> bool:
            results = await asyncio.gather(*(answers(url) for url in urls))
            if len(urls) > 1:
                found: dict[str, bool] = getattr(request.state, _INSTANCES_STATE, None) or {}
                found.update(zip(names, results, strict=True))
                setattr(request.state, _INSTANCES_STATE, found)
            return any(results)

        return check

    def instance_status(name: str) -> Info:
        async def status(request: Request) -> str:
            return "UP" if getattr(request.state, _INSTANCES_STATE, {}).get(name) else "DOWN"

        return status

    checks: dict[str, Check] = {}
    instances: dict[str, Info] = {}
    for upstream, base in bases.items():
        urls = service_urls(base)
        names = instance_names(upstream, len(urls))
        checks[upstream] = upstream_check(urls, names)
        if len(urls) > 1:
            instances.update({name: instance_status(name) for name in names})
    return [
        health_router(checks={}, summary="Liveness"),
        health_router(path="/ready", checks=checks, info=instances, summary="Readiness"),
    ]
