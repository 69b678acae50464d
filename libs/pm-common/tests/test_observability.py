"""The kit's observability: /metrics by route template, the metrics port, request context in log lines."""

import asyncio
import json
import logging
import socket

import httpx
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI

from pm_common.app import build_app
from pm_common.logging import ContextFilter
from pm_common.metrics import metrics_server
from pm_common.settings import ServiceSettings
from pm_common.telemetry import continued, trace_context_text

router = APIRouter()
seen: dict[str, str | None] = {}


@router.get("/things/{thing_id}")
async def thing(thing_id: int) -> dict[str, int]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "x", None, None)
    ContextFilter().filter(record)
    seen["request_id"] = getattr(record, "request_id", None)
    seen["trace_id"] = getattr(record, "trace_id", None)
    seen["trace_context"] = trace_context_text()
    return {"id": thing_id}


def _app(**options: object) -> FastAPI:
    settings = ServiceSettings(port=4999, host="127.0.0.1")
    return build_app(settings=settings, title="kit-test", description="", routers=[router], **options)  # type: ignore[arg-type]


async def test_metrics_by_route_template_and_request_context_in_logs() -> None:
    app = _app()
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        # Tracing off (no exporter): the caller's trace context is made current, no span of our own.
        caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        traceparent = f"00-{caller_trace}-00f067aa0ba902b7-01"
        headers = {"x-request-id": "req-1", "traceparent": traceparent}
        assert (await client.get("/things/7", headers=headers)).status_code == 200
        assert seen["request_id"] == "req-1"
        trace_id = seen["trace_id"]
        assert trace_id == caller_trace
        # The outbox's stored context: traceparent of this trace and the request id as baggage.
        stored = json.loads(seen["trace_context"] or "{}")
        assert trace_id in stored["traceparent"]
        assert "request_id=req-1" in stored["baggage"]
        with continued(seen["trace_context"]):
            record = logging.LogRecord("t", logging.INFO, __file__, 1, "x", None, None)
            ContextFilter().filter(record)
            assert (getattr(record, "request_id", None), getattr(record, "trace_id", None)) == ("req-1", trace_id)
        await client.get("/things/8")  # a new id is made when none (or an insane one) is sent
        assert seen["request_id"] not in (None, "req-1")
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    line = 'http_server_request_duration_seconds_count{method="GET",route="/things/{thing_id}",status="200"}'
    assert line in metrics.text
    assert "/things/7" not in metrics.text


async def test_metrics_port_instead_of_the_app_route() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = _app(metrics_port=port)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        assert (await client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as direct:
            served = await direct.get(f"http://127.0.0.1:{port}/metrics")
            other = await direct.get(f"http://127.0.0.1:{port}/other")
    assert served.status_code == 200
    assert "http_server_request_duration_seconds" in served.text
    assert other.status_code == 404


async def test_a_taken_metrics_port_is_skipped() -> None:
    async with metrics_server("127.0.0.1", 0) as first:
        assert first is not None
        port = first.sockets[0].getsockname()[1]
        async with metrics_server("127.0.0.1", port) as second:
            assert second is None
    await asyncio.sleep(0)
