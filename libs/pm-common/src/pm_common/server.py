"""Run an ASGI app under uvicorn with the service's settings (the one entry point for every launcher)."""

from __future__ import annotations

import uvicorn

from pm_common.logging import logging_config
from pm_common.settings import ServiceSettings


def serve(app_factory: str, *, settings: ServiceSettings, service: str) -> None:
    """Serve `module:create_app` (a factory) with uvloop and httptools; workers > 1 forks that many processes."""
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=logging_config(service, settings.log_level),
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
