"""Prometheus metrics of every service: `/metrics` (text format), HTTP requests by route template, the
database pool, and scrape hooks for what is read from elsewhere at scrape time (the outbox backlog...).

Hot paths stay cheap: the request metrics keep one pre-bound child per (method, route, status), and the
route is the template of the route that matched (FastAPI puts it in the scope), never the raw path.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from pm_common.http import StatusRecorder
from pm_common.telemetry import instrument_app

log = logging.getLogger(__name__)

# A layer in front of the FastAPI router (the gateway's proxy) names the route it matched here.
ROUTE_SCOPE_KEY = "pm.route"
UNMATCHED = "unmatched"
ScrapeHook = Callable[[Request], Awaitable[None]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class _HasPool(Protocol):
    @property
    def pool(self) -> Any: ...


E = TypeVar("E", bound=_HasPool)

HTTP_REQUEST_SECONDS = Histogram(
    "http_server_request_duration_seconds",
    "HTTP requests served (count and duration) by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_children: dict[tuple[str, str, int], Any] = {}


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    named = scope.get(ROUTE_SCOPE_KEY)
    return named if isinstance(named, str) else UNMATCHED


class HttpMetricsMiddleware:
    """Times every HTTP request into HTTP_REQUEST_SECONDS and names the server span by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            status = recorder.status
            method: str = scope["method"]
            route = _route_of(scope)
            key = (method, route, status)
            child = _children.get(key)
            if child is None:
                child = _children.setdefault(key, HTTP_REQUEST_SECONDS.labels(method, route, str(status)))
            child.observe(time.perf_counter() - started)
            span = trace.get_current_span()
            if route != UNMATCHED and span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)


def add_scrape_hook(app: FastAPI, hook: ScrapeHook) -> None:
    """Run `hook` (set gauges from the database, a client...) before each scrape of this app's /metrics."""
    hooks: list[ScrapeHook] | None = getattr(app.state, "metrics_scrape_hooks", None)
    if hooks is None:
        hooks = app.state.metrics_scrape_hooks = []
    hooks.append(hook)


async def _run_hooks(hooks: list[ScrapeHook], request: Request) -> None:
    for hook in hooks:
        try:
            async with asyncio.timeout(2.0):
                await hook(request)
        except Exception as exc:  # a scrape still answers; the gauges of that hook keep their last values
            log.warning("metrics scrape hook failed", extra={"hook": hook.__name__, "error": type(exc).__name__})


def metrics_router() -> APIRouter:
    """GET /metrics: Prometheus text format, no token (bind it where only the scraper reaches it)."""
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await _run_hooks(getattr(request.app.state, "metrics_scrape_hooks", []), request)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


def fastapi_native_telemetry_off() -> dict[str, Any]:
    """FastAPI's own OpenTelemetry (newer FastAPI, on by default once opentelemetry is installed) off: the
    kit's ASGI instrumentation makes the server span (also around the gateway's proxy), and the native one
    added a second server span and a span per dependency (measured: 5 spans a request)."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}


def install_observability(app: FastAPI, *, service: str, metrics_route: bool) -> None:
    """The kit's hook in build_app: tracing (pm_common.telemetry), request metrics and /metrics."""
    if metrics_route:
        app.include_router(metrics_router())
    instrument_app(app, service, around=[HttpMetricsMiddleware])


def with_metrics_port(lifespan: Lifespan | None, *, host: str, port: int | None) -> Lifespan | None:
    """`lifespan`, also serving /metrics on `port` (None: on the app's own port instead; 0: nowhere)."""
    if not port:
        return lifespan

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[None]:
        async with metrics_server(host, port):
            if lifespan is None:
                yield
                return
            async with lifespan(app):
                yield

    return serving


@asynccontextmanager
async def metrics_server(host: str, port: int) -> AsyncIterator[asyncio.Server | None]:
    """Serve GET /metrics on its own port (the gateway's METRICS_PORT) while the block runs.

    A port that is taken (another instance on this machine has it) is logged and skipped: the service
    still serves, without its metrics.
    """
    try:
        server = await asyncio.start_server(_answer, host, port)
    except OSError as exc:
        log.warning("metrics port not available; /metrics not served", extra={"port": port, "error": str(exc)})
        yield None
        return
    log.info("metrics served", extra={"host": host, "port": port})
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=2.0)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(5.0):
            head = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method in (b"GET", b"HEAD") and path == b"/metrics":
            status, content_type, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), generate_latest(REGISTRY)
        else:
            status, content_type, body = b"404 Not Found", b"text/plain", b"Not Found\n"
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\ncontent-type: "
            + content_type
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + (body if method != b"HEAD" else b"")
        )
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


class _PoolCollector(Collector):
    """Connections checked out of each live engine's pool (its current one: dispose() replaces it), read at
    scrape time."""

    def __init__(self) -> None:
        self.engines: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily("db_pool_connections_in_use", "Database connections checked out of the pool")
        size = GaugeMetricFamily("db_pool_size", "Database connections the pool keeps")
        in_use.add_metric([], float(sum(_call(e.pool, "checkedout") for e in list(self.engines))))
        size.add_metric([], float(sum(_call(e.pool, "size") for e in list(self.engines))))
        yield in_use
        yield size


def _call(pool: Any, name: str) -> int:
    method = getattr(pool, name, None)
    return int(method()) if callable(method) else 0


_pools = _PoolCollector()
REGISTRY.register(_pools)


def watch_engine(engine: E) -> E:
    """Report this engine's pool in db_pool_connections_in_use (forgotten once the engine is gone)."""
    _pools.engines.add(engine)
    return engine
