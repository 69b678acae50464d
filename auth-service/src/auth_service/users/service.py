"""User management: plain functions with keyword-only arguments."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.models import idempotency_keys, users
from auth_service.auth.passwords import Passwords
from auth_service.users.schemas import UserCreated, UserResponse
from pm_common import idempotency
from pm_common.access import Role
from pm_common.http import DomainError, NotFoundError
from pm_common.idempotency import RetryKey

log = logging.getLogger(__name__)

_COLUMNS = (users.c.id, users.c.email, users.c.role, users.c.disabled, users.c.created_at)


async def create_user(
    *, engine: AsyncEngine, passwords: Passwords, email: str, password: str, role: Role, retry: RetryKey | None = None
) -> UserCreated:
    """Insert a user with an argon2 hash of password; 409 when the email is taken (without regard to case).

    With an Idempotency-Key (retry), the key and the answer are stored in the same transaction.
    """
    password_hash = await asyncio.to_thread(passwords.hash, password)
    async with engine.begin() as connection:
        if retry is not None:
            await idempotency.guard(connection, idempotency_keys, retry)  # a repeat: Replayed, nothing created
        row = (
            await connection.execute(
                insert(users)
                .values(email=email, password_hash=password_hash, role=role.value)
                .on_conflict_do_nothing()
                .returning(users.c.id, users.c.email, users.c.role)
            )
        ).one_or_none()
        if row is None:
            raise DomainError("A user with this email already exists", status_code=409)
        created = UserCreated(id=row.id, email=row.email, role=row.role)
        if retry is not None:
            body = created.model_dump(mode="json")
            await idempotency.complete(connection, idempotency_keys, retry, status=201, body=body)
    log.info("user created", extra={"user_id": str(row.id), "role": row.role})
    return created


async def list_users(*, engine: AsyncEngine) -> list[UserResponse]:
    """Every user, oldest first (no password hashes)."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(*_COLUMNS).order_by(users.c.created_at, users.c.id))).all()
    return [UserResponse.model_validate(row) for row in rows]


async def update_user(
    *, engine: AsyncEngine, user_id: uuid.UUID, role: Role | None, disabled: bool | None
) -> UserResponse:
    """Change role and/or disabled; 404 for an unknown id, 409 when no enabled ADMIN would remain."""
    if role is None and disabled is None:
        raise DomainError("Nothing to change: give role and/or disabled")
    changes: dict[str, object] = {}
    if role is not None:
        changes["role"] = role.value
    if disabled is not None:
        changes["disabled"] = disabled
    async with engine.begin() as connection:
        # Locking the enabled ADMINs serialises concurrent changes to them: two ADMINs demoting each
        # other cannot both succeed.
        admins = set(
            (
                await connection.execute(
                    select(users.c.id)
                    .where(users.c.role == Role.ADMIN.value, users.c.disabled.is_(False))
                    .with_for_update()
                )
            ).scalars()
        )
        leaves_admins = role not in (None, Role.ADMIN) or disabled is True
        if admins == {user_id} and leaves_admins:
            raise DomainError("The last enabled ADMIN cannot be disabled or demoted", status_code=409)
        row = (
            await connection.execute(update(users).where(users.c.id == user_id).values(**changes).returning(*_COLUMNS))
        ).one_or_none()
    if row is None:
        raise NotFoundError("User not found")
    log.info("user updated", extra={"user_id": str(user_id), "changed": sorted(changes)})
    return UserResponse.model_validate(row)
