"""The service kit: one FastAPI app shape and async dependency getters for every service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from starlette.types import ASGIApp

from pm_common.http import ErrorHandler, install_http_basics
from pm_common.metrics import fastapi_native_telemetry_off, install_observability, with_metrics_port
from pm_common.server import tune_gc
from pm_common.settings import ServiceSettings

T = TypeVar("T")
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_app(
    *,
    settings: ServiceSettings,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    lifespan: Lifespan | None = None,
    error_handlers: Mapping[type[Exception], ErrorHandler] | None = None,
    field_overrides: Mapping[str, Mapping[str, str]] | None = None,
    invalid_path_message: str | None = None,
    metrics_port: int | None = None,
    fast_paths: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app with the shared error shape, body limit and access log.

    `lifespan` is the service's own: it creates its network clients, puts them on `app.state` and
    closes them. Around it the kit freezes the garbage collector once start-up is done, and
    `app.state.settings` holds the settings. Tracing and /metrics come from pm_common.metrics (on
    `metrics_port` instead of the app's port when one is given).

    `fast_paths` are ASGI middlewares placed innermost, inside the access log and the body limit and
    outside FastAPI's routing: a service's answers to its hottest requests that skip the router (each
    passes on whatever it does not answer itself).
    """
    lifespan = with_metrics_port(lifespan, host=settings.host, port=metrics_port)

    @asynccontextmanager
    async def kit_lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            tune_gc()
            yield
            return
        async with lifespan(app):
            tune_gc()  # after start-up: what imports and clients left is frozen, never traversed again
            yield

    options = {**fastapi_native_telemetry_off(), **fastapi_options}  # the kit traces (pm_common.telemetry)
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=kit_lifespan, **options)
    app.state.settings = settings
    for router in routers:
        app.include_router(router)
    for fast_path in fast_paths:
        app.add_middleware(fast_path)
    install_http_basics(
        app,
        field_overrides=field_overrides,
        invalid_path_message=invalid_path_message,
        error_handlers=error_handlers,
    )
    install_observability(app, service=title, metrics_route=metrics_port is None)
    return app


@asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run a lifespan's background job while the block runs; cancel it and wait for it on the way out."""
    task = asyncio.create_task(coroutine, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def from_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency getter for `app.state.<name>` (what the lifespan put there).

    `async` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per
    request that showed in py-spy profiles of the hot GET path (bench/README.md).
    """

    async def get(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    get.__name__ = f"get_{name}"
    return get
