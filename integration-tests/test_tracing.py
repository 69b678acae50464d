"""Observability end to end: a stack of its own exporting to a real OTLP/HTTP receiver in this test.

One create (with the login before it, under the same client-side trace: auth-service is not on the
create path) yields spans of all five services under one trace id, in the right parent order; the
request id is in the log lines of every service that handled the create; /metrics answers on every
service's own port, and on the gateway's METRICS_PORT only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from pm_e2e import api

from devstack.process import free_port
from devstack.stack import Ports, Stack

SERVICES = ("api-gateway", "auth-service", "patient-service", "billing-service", "analytics-service")
pytestmark = pytest.mark.timeout(420)


@dataclass(frozen=True)
class Span:
    """One received span, as much as the checks need."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP (protobuf) trace receiver on 127.0.0.1: POST /v1/traces."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The base URL services are given as OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def trace(self, trace_id: str) -> list[Span]:
        """The spans received so far of one trace."""
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=attributes.get("service.name", ""),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={a.key: a.value.string_value or a.value.int_value for a in span.attributes},
                        )
                    )
        with self.server.lock:
            self.server.spans.extend(received)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@dataclass(frozen=True)
class TracedStack:
    """The stack, its receiver and the gateway's metrics port."""

    stack: Stack
    receiver: Receiver
    metrics_port: int

    @property
    def gateway(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.stack.ports.gateway}"


@pytest.fixture
def _stack_running() -> None:
    """This module runs its own stack: the suite's shared one is not needed (overrides conftest's)."""


@pytest.fixture(scope="module")
def traced() -> Iterator[TracedStack]:
    """PostgreSQL, Kafka and the five services, exporting every span to a receiver in this process."""
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    metrics_port = free_port()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "METRICS_PORT": str(metrics_port),
    }
    state_dir = Path(tempfile.mkdtemp(prefix="pm-tracing-stack-"))
    stack = Stack(state_dir=state_dir, ports=Ports.free(), environment="test", fast_postgres=True)
    try:
        with mock.patch.dict(os.environ, env):  # the stack hands its environment to every service
            stack.start_postgres()
            stack.start_kafka()
            stack.start_services()
        yield TracedStack(stack=stack, receiver=receiver, metrics_port=metrics_port)
    finally:
        stack.down()
        stack.clean()
        shutil.rmtree(state_dir, ignore_errors=True)
        receiver.shutdown()


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def _one(spans: list[Span], service: str, kind: int, what: str) -> Span:
    found = [s for s in spans if s.service == service and s.kind == kind]
    assert found, f"no {what} span of {service}: {sorted({(s.service, s.name) for s in spans})}"
    return found[0]


def _statement(span: Span) -> str:
    """The SQL of a database client span (the attribute's name depends on the semantic-conventions mode)."""
    return str(span.attributes.get("db.statement") or span.attributes.get("db.query.text") or "")


