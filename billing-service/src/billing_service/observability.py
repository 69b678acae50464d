"""Tracing and metrics of billing-service's gRPC server: the OpenTelemetry server interceptor (the RPC's
span continues the caller's trace from the call's metadata, baggage included, so log lines carry its
request_id and trace_id) and RPCs counted by method and status code."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from prometheus_client import Histogram

from billing_service.callers import Handler, _ServerInterceptor
from pm_common.telemetry import tracing_enabled

RPC_SECONDS = Histogram(
    "grpc_server_handled_seconds",
    "gRPC calls handled (count and duration) by method and status code",
    ["grpc_method", "grpc_code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_children: dict[tuple[str, str], Any] = {}


def _observe(method: str, code: grpc.StatusCode | None, seconds: float) -> None:
    key = (method, (code or grpc.StatusCode.OK).name)
    child = _children.get(key)
    if child is None:
        child = _children.setdefault(key, RPC_SECONDS.labels(*key))
    child.observe(seconds)


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    code: grpc.StatusCode | None = context.code()  # None until the handler sets one (or aborts)
    return code


class RpcMetrics(_ServerInterceptor):
    """Times every unary call into RPC_SECONDS with the status it ended with (aborts included)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """The method's handler, wrapped when it is unary-unary (streams, like health Watch, are not timed)."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        method = handler_call_details.method
        inner: Any = handler.unary_unary

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            try:
                response = await inner(request, context)
            except BaseException:
                _observe(method, _code(context) or grpc.StatusCode.UNKNOWN, time.perf_counter() - started)
                raise
            _observe(method, _code(context), time.perf_counter() - started)
            return response

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def server_interceptors() -> list[_ServerInterceptor]:
    """What the gRPC server runs before its own caller check: the trace (unless disabled), then metrics."""
    if not tracing_enabled():
        return [RpcMetrics()]
    return [aio_server_interceptor(), RpcMetrics()]  # type: ignore[no-untyped-call]
