"""A real HTTP upstream for the gateway's tests: echoes what it received. Run: python echo_upstream.py PORT.

Query parameters steer it: `delay=S` answers after S seconds; `stream=N` sends N bytes in 64 KiB
chunks without Content-Length (`pause=S` waits S seconds after the first chunk); `status=C&location=L`
answers C with that Location; `set_cookie=1` sets a cookie; `cache=1` sends Cache-Control, security and CORS
headers; `hop=1` answers with hop-by-hop headers; `drop=PORT` makes the instance on PORT read the request
and then reset the connection without an answer (other instances answer). The echo names its `port`.
`GET /__seen` (not reachable through the gateway) lists the X-Request-IDs it has received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import struct
import sys
from typing import Any
from urllib.parse import parse_qs

import uvicorn

CHUNK = 64 * 1024
PORT = int(sys.argv[1]) if __name__ == "__main__" else 0
seen: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The echo ASGI app."""
    if scope["type"] == "lifespan":
        await receive()  # startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/health":
        return await _json(send, 200, {"status": "UP"})
    if path == "/openapi.json":
        return await _json(send, 200, {"openapi": "3.1.0", "info": {"title": "echo", "version": "1"}, "paths": {}})
    if path == "/__seen":
        return await _json(send, 200, seen)
    seen.extend(v for k, v in headers if k == "x-request-id")
    if query.get("drop") == str(PORT):
        return _reset(receive)
    if "delay" in query:
        await asyncio.sleep(float(query["delay"]))
    if "stream" in query:
        return await _stream(send, int(query["stream"]), float(query.get("pause", 0)))
    extra: list[tuple[bytes, bytes]] = [(b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")]
    if "location" in query:
        extra.append((b"location", query["location"].encode()))
    if "set_cookie" in query:
        extra.append((b"set-cookie", b"session=secret; Path=/"))
    if "cache" in query:  # headers the gateway replaces or drops
        extra += [(b"cache-control", b"public, max-age=60"), (b"x-content-type-options", b"sniff-away")]
        extra += [(b"referrer-policy", b"unsafe-url"), (b"access-control-allow-origin", b"*")]
    if "hop" in query:
        extra += [(b"connection", b"x-upstream-hop"), (b"x-upstream-hop", b"1"), (b"keep-alive", b"timeout=5")]
    echo = {
        "port": PORT,
        "method": scope["method"],
        "path": path,
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": headers,
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body": body.decode("utf-8", "replace") if len(body) <= 4096 else None,
    }
    await _json(send, int(query.get("status", 200)), echo, extra)


async def _json(send: Any, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": payload})


async def _stream(send: Any, size: int, pause: float) -> None:
    """size bytes of a repeating pattern, chunked, with a pause after the first chunk."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    )
    pattern = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < size:
        chunk = pattern[: min(CHUNK, size - sent)]
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        sent += len(chunk)
        if pause and sent == len(chunk):
            await asyncio.sleep(pause)
    await send({"type": "http.response.body", "body": b""})


def _reset(receive: Any) -> None:
    """Reset the connection (RST, no answer): uvicorn's receive is a method of the cycle that holds the transport."""
    transport = receive.__self__.transport
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
