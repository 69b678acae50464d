"""The audit_events table: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE)."""

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
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import UUID

from patient_service.db import metadata


class Action(StrEnum):
    """What a caller did (DENIED: a 401, 403 or 404 on a patient route)."""

    LIST = "LIST"
    READ = "READ"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    DENIED = "DENIED"


# Never names, emails, addresses or birth dates: who, what, which id, the outcome and where from.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255)),  # the token's sub; NULL when no valid token was sent
    Column("role", String(50)),
    Column("action", String(16), nullable=False),
    Column("patient_id", UUID(as_uuid=True)),  # NULL for a list
    Column("rows", Integer),  # how many patients a list returned
    Column("status", SmallInteger, nullable=False),
    Column("request_id", String(128)),
    Column("client_address", String(64)),
    CheckConstraint("action IN ('LIST', 'READ', 'CREATE', 'UPDATE', 'DELETE', 'DENIED')", name="action"),
)
# Newest first, for everything and per patient or actor (the filters of GET /audit).
Index("ix_audit_events_at_id", audit_events.c.at, audit_events.c.id)
Index("ix_audit_events_patient_id_at", audit_events.c.patient_id, audit_events.c.at)
Index("ix_audit_events_actor_at", audit_events.c.actor, audit_events.c.at)
