"""uvicorn's httptools protocol with what it lacks against slow and oversized request heads.

uvicorn (httptools and h11 alike) has no timeout while a request head arrives: `timeout_keep_alive`
is armed only after a response and cancelled by the next byte received, and nothing is armed when a
connection opens. A client that sends one byte every few seconds (slowloris) holds its connection,
and the parser's growing buffers, for ever; httptools also puts no limit on the size of a head. ASGI
code never sees such a request (the app is called once the head is complete), so this is the server's
part: run uvicorn with `http="api_gateway.protocol:EdgeHttpToolsProtocol"`.

- The head (request line and headers) must be complete within HEADER_READ_TIMEOUT_SECONDS of its
  first byte, or of the connection opening: else 408 and close.
- A head over MAX_RAW_HEAD_BYTES is refused with 431 and the connection closed, before it grows any
  further. (The exact limits, 16 KiB of fields and 100 fields, are the gateway's ASGI check; this is
  the backstop that bounds memory.)

The timeout is the gateway's setting: the gateway's lifespan puts it into the lifespan state, which
uvicorn shares with every connection (`app_state`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_STATE_KEY = "api_gateway.header_read_timeout_seconds"
DEFAULT_HEAD_TIMEOUT_SECONDS = 10.0
# Request line plus header fields as sent (with CRLFs): well above the 16 KiB the gateway accepts.
MAX_RAW_HEAD_BYTES = 64 * 1024


class EdgeHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus a deadline and a size cap for each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._reading_head = False

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            timeout = self.app_state.get(HEAD_TIMEOUT_STATE_KEY, DEFAULT_HEAD_TIMEOUT_SECONDS)
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def _end_head(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_RAW_HEAD_BYTES:
                self._refuse(431, b"Request Header Fields Too Large", b'{"message":"Request header fields too large"}')

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, b"Request Timeout", b'{"message":"Request head not received in time"}')

    def _refuse(self, status: int, reason: bytes, body: bytes) -> None:
        """Answer and close, unless a response on this connection is under way (then only close)."""
        self._end_head()
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"x-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\ncache-control: no-store\r\n"
                b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
            )
        self.transport.close()
