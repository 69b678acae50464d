"""HTTP pieces every FastAPI service shares: one error shape, a body size limit, an access log."""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
access_log = logging.getLogger("access")
log = logging.getLogger(__name__)

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
ErrorHandler = Callable[[Request, Any], Awaitable[JSONResponse]]


class DomainError(Exception):
    """An error a client caused or can act on; rendered as `{"message": ...}` with status_code."""

    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(DomainError):
    """The addressed resource does not exist."""

    status_code = 404


def field_messages(
    exc: RequestValidationError, overrides: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """Flatten body errors to `{field: message}`; overrides[field][error type] replaces pydantic's text."""
    result: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part != "body"]
        field = ".".join(loc) or "body"
        message = (overrides or {}).get(field, {}).get(error["type"]) or str(error["msg"])
        result.setdefault(field, message)
    return result


def install_error_handlers(
    app: FastAPI,
    *,
    field_overrides: Mapping[str, Mapping[str, str]] | None = None,
    invalid_path_message: str | None = None,
    error_handlers: Mapping[type[Exception], ErrorHandler] | None = None,
) -> None:
    """Map every error to the one shape: `{"message"}`, or `{field: message}` for invalid bodies.

    400 for bad JSON, bad bodies and bad path/query parameters; DomainError as it says; 404/405 from
    routing; `error_handlers` for what a service adds (the database's 503); anything unexpected a logged
    500 (never a stack trace or request data in the answer).
    """

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            return JSONResponse({"message": "Malformed JSON request"}, status_code=400)
        if any(tuple(e["loc"]) == ("body",) for e in errors):
            return JSONResponse({"message": "Request body must be a JSON object"}, status_code=400)
        path_errors = [e for e in errors if e["loc"] and e["loc"][0] in {"path", "query"}]
        if path_errors:
            where = path_errors[0]["loc"]
            message = invalid_path_message if where[0] == "path" and invalid_path_message else None
            return JSONResponse({"message": message or f"Invalid {where[0]} parameter '{where[-1]}'"}, status_code=400)
        return JSONResponse(field_messages(exc, field_overrides), status_code=400)

    async def on_domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.status_code)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's 404/405, and the 400 FastAPI raises itself for a body that is not UTF-8 or nests too deeply.
        message = "Malformed JSON request" if exc.status_code == 400 else str(exc.detail)
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names only the first route whose path matched; every method of the path is allowed.
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return JSONResponse({"message": message}, status_code=exc.status_code, headers=headers)

    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, on_domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    for error_type, handler in (error_handlers or {}).items():
        app.add_exception_handler(error_type, handler)
    app.add_exception_handler(Exception, unexpected_error)


def client_address(scope: Scope) -> str:
    """Who is calling: the last X-Forwarded-For hop (the one the gateway appended), else the socket peer.

    Behind the gateway that is the client's address; a caller on a service's own port can write any
    X-Forwarded-For, so this is for throttling and the audit trail, never for an access decision.
    """
    forwarded: list[str] = [v.decode("latin-1") for name, v in scope["headers"] if name == b"x-forwarded-for"]
    for value in reversed(forwarded):
        hops = [hop.strip() for hop in value.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    peer = scope.get("client")
    return str(peer[0]) if peer else "unknown"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this request's path (the `Allow` of a 405).

    Asked of the router itself, one method at a time, so that routes inside included routers count too.
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A logged 500 without a stack trace or request data in the answer."""
    # The frames, not the message: an exception's text may quote request data.
    log.error(
        "unhandled error",
        extra={"error": type(exc).__name__, "path": request.url.path, "frames": traceback.format_tb(exc.__traceback__)},
    )
    return JSONResponse({"message": "Internal server error"}, status_code=500)


def unauthorized(message: str, *, error: str | None = None) -> JSONResponse:
    """401 `{"message"}` with the RFC 6750 challenge (`error="invalid_token"` when a token was sent)."""
    return JSONResponse({"message": message}, status_code=401, headers={"WWW-Authenticate": bearer_challenge(error)})


def bearer_challenge(error: str | None) -> str:
    """The WWW-Authenticate value of a 401 for a bearer-token route."""
    return "Bearer" if error is None else f'Bearer error="{error}"'


def install_http_basics(
    app: FastAPI,
    *,
    field_overrides: Mapping[str, Mapping[str, str]] | None = None,
    invalid_path_message: str | None = None,
    error_handlers: Mapping[type[Exception], ErrorHandler] | None = None,
) -> None:
    """What every service's FastAPI app has: the error handlers, the 1 MiB body limit, the access log."""
    install_error_handlers(
        app, field_overrides=field_overrides, invalid_path_message=invalid_path_message, error_handlers=error_handlers
    )
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(AccessLogMiddleware)  # added last, so outermost: it also sees the 413s


class BodySizeLimitMiddleware:
    """Refuse request bodies over max_bytes with 413, by Content-Length or while reading a chunked body.

    A chunked body is read (up to the limit) before the app runs: frameworks turn an error raised while
    they read the body into a 400, so the limit must be decided first. Services take at most 1 MiB, so
    holding it is cheap; the gateway streams and counts on its own instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = header_bytes(scope["headers"], b"content-length")
        if length is not None:
            # The server (httptools/h11) has already refused a malformed Content-Length.
            if int(length) > self.max_bytes:
                await send_json(send, 413, {"message": "Request body too large"})
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in {"GET", "HEAD", "DELETE", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_json(send, 413, {"message": "Request body too large"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def header_bytes(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (lower case, as ASGI servers give the names) in a scope's headers."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """header_bytes() as text (latin-1, HTTP's own)."""
    value = header_bytes(headers, name)
    return None if value is None else value.decode("latin-1")


def sane_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The caller's X-Request-ID when it is a sane token (1-128 of [A-Za-z0-9._-]), else None."""
    value = header_bytes(headers, _REQUEST_ID_NAME)
    return value.decode("ascii") if value is not None and _SANE_REQUEST_ID.fullmatch(value) else None


def ensure_request_id(scope: Scope) -> str:
    """The request's id: the caller's sane X-Request-ID, else a new one written into the scope's headers,
    so that every layer after this one (access log, audit, logs, upstream calls) sees the same id."""
    request_id = sane_request_id(scope["headers"])
    if request_id is None:
        request_id = uuid.uuid4().hex
        scope["headers"] = [
            *(h for h in scope["headers"] if h[0] != _REQUEST_ID_NAME),
            (_REQUEST_ID_NAME, request_id.encode()),
        ]
    return request_id


class StatusRecorder:
    """Wraps an ASGI `send` and remembers the response's status (500 until one is sent)."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class AccessLogMiddleware:
    """One JSON line per request: method, path, status, duration and request id; never bodies or queries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = ensure_request_id(scope)
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": recorder.status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    "request_id": request_id,
                },
            )


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer a raw ASGI request with a JSON body (for middlewares that run before the app)."""
    payload = orjson.dumps(body)
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": payload})
