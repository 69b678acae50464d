"""The proxy: a thin raw-ASGI layer in front of the FastAPI app (which serves /health, /ready, 404s).

Per request: match the route table on the raw path, verify the JWT where the route needs one, pick one
of the upstream's instances (api_gateway.balancer), then stream the request body to it and the response
body back through one pooled aiohttp session. A failed attempt goes to another instance when that is safe
(never sent, or idempotent with a body that can be sent again; README.md). Upstream trouble becomes 503
(down or unreachable), 504 (too slow) or 502 (broken answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import aiohttp
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yarl import URL

from api_gateway.balancer import Instance
from api_gateway.headers import (
    client_response_headers,
    request_header_problem,
    request_id_from,
    upstream_request_headers,
)
from api_gateway.protocol import DEFAULT_HEAD_TIMEOUT_SECONDS, HEAD_TIMEOUT_STATE_KEY
from api_gateway.refusals import RefusalRecorder, patient_id_in
from api_gateway.routes import NO_STORE, SECURITY_HEADERS, Route, RouteTable, has_dot_segment
from api_gateway.upstreams import Upstreams
from pm_common.access import PERMISSIONS, allowed
from pm_common.auth import FORBIDDEN_MESSAGE
from pm_common.http import MAX_BODY_BYTES, bearer_challenge, header, header_bytes, send_json
from pm_common.metrics import ROUTE_SCOPE_KEY
from pm_common.tokens import Identity, TokenVerifier, Unauthenticated

log = logging.getLogger(__name__)
access_log = logging.getLogger("access")

# Responses up to this size are read whole before answering, so a late failure is still a clean 504.
_BUFFER_LIMIT = 64 * 1024
# Not an HTTP status sent to anyone: recorded in the access log when the client went away (as nginx does).
CLIENT_CLOSED = 499
# On every answer the gateway makes itself (errors, /health, /ready, 404): never cached.
_OWN_ANSWER_HEADERS = (*SECURITY_HEADERS, NO_STORE)
_CLOSE = (b"connection", b"close")
# What a listed origin may do (CORS_ALLOWED_ORIGINS); bearer tokens, no cookies: no credentials mode.
_CORS_PREFLIGHT_HEADERS = (
    (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, PATCH, DELETE"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, X-Request-ID"),
    (b"access-control-max-age", b"600"),
)
_CORS_EXPOSE = (b"access-control-expose-headers", b"X-Request-ID")
# Failures before any byte of the request went out: the instance refused (or did not accept) the connection.
_NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Failures after the request (maybe partly) went out and before a response status: retried only when idempotent.
_MID_FLIGHT = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientConnectionResetError)
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class _RequestBody:
    """Counts the streamed request body; remembers why it stopped early, and keeps a small one for a retry."""

    __slots__ = ("client_gone", "complete", "deadline", "kept", "received", "started", "timed_out", "too_large")

    def __init__(self, deadline: float) -> None:
        self.received = 0
        self.too_large = False
        self.client_gone = False
        self.timed_out = False
        self.deadline = deadline  # loop time by which the whole body must have arrived
        self.started = False  # the stream was read from (an upstream took some of it)
        self.complete = False  # the client's last chunk arrived
        self.kept: list[bytes] | None = None  # the chunks so far, while a retry may need them


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
        body_timeout_seconds: float = 20.0,
        head_timeout_seconds: float = DEFAULT_HEAD_TIMEOUT_SECONDS,
        cors_origins: Collection[bytes] = (),
        refusals: RefusalRecorder | None = None,
    ) -> None:
        self.app = app
        self.refusals = refusals
        self.routes = routes
        self.verifier = verifier
        self.upstreams = upstreams
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.head_timeout_seconds = head_timeout_seconds
        self.cors_origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and isinstance(scope.get("state"), dict):
                # uvicorn shares the lifespan state with its connections: api_gateway.protocol reads this.
                scope["state"][HEAD_TIMEOUT_STATE_KEY] = self.head_timeout_seconds
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = request_id_from(headers)
        if self.cors_origins:
            origin = header_bytes(headers, b"origin")
            if origin is not None and origin in self.cors_origins:
                if scope["method"] == "OPTIONS" and header_bytes(headers, b"access-control-request-method"):
                    await _send_json(send, 204, None, request_id, [*_cors(origin), *_CORS_PREFLIGHT_HEADERS])
                    return
                send = _adding_headers(send, [*_cors(origin), _CORS_EXPOSE])
        problem = request_header_problem(headers)  # before anything else reads the headers
        if problem is not None:
            status, message = problem
            await _send_json(send, status, {"message": message}, request_id, [_CLOSE])
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        matched = self.routes.match(raw_path)
        if matched is None:
            await self._local(scope, receive, send, request_id)  # the app's access log records it
            return
        route, target = matched
        scope[ROUTE_SCOPE_KEY] = route.name  # the route label of the request metrics
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
        """The gateway's own endpoints (and 404s), with X-Request-ID and the security headers added.

        None of them takes a body: the app is given an empty one, and a connection that carries a
        body is closed after the answer, so a client trickling a body holds nothing for long.
        """
        request_id_header = (b"x-request-id", request_id.encode())
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
        added = [request_id_header, *_OWN_ANSWER_HEADERS]
        if _has_body(headers):
            added.append(_CLOSE)
            receive = _empty_body(receive)
        # The same id in the app's access line as in the answer, also when the gateway made it up.
        await self.app({**scope, "headers": [*headers, request_id_header]}, receive, _adding_headers(send, added))

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, route: Route, target: bytes, request_id: str
    ) -> int:
        path: str = scope["path"]
        if has_dot_segment(path) or (route.private_paths and route.is_private(path)):
            return await _send_json(send, 404, {"message": "Not Found"}, request_id)
        method: str = scope["method"]
        if route.methods is not None and method not in route.methods:
            allow = ", ".join(sorted(route.methods)).encode()
            return await _send_json(send, 405, {"message": "Method Not Allowed"}, request_id, [(b"allow", allow)])
        identity: Identity | None = None
        if route.jwt_required:
            try:
                identity = self.verifier.verify(header(scope["headers"], b"authorization"))
            except Unauthenticated as exc:
                self._refused(route, scope, 401, None, request_id)
                extra = [(b"www-authenticate", bearer_challenge(exc.error).encode())]
                return await _send_json(send, 401, {"message": exc.message}, request_id, extra)
            if route.permissions is not None:
                # A method the table lacks goes on (the service answers 405), unless the role is unknown.
                permission = route.permissions.get(method)
                if not (identity.role in PERMISSIONS if permission is None else allowed(identity.role, permission)):
                    self._refused(route, scope, 403, identity, request_id)
                    return await _send_json(send, 403, {"message": FORBIDDEN_MESSAGE}, request_id)
        return await self._forward(scope, receive, send, route, target, request_id, identity)

    def _refused(self, route: Route, scope: Scope, status: int, identity: Identity | None, request_id: str) -> None:
        if route.audited and self.refusals is not None:
            patient_id = patient_id_in(scope["path"])
            self.refusals.record(scope, status=status, identity=identity, request_id=request_id, patient_id=patient_id)

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
        content_length = header(headers, b"content-length")
        if content_length is not None:
            if not content_length.isdigit():
                return await _send_json(send, 400, {"message": "Invalid Content-Length"}, request_id)
            if int(content_length) > self.max_body_bytes:
                return await _send_json(send, 413, {"message": "Request body too large"}, request_id)
        body = _RequestBody(0.0)
        data: bytes | AsyncIterator[bytes] | None = None
        first = b""
        if (content_length not in (None, "0")) or header(headers, b"transfer-encoding") is not None:
            body.deadline = asyncio.get_running_loop().time() + self.body_timeout_seconds
            try:
                async with asyncio.timeout_at(body.deadline):
                    message = await receive()
            except TimeoutError:
                return await _body_timed_out(send, request_id)
            if message["type"] == "http.disconnect":
                return CLIENT_CLOSED
            first = message.get("body", b"")
            body.received = len(first)
            if body.received > self.max_body_bytes:
                return await _send_json(send, 413, {"message": "Request body too large"}, request_id)
            # A body that came in one piece (the usual JSON request) goes as bytes, the rest streams
            # (a small one is kept on the way when the request may be retried after a failure mid-flight).
            if message.get("more_body", False):
                if _idempotent(scope["method"], headers):
                    body.kept = []
                data = self._stream_body(first, receive, body)
            else:
                data = first

        query: bytes = scope["query_string"]
        path_and_query = (target + b"?" + query if query else target).decode("latin-1")
        client = scope.get("client")
        upstream_headers = upstream_request_headers(
            headers,
            identity=identity,
            request_id=request_id,
            client_host=client[0] if client else None,
            scheme=scope["scheme"],
        )
        session = self.upstreams.session
        method: str = scope["method"]
        balancer = route.balancer
        instance = balancer.pick()
        tried: tuple[Instance, ...] = ()
        failure: Exception | None = None
        while True:
            try:
                response = await session.request(
                    method,
                    URL(instance.url + path_and_query, encoded=True),
                    headers=upstream_headers,
                    data=data,
                    allow_redirects=False,
                    timeout=route.timeout,
                )
                break
            except Exception as exc:
                if isinstance(exc, _NEVER_SENT):
                    balancer.failed(instance)
                if failure is None or isinstance(failure, _NEVER_SENT):
                    failure = exc  # a failure mid-flight decides the answer over refused connections (503)
                tried = (*tried, instance)
                replayable, replay = False, None
                if len(tried) < balancer.attempts and _may_retry(exc, method, headers, body):
                    replayable, replay = self._replay(data, first, receive, body)
                following = balancer.another(tried) if replayable else None
                if following is None:
                    return await self._upstream_failed(failure, send, route, request_id, body)
                log.warning(
                    "upstream call failed, retrying on another instance",
                    extra={
                        "upstream": instance.name,
                        "error": type(exc).__name__,
                        "retry": following.name,
                        "request_id": request_id,
                    },
                )
                instance, data = following, replay
        if instance.failures:
            balancer.recovered(instance)

        try:
            response_headers = client_response_headers(
                response.raw_headers,
                request_id=request_id.encode(),
                upstream_origin=instance.origin,
                upstream_prefix=route.upstream_prefix,
                public_prefix=route.prefix,
                replaced=route.response_drop,
                added=route.response_headers,
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
        """The request body chunk by chunk; stops the upload past the size limit or when the client leaves.

        While `body.kept` is a list, the chunks are kept there too, until they pass the buffer size.
        """
        body.started = True
        if body.kept is not None and body.received > _BUFFER_LIMIT:
            body.kept = None
        if first:
            if body.kept is not None:
                body.kept.append(first)
            yield first
        while True:
            try:
                async with asyncio.timeout_at(body.deadline):
                    message = await receive()
            except TimeoutError:
                body.timed_out = True
                raise _StopBody from None
            if message["type"] == "http.disconnect":
                body.client_gone = True
                raise _StopBody
            chunk: bytes = message.get("body", b"")
            body.received += len(chunk)
            if body.received > self.max_body_bytes:
                body.too_large = True
                raise _StopBody
            more = message.get("more_body", False)
            kept = body.kept
            if kept is not None:
                if body.received > _BUFFER_LIMIT:
                    body.kept = None  # too large to keep: this body cannot be replayed
                else:
                    kept.append(chunk)
            body.complete = not more
            if chunk:
                yield chunk
            if not more:
                return

    def _replay(
        self, data: bytes | AsyncIterator[bytes] | None, first: bytes, receive: Receive, body: _RequestBody
    ) -> tuple[bool, bytes | AsyncIterator[bytes] | None]:
        """(True, the body for another attempt): the same bytes, a fresh stream when none of it was read yet,
        or the kept copy of a small streamed body that arrived whole; (False, None) when it cannot be replayed."""
        if data is None or isinstance(data, bytes):
            return True, data
        if not body.started:
            return True, self._stream_body(first, receive, body)
        if body.complete and body.kept is not None:
            return True, b"".join(body.kept)
        return False, None

    async def _upstream_failed(
        self, exc: Exception, send: Send, route: Route, request_id: str, body: _RequestBody
    ) -> int:
        """Answer for a call that failed before the response started; never a bare 500."""
        if body.too_large:
            return await _send_json(send, 413, {"message": "Request body too large"}, request_id)
        if body.timed_out:
            return await _body_timed_out(send, request_id)
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


def _idempotent(method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """A request that may be sent twice: an idempotent method, or a POST with an Idempotency-Key."""
    return method in _IDEMPOTENT_METHODS or (method == "POST" and header_bytes(headers, b"idempotency-key") is not None)


def _may_retry(exc: Exception, method: str, headers: list[tuple[bytes, bytes]], body: _RequestBody) -> bool:
    """Whether a failed attempt may be made again on another instance (the body aside, see _replay)."""
    if body.too_large or body.timed_out or body.client_gone:
        return False
    if isinstance(exc, _NEVER_SENT):
        return True  # nothing of the request went out: safe for every method
    return isinstance(exc, _MID_FLIGHT) and _idempotent(method, headers)


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


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    length = header_bytes(headers, b"content-length")
    return (length is not None and length != b"0") or header_bytes(headers, b"transfer-encoding") is not None


def _cors(origin: bytes) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    return (b"access-control-allow-origin", origin), (b"vary", b"Origin")


def _adding_headers(send: Send, added: Sequence[tuple[bytes, bytes]]) -> Send:
    """`send` with `added` appended to the response's headers."""

    async def adding(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *added]}
        await send(message)

    return adding


def _empty_body(receive: Receive) -> Receive:
    """A request whose body is not read: empty to the app, then the real channel (for disconnects)."""
    given = False

    async def empty(*_: Any) -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": b"", "more_body": False}

    return empty


async def _body_timed_out(send: Send, request_id: str) -> int:
    """408 and close: the body did not arrive within REQUEST_BODY_TIMEOUT_SECONDS."""
    return await _send_json(send, 408, {"message": "Request body not received in time"}, request_id, [_CLOSE])


async def _send_json(
    send: Send, status: int, body: Any, request_id: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> int:
    headers = [(b"x-request-id", request_id.encode()), *_OWN_ANSWER_HEADERS, *(extra_headers or [])]
    if body is None:  # 204: no content, no content headers
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send_json(send, status, body, headers)
    return status