def test_one_create_is_one_trace_across_the_five_services(traced: TracedStack) -> None:
    trace_id = secrets.token_hex(16)
    request_id = f"trace-test-{secrets.token_hex(6)}"
    # The client's own span: login and create both continue it (as a browser's trace would).
    client_span = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    with httpx.Client(base_url=traced.gateway, timeout=15.0) as client:
        login = client.post(
            "/auth/login", json={"email": "testuser@test.com", "password": "password123"}, headers=client_span
        )
        assert login.status_code == 200, login.text
        headers = {**client_span, "authorization": f"Bearer {login.json()['token']}", "x-request-id": request_id}
        created = client.post("/api/patients", json=api.patient_body(), headers=headers)
        assert created.status_code in (200, 201), created.text

    deadline = time.monotonic() + 60
    wanted = {"billing-service": SpanProto.SPAN_KIND_SERVER, "analytics-service": SpanProto.SPAN_KIND_CONSUMER}
    spans: list[Span] = []
    while time.monotonic() < deadline:
        spans = traced.receiver.trace(trace_id)
        services = {s.service for s in spans}
        if set(SERVICES) <= services and all(
            any(s.service == n and s.kind == k for s in spans) for n, k in wanted.items()
        ):
            break
        time.sleep(0.5)
    assert {s.service for s in spans} >= set(SERVICES), sorted({(s.service, s.name) for s in spans})

    by_id = {s.span_id: s for s in spans}
    # gateway server span -> gateway client span (aiohttp, traceparent) -> patient-service request span
    patient_server = next(
        s for s in spans if s.service == "patient-service" and s.kind == SpanProto.SPAN_KIND_SERVER and "POST" in s.name
    )
    assert patient_server.name == "POST /patients"
    gateway_client = by_id[patient_server.parent_id]
    assert (gateway_client.service, gateway_client.kind) == ("api-gateway", SpanProto.SPAN_KIND_CLIENT)
    gateway_server = by_id[gateway_client.parent_id]
    assert (gateway_server.service, gateway_server.kind) == ("api-gateway", SpanProto.SPAN_KIND_SERVER)
    # -> the SQL of the request (a create is one statement: the patient's INSERT, then its outbox rows' and
    # audit record's, in a WITH)
    sql = [s for s in spans if s.service == "patient-service" and s.parent_id == patient_server.span_id]
    assert any(s.kind == SpanProto.SPAN_KIND_CLIENT and "INSERT INTO patients" in _statement(s) for s in sql), sql
    # -> (through the outbox row) the Kafka publish and the billing call
    producer = _one(spans, "patient-service", SpanProto.SPAN_KIND_PRODUCER, "Kafka send")
    assert patient_server in _ancestors(producer, by_id)
    billing_server = _one(spans, "billing-service", SpanProto.SPAN_KIND_SERVER, "gRPC server")
    grpc_client = by_id[billing_server.parent_id]
    assert (grpc_client.service, grpc_client.kind) == ("patient-service", SpanProto.SPAN_KIND_CLIENT)
    assert patient_server in _ancestors(grpc_client, by_id)
    assert any(s.service == "billing-service" and s.parent_id == billing_server.span_id for s in spans)  # its SQL
    # -> analytics consumes the record in the same trace, under the producer's span
    consumers = [s for s in spans if s.service == "analytics-service" and s.kind == SpanProto.SPAN_KIND_CONSUMER]
    assert consumers
    assert all(producer in _ancestors(s, by_id) for s in consumers), consumers
    # auth-service: the login, under the same client span
    assert any(s.service == "auth-service" and s.kind == SpanProto.SPAN_KIND_SERVER for s in spans)

    # One grep of the request id finds the create in the logs of every service that handled it.
    for service in ("api-gateway", "patient-service", "billing-service", "analytics-service"):
        lines = _log_lines(traced.stack, service, request_id)
        assert lines, f"{service}: no log line with request_id {request_id}"
        assert all(trace_id in line.get("trace_id", "") for line in lines), (service, lines)


def _log_lines(stack: Stack, service: str, request_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        text = (stack.log_dir / f"{service}.log").read_text(errors="replace")
        lines = [json.loads(line) for line in text.splitlines() if request_id in line and line.startswith("{")]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def test_metrics_on_every_service_and_the_gateway_port_only(traced: TracedStack) -> None:
    ports = traced.stack.ports
    with httpx.Client(timeout=10.0) as client:
        assert client.get(f"{traced.gateway}/metrics").status_code == 404  # not through the public routes
        gateway = client.get(f"http://127.0.0.1:{traced.metrics_port}/metrics")
        assert gateway.status_code == 200
        assert 'http_server_request_duration_seconds_count{method="POST",route="patients"' in gateway.text
        expected = {
            ports.patient: ('route="/patients"', "outbox_pending_rows", "outbox_relay_attempts_total", "db_pool"),
            ports.billing: ('grpc_server_handled_seconds_count{grpc_code="OK"', "db_pool_connections_in_use"),
            ports.analytics: ("analytics_records_counted_total", "kafka_consumer_lag{", "db_pool"),
            ports.auth: ('auth_logins_total{outcome="success"}', 'route="/login"'),
        }
        for port, names in expected.items():
            text = client.get(f"http://127.0.0.1:{port}/metrics").text
            for name in names:
                assert name in text, (port, name)
