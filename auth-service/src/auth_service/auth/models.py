"""The users table and the login throttling counters."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text, false, func, text
from sqlalchemy.dialects.postgresql import UUID

from pm_common.database import new_metadata
from pm_common.idempotency import idempotency_table

metadata = new_metadata()

EMAIL_MAX = 255

# Someone who can log in; `password_hash` is an argon2 or bcrypt hash in PHC/modular-crypt form.
# `role` is one of pm_common.access.USER_ROLES; a disabled user cannot log in.
users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("email", String(EMAIL_MAX), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(50), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled", Boolean, nullable=False, server_default=false()),
)

# Emails are unique without regard to case, and login looks them up by lower(email).
Index("uq_users_email_lower", func.lower(users.c.email), unique=True)

# One fixed window per key: `account:<hmac of the lower-cased email>` counts failed logins,
# `client:<hmac of the client address>` counts attempts. A row whose window has ended is reset by the
# next attempt and deleted by the periodic cleanup. No email, address or password is stored.
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("key", Text, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

Index("ix_login_attempts_expires_at", login_attempts.c.expires_at)

# Idempotency-Key of POST /users: stored in the create's transaction (pm_common.idempotency).
idempotency_keys = idempotency_table(metadata)
