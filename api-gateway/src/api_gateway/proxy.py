"""The proxy: a thin raw-ASGI layer in front of the FastAPI app (which serves /health, /ready, 404s).

Per request: match the route table on the raw path, verify the JWT where the route needs one, then
stream the request body to the upstream and the response body back through one pooled aiohttp
session. Upstream trouble becomes 503 (down or unreachable), 504 (too slow) or 502 (broken answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yarl import URL

from api_gateway.headers import client_response_headers, request_id_from, upstream_request_headers
from api_gateway.routes import Route, RouteTable, has_dot_segment
from api_gateway.tokens import Identity, TokenVerifier, Unauthorized
from api_gateway.upstreams import Upstreams
from pm_common.http import MAX_BODY_BYTES, send_json

log = logging.getLogger(__name__)
access_log = logging.getLogger("access")

# Responses up to this size are read whole before answering, so a late failure is still a clean 504.
_BUFFER_LIMIT = 64 * 1024
# Not an HTTP status sent to anyone: recorded in the access log when the client went away (as nginx does).
CLIENT_CLOSED = 499


class _RequestBody:
    """Counts the streamed request body; remembers why it stopped early."""

    __slots__ = ("client_gone", "received", "too_large")

    def __init__(self) -> None:
        self.received = 0
        self.too_large = False
        self.client_gone = False


class _StopBody(Exception):
    """Ends the upload to the upstream (body too large or client gone)."""


class Gateway:
    """ASGI middleware: proxies the routes of the table, passes everything else to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: RouteTable,
        verifier: TokenVerifier,
        upstreams: Upstreams,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.routes = routes
        self.verifier = verifier
        self.upstreams = upstreams
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope["headers"])
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        matched = self.routes.match(raw_path)
        if matched is None:
            await self._local(scope, receive, send, request_id)  # the app's access log records it
            return
        route, target = matched
        status = 500
        try:
            status = await self._handle(scope, receive, send, route, target, request_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route.name,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": request_id,
                    "upstream": route.upstream,
                },
            )

    async def _local(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """The gateway's own endpoints (and 404s), with X-Request-ID added to the answer."""
        request_id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), request_id_header]}
            await send(message)

        # The same id in the app's access line as in the answer, also when the gateway made it up.
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
        await self.app({**scope, "headers": [*headers, request_id_header]}, receive, send_with_id)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, route: Route, target: bytes, request_id: str
    ) -> int:
        if has_dot_segment(scope["path"]):
            return await _send_json(send, 404, {"message": "Not Found"}, request_id)
        if route.methods is not None and scope["method"] not in route.methods:
            allow = ", ".join(sorted(route.methods)).encode()
            return await _send_json(send, 405, {"message": "Method Not Allowed"}, request_id, [(b"allow", allow)])
        identity: Identity | None = None
        if route.jwt_required:
            try:
                identity = self.verifier.verify(_header(scope["headers"], b"authorization"))
            except Unauthorized as exc:
                extra = [(b"www-authenticate", exc.challenge.encode())]
                return await _send_json(send, 401, {"message": exc.message}, request_id, extra)
        return await self._forward(scope, receive, send, route, target, request_id, identity)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        target: bytes,
        request_id: str,
        identity: Identity | None,
    ) -> int:
        headers = scope["headers"]
        content_length = _header(headers, b"content-length")
        if content_length is not None:
            if not content_length.isdigit():
                return await _send_json(send, 400, {"message": "Invalid Content-Length"}, request_id)
            if int(content_length) > self.max_body_bytes:
                return await _send_json(send, 413, {"message": "Request body too large"}, request_id)
        body = _RequestBody()
        data: bytes | AsyncIterator[bytes] | None = None
        if (content_length not in (None, "0")) or _header(headers, b"transfer-encoding") is not None:
            message = await receive()
            if message["type"] == "http.disconnect":
                return CLIENT_CLOSED
            first: bytes = message.get("body", b"")
            body.received = len(first)
            if body.received > self.max_body_bytes:
                return await _send_json(send, 413, {"message": "Request body too large"}, request_id)
            # A body that came in one piece (the usual JSON request) goes as bytes, the rest streams.
            data = self._stream_body(first, receive, body) if message.get("more_body", False) else first

        query: bytes = scope["query_string"]
        url = URL(route.base_url + (target + b"?" + query if query else target).decode("latin-1"), encoded=True)
        client = scope.get("client")
        upstream_headers = upstream_request_headers(
            headers,
            identity=identity,
            request_id=request_id,
            client_host=client[0] if client else None,
            scheme=scope["scheme"],
        )
        session = self.upstreams.session
        try:
            response = await session.request(
                scope["method"],
                url,
                headers=upstream_headers,
                data=data,
                allow_redirects=False,
                timeout=route.timeout,
            )
        except Exception as exc:
            return await self._upstream_failed(exc, send, route, request_id, body)

        try:
            response_headers = client_response_headers(
                response.raw_headers,
                request_id=request_id.encode(),
                upstream_origin=route.base_url.encode(),
                upstream_prefix=route.upstream_prefix,
                public_prefix=route.prefix,
            )
            length = response.content_length
            if length is not None and length <= _BUFFER_LIMIT:
                try:
                    payload = await response.read()
                except Exception as exc:
                    return await self._upstream_failed(exc, send, route, request_id, body)
                await send({"type": "http.response.start", "status": response.status, "headers": response_headers})
                await send({"type": "http.response.body", "body": payload})
                return response.status
            await send({"type": "http.response.start", "status": response.status, "headers": response_headers})
            try:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Too late for a status: return without finishing the response, so the server closes the
                # connection and the client sees a truncated body rather than a complete-looking one.
                log.warning(
                    "upstream response broken off",
                    extra={"upstream": route.upstream, "error": type(exc).__name__, "request_id": request_id},
                )
                response.close()
                return response.status
            await send({"type": "http.response.body", "body": b""})
            return response.status
        finally:
            response.release()

    async def _stream_body(self, first: bytes, receive: Receive, body: _RequestBody) -> AsyncIterator[bytes]:
        """The request body chunk by chunk; stops the upload past the size limit or when the client leaves."""
        if first:
            yield first
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.client_gone = True
                raise _StopBody
            chunk: bytes = message.get("body", b"")
            body.received += len(chunk)
            if body.received > self.max_body_bytes:
                body.too_large = True
                raise _StopBody
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def _upstream_failed(
        self, exc: Exception, send: Send, route: Route, request_id: str, body: _RequestBody
    ) -> int:
        """Answer for a call that failed before the response started; never a bare 500."""
        if body.too_large:
            return await _send_json(send, 413, {"message": "Request body too large"}, request_id)
        if body.client_gone:
            return CLIENT_CLOSED
        status, message = _classify(exc, route.upstream)
        if status == 0:
            raise exc
        log.warning(
            "upstream call failed",
            extra={"upstream": route.upstream, "error": type(exc).__name__, "status": status, "request_id": request_id},
        )
        return await _send_json(send, status, {"message": message}, request_id)


def _classify(exc: Exception, upstream: str) -> tuple[int, str]:
    """(status, message) for an upstream failure; status 0 for errors that are not the upstream's."""
    # Order matters: ConnectionTimeoutError is also a TimeoutError.
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        # Nobody accepted the connection in time, or refused it: the upstream is down (or we are saturated).
        return 503, f"{upstream} unavailable"
    if isinstance(exc, TimeoutError):
        return 504, f"{upstream} did not answer in time"
    if isinstance(exc, aiohttp.ClientError):
        return 502, f"{upstream} gave an invalid response"
    if isinstance(exc, ValueError):
        # aiohttp refuses header values with control characters (header injection).
        return 400, "Invalid request headers"
    return 0, ""


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_json(
    send: Send, status: int, body: Any, request_id: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> int:
    await send_json(send, status, body, [(b"x-request-id", request_id.encode()), *(extra_headers or [])])
    return status
