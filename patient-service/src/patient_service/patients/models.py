"""The patients table."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Index, String, Table, func
from sqlalchemy.dialects.postgresql import UUID

from patient_service.db import metadata

NAME_MAX = 100
EMAIL_MAX = 255
ADDRESS_MAX = 255

# The unique index on lower(email): the database, not a prior SELECT, decides who wins a race.
EMAIL_UNIQUE_INDEX = "uq_patients_email_lower"

patients = Table(
    "patients",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(NAME_MAX), nullable=False),
    Column("email", String(EMAIL_MAX), nullable=False),
    Column("address", String(ADDRESS_MAX), nullable=False),
    Column("date_of_birth", Date, nullable=False),
    Column("registered_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index(EMAIL_UNIQUE_INDEX, func.lower(patients.c.email), unique=True)
# The list is ordered by (registered_date, id); this index serves that order and paging.
Index("ix_patients_registered_date_id", patients.c.registered_date, patients.c.id)
