"""The audit context of one request: who asks, from where, under which request id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from patient_service.audit.models import Action
from patient_service.audit.service import AuditEvent


@dataclass(slots=True)
class AuditContext:
    """Made by AuditMiddleware for every patient request; a write records itself and sets `recorded`."""

    actor: str | None
    role: str | None
    request_id: str | None
    client_address: str | None
    at: datetime
    recorded: bool = False
    rows: int | None = None  # set by a list: how many patients it returned
    replayed_patient_id: str | None = None  # set by a create that replayed an Idempotency-Key's outcome

    def event(self, action: Action, *, patient_id: uuid.UUID | None, status: int) -> AuditEvent:
        """The record of this request's access."""
        return AuditEvent(
            at=self.at,
            actor=self.actor,
            role=self.role,
            action=action,
            patient_id=patient_id,
            status=status,
            request_id=self.request_id,
            client_address=self.client_address,
            rows=self.rows,
        )


def now() -> datetime:
    """The time a record carries (UTC)."""
    return datetime.now(UTC)
