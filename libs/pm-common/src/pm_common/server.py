"""The one entry point of every service: settings, logging, prestart, then uvicorn."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

import uvicorn

from pm_common.logging import configure_logging, logging_config
from pm_common.settings import ServiceSettings, load_settings

S = TypeVar("S", bound=ServiceSettings)


def run_service(
    *,
    name: str,
    settings_type: type[S],
    app_factory: str,
    prestart: Callable[[S], None] | None = None,
    http: str = "httptools",
) -> None:
    """Load the settings (or stop, naming each bad one), log as JSON, run `prestart` once, then serve.

    `prestart` runs before uvicorn forks its workers (database wait, migrations, demo data). `http` is
    uvicorn's HTTP protocol: "httptools", or a `module:Class` of one (the gateway's times out slow headers).
    """
    settings = load_settings(settings_type, name)
    configure_logging(name, settings.log_level)
    if prestart is not None:
        prestart(settings)
    serve(app_factory, settings=settings, service=name, http=http)


def serve(app_factory: str, *, settings: ServiceSettings, service: str, http: str = "httptools") -> None:
    """Serve `module:create_app` (a factory) with uvloop; workers > 1 forks that many processes."""
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=http,
        access_log=False,
        log_config=logging_config(service, settings.log_level),
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


# Objects allocated (minus freed) before a young collection runs; CPython's default is 700.
GC_GEN0_THRESHOLD = 10_000
_gc_tuned = False


def tune_gc(*, gen0_threshold: int = GC_GEN0_THRESHOLD) -> None:
    """Once per process, when the app has started: move everything alive into the permanent generation
    and make young collections rarer.

    Measured on patient-service under load (bench/README.md): with CPython's defaults the ~130,000
    objects that imports leave behind were traversed by every full collection, about 20 full collections
    per 10 s of load at ~80 ms each (a stalled event loop: p99 ~110 ms). Frozen, they are never
    traversed again; what a request allocates is freed by reference counting long before 10,000
    allocations accumulate, so a young collection then rarely runs at all.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
