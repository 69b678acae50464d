"""The patients table."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Index, Integer, String, Table, func, text
from sqlalchemy.dialects.postgresql import UUID

from patient_service.db import metadata
from pm_common.idempotency import idempotency_table

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
    # 1 on insert, +1 on every update: the ETag `W/"<version>"` and FHIR's meta.versionId.
    Column("version", Integer, nullable=False, server_default=text("1")),
)

Index(EMAIL_UNIQUE_INDEX, func.lower(patients.c.email), unique=True)
# The list is ordered by (registered_date, id); this index serves that order and paging.
Index("ix_patients_registered_date_id", patients.c.registered_date, patients.c.id)
# Search (migration 0005): name substrings through pg_trgm, the date filters and the other sorts by btree.
Index(
    "ix_patients_name_trgm",
    func.lower(patients.c.name).label("name_lower"),
    postgresql_using="gin",
    postgresql_ops={"name_lower": "gin_trgm_ops"},
)
Index("ix_patients_name_lower_id", func.lower(patients.c.name), patients.c.id)
Index("ix_patients_date_of_birth_id", patients.c.date_of_birth, patients.c.id)

# Idempotency-Key of POST /patients: stored in the create's transaction (pm_common.idempotency).
idempotency_keys = idempotency_table(metadata)
