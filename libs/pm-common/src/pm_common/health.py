"""One health endpoint builder: required checks decide UP/DOWN, the rest is information."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

Status = Literal["UP", "DOWN"]
# A check answers whether the service can serve (True = UP); an info provider adds a JSON value.
Check = Callable[[Request], Awaitable[bool]]
Info = Callable[[Request], Awaitable[Any]]
CHECK_TIMEOUT_SECONDS = 3.0


def health_router(
    *,
    path: str = "/health",
    checks: Mapping[str, Check],
    info: Mapping[str, Info] | None = None,
    details: Mapping[str, Info] | None = None,
    summary: str = "Health",
) -> APIRouter:
    """GET `path`: 200 `{"status": "UP", "checks": {...}}`, or 503 with status DOWN naming what failed.

    `checks` decide the status; `info` values are listed beside them under "checks" without deciding it;
    `details` are top-level fields. A check that raises or takes over 3 s counts as DOWN.
    """
    router = APIRouter(tags=["health"])

    async def health(request: Request) -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run(name, checks[name], request) for name in names))
        body_checks: dict[str, Any] = {name: "UP" if ok else "DOWN" for name, ok in zip(names, results, strict=True)}
        for name, provide in (info or {}).items():
            body_checks[name] = await provide(request)
        up = all(results)
        body: dict[str, Any] = {"status": "UP" if up else "DOWN", "checks": body_checks}
        for name, provide in (details or {}).items():
            body[name] = await provide(request)
        return JSONResponse(body, status_code=200 if up else 503)

    health.__doc__ = f"200 when every check ({', '.join(checks) or 'none'}) is UP, else 503 naming what is DOWN."
    router.add_api_route(
        path,
        health,
        methods=["GET"],
        summary=summary,
        responses={503: {"description": "A required dependency is DOWN"}},
    )
    return router


async def _run(name: str, check: Check, request: Request) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await check(request)
    except Exception as exc:  # a check that fails to answer means the dependency cannot serve now
        log.warning("health check failed", extra={"check": name, "error": type(exc).__name__})
        return False
