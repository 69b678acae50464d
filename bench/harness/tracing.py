"""What tracing costs: GET by id, creates and the event lag with the services restarted three times,
instrumentation absent (OTEL_SDK_DISABLED=true), tracing off (no endpoint: non-recording spans) and on
(every trace sampled, exported over OTLP/HTTP to a receiver in this process); throughput as a ratio of
the first. Needs the launcher's own stack (it restarts the services); restores their environment after.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

from devstack.stack import Stack

from .context import BenchContext
from .event_lag import event_lag
from .progress import log
from .scenarios import creates, get_by_id

MODES: dict[str, dict[str, str]] = {
    "uninstrumented": {"OTEL_SDK_DISABLED": "true"},
    "off": {},
    "on": {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
}
OTEL_PREFIX = "OTEL_"


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and counts their bytes (decoding them is the collector's cost, not ours)."""

    received = 0

    def do_POST(self) -> None:
        _Sink.received += len(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def _receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _restart(stack: Stack, env: dict[str, str]) -> None:
    """Every service again, with `env` as its OTEL_* environment (the stack passes its own environment on)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OTEL_PREFIX)}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        for service in reversed(stack.available()):
            stack.stop_service(service)
        stack.start_services()


def tracing_cost(context: BenchContext, ids_file: Path, lag_rate: int, lag_seconds: int) -> dict[str, Any]:
    """Per mode: GET c32 through the gateway, creates c32, the event lag; ratios to `uninstrumented`."""
    stack = context.processes.stack
    if stack is None:
        log("tracing: skipped (needs the launcher's stack: it restarts the services)")
        return {"skipped": "not the launcher's stack"}
    original = {k: v for k, v in os.environ.items() if k.startswith(OTEL_PREFIX)}
    figures: dict[str, Any] = {}
    try:
        with _receiver() as endpoint:
            for mode, env in MODES.items():
                log(f"tracing {mode}: restarting the services")
                _restart(stack, {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint} if mode == "on" else env)
                gateway, _, _ = get_by_id(context, ids_file)
                figures[mode] = {
                    "get_gateway_c32": gateway,
                    "create_c32": creates(context),
                    "event_lag": event_lag(context, lag_rate, lag_seconds),
                }
            figures["exported_bytes"] = _Sink.received
    finally:
        _restart(stack, original)
    base = figures["uninstrumented"]
    for mode in ("off", "on"):
        figures[f"{mode}_ratio"] = {
            load: round(figures[mode][load]["rps"] / base[load]["rps"], 3) if base[load]["rps"] else None
            for load in ("get_gateway_c32", "create_c32")
        }
    log(f"tracing: off {figures['off_ratio']}, on {figures['on_ratio']} (of uninstrumented)")
    return figures
