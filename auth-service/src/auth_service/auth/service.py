"""Login (throttled) and the demo user: plain functions with keyword-only arguments."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.models import users
from auth_service.auth.passwords import Passwords
from auth_service.auth.throttle import LoginThrottle, admit_login, clear_failures

log = logging.getLogger(__name__)

# The original's data.sql user; the bcrypt hash (of "password123") is upgraded to argon2 on first login.
DEMO_USER_ID = uuid.UUID("223e4567-e89b-12d3-a456-426614174006")
DEMO_USER_EMAIL = "testuser@test.com"
DEMO_USER_ROLE = "ADMIN"
DEMO_USER_BCRYPT_HASH = "$2b$12$7hoRZfJrRKD2nIm2vHLs7OBETy.LWenXXMLKf99W8M4PUwO6KB7fu"


@dataclass(frozen=True)
class Principal:
    """Who logged in: what goes into the token."""

    user_id: uuid.UUID
    email: str
    role: str


async def login(
    *, engine: AsyncEngine, passwords: Passwords, throttle: LoginThrottle, email: str, password: str, client: str
) -> Principal | None:
    """authenticate, after the throttle admitted the attempt (Throttled otherwise: no hash is verified)."""
    await admit_login(engine=engine, throttle=throttle, email=email, client=client)
    principal = await authenticate(engine=engine, passwords=passwords, email=email, password=password)
    if principal is not None:
        await clear_failures(engine=engine, throttle=throttle, email=email)
    return principal


async def authenticate(*, engine: AsyncEngine, passwords: Passwords, email: str, password: str) -> Principal | None:
    """The enabled user whose email and password match, else None; every case costs one hash check."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(users.c.id, users.c.email, users.c.password_hash, users.c.role, users.c.disabled).where(
                    func.lower(users.c.email) == func.lower(email)
                )
            )
        ).one_or_none()
    stored_hash = row.password_hash if row is not None else None
    # Hashing is CPU-bound (tens of ms): keep it off the event loop.
    matches, new_hash = await asyncio.to_thread(passwords.verify_and_update, password, stored_hash)
    if row is None or not matches or row.disabled:
        # A disabled user gets the same answer as a wrong password, after the same one verification.
        user_id = str(row.id) if row is not None else None
        log.info("login refused", extra={"known_user": row is not None, "user_id": user_id})
        return None
    if new_hash is not None:
        await _replace_hash(engine=engine, user_id=row.id, old_hash=row.password_hash, new_hash=new_hash)
    log.info("login accepted", extra={"user_id": str(row.id)})
    return Principal(user_id=row.id, email=row.email, role=row.role)


async def _replace_hash(*, engine: AsyncEngine, user_id: uuid.UUID, old_hash: str, new_hash: str) -> None:
    """Store an upgraded hash unless a concurrent login already did (compare-and-set on the old one)."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(users).where(users.c.id == user_id, users.c.password_hash == old_hash).values(password_hash=new_hash)
        )
    if result.rowcount:
        log.info("password hash upgraded", extra={"user_id": str(user_id)})


async def seed_demo_user(*, engine: AsyncEngine) -> bool:
    """Insert the demo user unless it (or its email) exists; True when a row was inserted."""
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(users)
            .values(id=DEMO_USER_ID, email=DEMO_USER_EMAIL, password_hash=DEMO_USER_BCRYPT_HASH, role=DEMO_USER_ROLE)
            .on_conflict_do_nothing()
        )
    inserted = bool(result.rowcount)
    log.info("demo user seeded" if inserted else "demo user already present")
    return inserted
