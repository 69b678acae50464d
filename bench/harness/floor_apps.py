"""The bare ASGI apps of bench/floor.py: a service that answers a fixed JSON body (raw, or as one FastAPI
route) and a proxy in front.

They do what every request through our gateway and a service must do at the least (two HTTP hops, the
gateway's upstream client) and nothing else: no token, no database, no log line, no metric, no span.
Run by uvicorn exactly as pm_common.server runs the services (uvloop, httptools, no access log).
"""

from __future__ import annotations

import os

import aiohttp
from fastapi import FastAPI, Response
from starlette.types import Message, Receive, Scope, Send

from pm_common.metrics import fastapi_native_telemetry_off

_BODY = b'{"id":"' + b"x" * max(0, int(os.environ.get("FLOOR_BODY_BYTES", "200")) - 9) + b'"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
_UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:1")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def service(scope: Scope, receive: Receive, send: Send) -> None:
    """Any path: 200 with the fixed body."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


# The services' framework with nothing of ours: one FastAPI route returning the same bytes (no middleware,
# no dependency, no response model). What FastAPI's routing and request handling cost on their own.
framework = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, **fastapi_native_telemetry_off())


@framework.get("/{path:path}")
async def _fixed(path: str) -> Response:
    return Response(_BODY, media_type="application/json")


class _Proxy:
    """Forwards every request's path to FLOOR_UPSTREAM over one pooled aiohttp session, as the gateway does."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256), auto_decompress=False, timeout=aiohttp.ClientTimeout(10)
            )
            try:
                await _lifespan(receive, send)
            finally:
                await self.session.close()
            return
        assert self.session is not None
        async with self.session.get(_UPSTREAM + scope["path"]) as response:
            body = await response.read()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


proxy = _Proxy()
