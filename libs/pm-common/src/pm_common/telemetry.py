"""Tracing (OpenTelemetry) and the request context of log lines, set up once per process by the kit.

Configured only by the standard `OTEL_*` variables:
- `OTEL_SDK_DISABLED=true`: nothing at all (no middleware, no instrumentation): the baseline.
- no `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or `OTEL_TRACES_EXPORTER=none`):
  the instrumentations run against a sampler that records nothing (non-recording spans, no exporter),
  so trace ids still exist for log lines and travel on to the next service.
- an endpoint: OTLP/HTTP (protobuf) export in batches (`OTEL_BSP_*`), sampled by `OTEL_TRACES_SAMPLER`
  (default parentbased_always_on); `OTEL_SERVICE_NAME` defaults to the service's name.

The request id travels beside the trace context as W3C baggage (`request_id`), so the Kafka record
headers, the gRPC metadata and the outbox row's trace context carry it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import orjson
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from starlette.types import ASGIApp, Receive, Scope, Send

from pm_common.http import ensure_request_id

log = logging.getLogger(__name__)
T = TypeVar("T")

REQUEST_ID_BAGGAGE = "request_id"
# Set while a request, an RPC or a Kafka batch is handled; pm_common.logging's filter reads them.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)  # a batch of several traces
# Paths never traced (probes and scrapes): regular expressions searched in the URL.
EXCLUDED_URLS = "/health,/ready,/metrics"

_enabled: bool | None = None


def tracing_enabled() -> bool:
    """False when OTEL_SDK_DISABLED is true (then nothing is instrumented)."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def exporting() -> bool:
    """True when an OTLP endpoint is configured (and the exporter is not `none`)."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(endpoint and endpoint.strip()) and os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip() != "none"


def setup_tracing(service: str) -> bool:
    """Install this process's tracer provider once; whether tracing (exporting or not) is on."""
    global _enabled
    if _enabled is not None:
        return _enabled
    _enabled = tracing_enabled()
    if not _enabled:
        return False
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    resource = Resource.create(attributes)
    if exporting():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER(_ARG)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing on", extra={"exporter": "otlp/http"})
    else:
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    trace.set_tracer_provider(provider)
    return True


def instrument_app(app: Any, service: str, *, around: Sequence[Callable[[ASGIApp], ASGIApp]] = ()) -> None:
    """Wrap the app's whole middleware stack (also what is added later, like the gateway's proxy) in the
    server span, the request context and `around` (the HTTP metrics)."""
    build = app.build_middleware_stack
    traced = setup_tracing(service)

    def build_with_telemetry() -> ASGIApp:
        stack: ASGIApp = build()
        for wrap in reversed(around):
            stack = wrap(stack)
        if not traced:
            return stack
        if not exporting():  # the instrumentation's per-request attribute work is wasted when nothing records
            return ContextOnlyMiddleware(RequestContextMiddleware(stack))
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        return OpenTelemetryMiddleware(
            RequestContextMiddleware(stack), excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
        )

    app.build_middleware_stack = build_with_telemetry


class ContextOnlyMiddleware:
    """Tracing off (no exporter): no span of our own, only the caller's trace context (traceparent,
    baggage) made current, so that log lines, outbox rows and outgoing calls carry the caller's trace
    id. Parsing two headers is all it costs; a request without them has no trace id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}
        if not carrier:
            await self.app(scope, receive, send)
            return
        attached = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(attached)


_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})


class RequestContextMiddleware:
    """Resolves the request id (a sane X-Request-ID, else a new one, written back into the headers so the
    access log and the gateway use the same) and makes it the log context and the baggage."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)
        token = request_id_var.set(request_id)
        attached = context.attach(baggage.set_baggage(REQUEST_ID_BAGGAGE, request_id))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(attached)
            request_id_var.reset(token)


def current_trace_id() -> str | None:
    """The trace id of the log line being written (hex), or None outside any trace."""
    override = trace_id_var.get()
    if override is not None:
        return override
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def current_request_id() -> str | None:
    """The request id of the log line being written: the handler's, else the one in the baggage."""
    request_id = request_id_var.get()
    if request_id is not None:
        return request_id
    value = baggage.get_baggage(REQUEST_ID_BAGGAGE)
    return value if isinstance(value, str) else None


def trace_context_text() -> str | None:
    """The current W3C trace context (traceparent, tracestate, baggage) as JSON, for an outbox row."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return orjson.dumps(carrier).decode() if carrier else None


def _carrier(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@contextmanager
def continued(trace_context: str | None) -> Iterator[None]:
    """Run the block in the trace (and with the baggage) an outbox row stored; as is without one."""
    carrier = _carrier(trace_context)
    if not carrier:
        yield
        return
    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


async def continuing(trace_context: str | None, work: Awaitable[T]) -> T:
    """Await `work` inside the trace an outbox row stored (a delivery of the row continues it)."""
    with continued(trace_context):
        return await work


def instrument_asyncpg() -> None:
    """Spans for every asyncpg round trip (extra `db`); once per process, only when exporting (SQL spans
    continue nothing downstream, so without an exporter they would be pure cost)."""
    if not tracing_enabled() or not exporting():
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def instrument_aiokafka() -> None:
    """Producer spans that put the trace context into each record's headers, consumer spans continuing it
    (extra `kafka`); once per process, not when tracing is disabled."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    instrumentor = AIOKafkaInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def _headers_carrier(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    return {key: value.decode("latin-1") for key, value in headers or () if isinstance(value, bytes)}


@contextmanager
def consuming(name: str, headers_of_records: Sequence[Iterable[tuple[str, bytes]] | None]) -> Iterator[None]:
    """Handling a batch of Kafka records: a consumer span continuing the records' trace (one trace) or
    linked to each (several), with their request ids and trace ids as the log context."""
    contexts = [propagate.extract(_headers_carrier(headers)) for headers in headers_of_records]
    span_contexts = [trace.get_current_span(ctx).get_span_context() for ctx in contexts]
    trace_ids = sorted({format(sc.trace_id, "032x") for sc in span_contexts if sc.is_valid})
    request_ids = sorted({str(v) for ctx in contexts if (v := baggage.get_baggage(REQUEST_ID_BAGGAGE, ctx))})
    parent = contexts[0] if len(trace_ids) == 1 else None
    links = [trace.Link(sc) for sc in span_contexts if sc.is_valid] if parent is None else []
    tracer = trace.get_tracer(__name__)
    request_token = request_id_var.set(",".join(request_ids[:50]) or None)
    trace_token = trace_id_var.set(",".join(trace_ids[:50]) if len(trace_ids) > 1 else None)
    try:
        with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.CONSUMER, links=links) as span:
            if span.is_recording():
                span.set_attribute("messaging.batch.message_count", len(headers_of_records))
            yield
    finally:
        trace_id_var.reset(trace_token)
        request_id_var.reset(request_token)
