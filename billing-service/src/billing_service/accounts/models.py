"""The billing_accounts table."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table, func

from pm_common.database import new_metadata

PATIENT_ID_MAX = 255
NAME_MAX = 255
EMAIL_MAX = 255

metadata = new_metadata()

# One account per patient; patient_id is kept exactly as the caller sent it.
billing_accounts = Table(
    "billing_accounts",
    metadata,
    Column("patient_id", String(PATIENT_ID_MAX), primary_key=True),
    Column("account_id", String(64), nullable=False, unique=True),
    Column("status", String(32), nullable=False),
    # Name and email as received (billing needs them); never logged.
    Column("name", String(NAME_MAX), nullable=False),
    Column("email", String(EMAIL_MAX), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
