"""The 401s and 403s the gateway answers on patient routes, handed to patient-service's audit trail.

A refusal at the edge never reaches patient-service, yet the trail must show every refused attempt:
the gateway queues one record per refusal and posts them in batches (at most `interval_seconds` apart)
to patient-service's `POST /audit/refusals` with its own SERVICE token. A clean shutdown sends what is
queued; a crash loses at most one interval's worth, as patient-service's own batched records.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from starlette.types import Scope

from api_gateway.balancer import Balancer
from api_gateway.upstreams import Upstreams
from pm_common.batching import Batcher
from pm_common.http import client_address
from pm_common.tokens import Identity, ServiceTokens

log = logging.getLogger(__name__)
_SEND_TIMEOUT = aiohttp.ClientTimeout(total=5)


class RefusalRecorder:
    """Queues refusals and posts them to patient-service in the background."""

    def __init__(
        self, *, upstreams: Upstreams, patients: Balancer, credentials: ServiceTokens, interval_seconds: float = 0.5
    ) -> None:
        self._upstreams = upstreams
        self._patients = patients
        self._credentials = credentials
        self._batcher: Batcher[dict[str, Any]] = Batcher(
            self._post, what="audit-refusals", interval_seconds=interval_seconds, max_pending=10_000
        )
        self.start = self._batcher.start
        self.close = self._batcher.close
        self.flush = self._batcher.flush

    def record(
        self, scope: Scope, *, status: int, identity: Identity | None, request_id: str, patient_id: str | None
    ) -> None:
        """Queue one refusal (never blocks the answer)."""
        self._batcher.add(
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

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        """Hand one batch over; raises to keep it queued while patient-service is away or refuses the key."""
        url = self._patients.pick().url + "/audit/refusals"
        # The session skips aiohttp's automatic Content-Type (a proxy forwards the client's): set it.
        headers = {"Authorization": self._credentials.authorization(), "Content-Type": "application/json"}
        async with self._upstreams.session.post(
            url, data=orjson.dumps({"events": batch}), headers=headers, timeout=_SEND_TIMEOUT
        ) as response:
            await response.read()
            status = response.status
        if status >= 500 or status in (401, 403):  # patient-service away, or a key mismatch: retry later
            raise RuntimeError(f"audit refusals answered {status}")
        if status != 202:  # refused as malformed: retrying would never succeed
            log.error("refusals refused by the audit trail", extra={"status": status, "count": len(batch)})


def patient_id_in(path: str) -> str | None:
    """The id of `/api/patients/{id}` or `/fhir/Patient/{id}` (None for a list or something else)."""
    rest = path.rsplit("/", 1)[-1]
    try:
        return str(uuid.UUID(rest))
    except ValueError:
        return None
