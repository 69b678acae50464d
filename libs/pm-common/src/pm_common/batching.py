"""Records sent in batches in the background: at most `interval_seconds` late, none lost on a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Batcher(Generic[T]):
    """Queues items and hands them to `send` in batches, from a background task.

    `send` raises to keep a batch queued for the next attempt (the receiver is away). While it keeps
    failing, at most `max_pending` items wait; beyond that the oldest are dropped, counted and logged.
    A clean stop (`close`) sends what is queued; a crash loses at most one interval's worth.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        *,
        what: str,
        interval_seconds: float = 0.5,
        batch_size: int = 500,
        max_pending: int = 50_000,
    ) -> None:
        self._send = send
        self._what = what
        self._interval_seconds = interval_seconds
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending: list[T] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: two would send the same batch twice
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, item: T) -> None:
        """Queue an item (never blocks the caller)."""
        self._pending.append(item)
        if len(self._pending) > self._max_pending:
            del self._pending[0]
            self.dropped += 1
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def start(self) -> None:
        """Begin sending in the background (call inside the running loop)."""
        self._task = asyncio.create_task(self._run(), name=f"batcher-{self._what}")

    async def close(self) -> None:
        """Stop the background sending and send everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Send what is queued now; on failure keep it queued for the next attempt."""
        async with self._flushing:
            while self._pending:
                batch = self._pending[: self._batch_size]
                try:
                    await self._send(batch)
                except Exception as exc:  # the receiver is away or refused: keep the batch, retry next time
                    extra = {"what": self._what, "error": type(exc).__name__, "queued": len(self._pending)}
                    log.warning("batch not sent yet", extra={**extra, "dropped": self.dropped})
                    return
                del self._pending[: len(batch)]

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_seconds)
            self._wake.clear()
            await self.flush()
