"""The users table."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, func, text
from sqlalchemy.dialects.postgresql import UUID

from pm_common.database import new_metadata

metadata = new_metadata()

# Someone who can log in; `password_hash` is an argon2 or bcrypt hash in PHC/modular-crypt form.
users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("email", String(255), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(50), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Emails are unique without regard to case, and login looks them up by lower(email).
Index("uq_users_email_lower", func.lower(users.c.email), unique=True)
