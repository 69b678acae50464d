"""The outbox table: one row per message owed to Kafka or to billing-service, with an explicit state."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID

from patient_service.db import metadata


class Destination(StrEnum):
    """Where a row goes; each destination has its own relay loop, so one being down never delays the other."""

    PATIENT_EVENT = "patient-event"  # Kafka topic `patient`, value PatientEvent
    BILLING_ACCOUNT = "billing-account"  # BillingService.CreateBillingAccount, request BillingRequest


class State(StrEnum):
    """PENDING until delivered (SENT) or refused as poison (PARKED, replayable by hand)."""

    PENDING = "PENDING"
    SENT = "SENT"
    PARKED = "PARKED"


outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("destination", String(32), nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False, server_default=State.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("trace_context", Text),  # W3C traceparent/baggage (JSON) of the request that wrote the row
    CheckConstraint("state IN ('PENDING', 'SENT', 'PARKED')", name="state"),
)

# The relay's claim query walks only pending rows, oldest first, per destination (id order: it stops after
# one batch; migration 0002 replaced (destination, next_attempt_at, id), which needed a sort of all of them).
Index(
    "ix_outbox_pending",
    outbox.c.destination,
    outbox.c.id,
    postgresql_where=outbox.c.state == State.PENDING.value,
)
# "Is an older row of this patient still pending?" (keeps per-patient order across batches and replicas).
Index(
    "ix_outbox_pending_aggregate",
    outbox.c.destination,
    outbox.c.aggregate_id,
    outbox.c.id,
    postgresql_where=outbox.c.state == State.PENDING.value,
)
# /health counts parked rows; SENT rows pile up until a retention job deletes them, so never scan them.
Index("ix_outbox_parked", outbox.c.id, postgresql_where=outbox.c.state == State.PARKED.value)
