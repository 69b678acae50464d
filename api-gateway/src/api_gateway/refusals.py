"""The 401s and 403s the gateway answers on patient routes, handed to patient-service's audit trail.

A refusal at the edge never reaches patient-service, yet the trail must show every refused attempt:
the gateway queues one record per refusal and posts them in batches (at most `interval_seconds` apart)
to patient-service's `POST /audit/refusals` with its own SERVICE token. A clean shutdown sends what is
queued; a crash loses at most one interval's worth, as patient-service's own batched records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from starlette.types import Scope

from api_gateway.balancer import Balancer
from api_gateway.upstreams import Upstreams
from pm_common.http import client_address
from pm_common.tokens import Identity, ServiceTokens

log = logging.getLogger(__name__)
_SEND_TIMEOUT = aiohttp.ClientTimeout(total=5)


class RefusalRecorder:
    """Queues refusals and posts them to patient-service in the background."""

    def __init__(
        self,
        *,
        upstreams: Upstreams,
        patients: Balancer,
        credentials: ServiceTokens,
        interval_seconds: float = 0.5,
        max_pending: int = 10_000,
    ) -> None:
        self._upstreams = upstreams
        self._patients = patients
        self._credentials = credentials
        self._interval_seconds = interval_seconds
        self._max_pending = max_pending
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0

    def record(
        self, scope: Scope, *, status: int, identity: Identity | None, request_id: str, patient_id: str | None
    ) -> None:
        """Queue one refusal (never blocks the answer)."""
        self._pending.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "actor": identity.subject if identity else None,
                "role": identity.role if identity else None,
                "patientId": patient_id,
                "status": status,
                "requestId": request_id,
                "clientAddress": client_address(scope),
            }
        )
        if len(self._pending) > self._max_pending:
            del self._pending[0]
            self.dropped += 1

    def start(self) -> None:
        """Begin posting in the background (inside the running loop)."""
        self._task = asyncio.create_task(self._run(), name="audit-refusals")

    async def close(self) -> None:
        """Stop the background posting and send what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Post what is queued; on failure keep it for the next attempt."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:500]
                url = self._patients.pick().url + "/audit/refusals"
                # The session skips aiohttp's automatic Content-Type (a proxy forwards the client's): set it.
                headers = {"Authorization": self._credentials.authorization(), "Content-Type": "application/json"}
                try:
                    async with self._upstreams.session.post(
                        url, data=orjson.dumps({"events": batch}), headers=headers, timeout=_SEND_TIMEOUT
                    ) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning(
                        "refusals not handed to the audit trail yet",
                        extra={"error": type(exc).__name__, "queued": len(self._pending), "dropped": self.dropped},
                    )
                    return
                if status >= 500 or status in (401, 403):  # patient-service away, or a key mismatch: retry later
                    log.warning("refusals not handed to the audit trail yet", extra={"status": status})
                    return
                if status != 202:  # refused as malformed: retrying would never succeed
                    self.dropped += len(batch)
                    log.error("refusals refused by the audit trail", extra={"status": status, "count": len(batch)})
                del self._pending[: len(batch)]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_seconds)
            await self.flush()


def patient_id_in(path: str) -> str | None:
    """The id of `/api/patients/{id}` or `/fhir/Patient/{id}` (None for a list or something else)."""
    rest = path.rsplit("/", 1)[-1]
    try:
        return str(uuid.UUID(rest))
    except ValueError:
        return None
