"""Login throttling: fixed-window counters in PostgreSQL, shared by every instance and kept across restarts.

Two counters per login, each one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` (so concurrent
instances agree): attempts per client address, and failures per account (the lower-cased email).
Both are counted before the password is verified; a successful login deletes its account counter,
so the account counter holds the failures since the last success. Keys are HMACs with the JWT key:
no email or address is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import case, delete, extract, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.models import login_attempts
from auth_service.config import Settings
from auth_service.metrics import LOGIN_THROTTLED
from pm_common.http import DomainError, ErrorHandler
from pm_common.settings import jwt_key

log = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many login attempts; try again later"


class Throttled(DomainError):
    """Too many login attempts: 429 with Retry-After."""

    status_code = 429

    def __init__(self, *, retry_after_seconds: int) -> None:
        super().__init__(THROTTLED_MESSAGE)
        self.retry_after_seconds = retry_after_seconds


async def _on_throttled(request: Request, exc: Throttled) -> JSONResponse:
    return JSONResponse(
        {"message": exc.message}, status_code=exc.status_code, headers={"Retry-After": str(exc.retry_after_seconds)}
    )


THROTTLE_ERROR_HANDLERS: dict[type[Exception], ErrorHandler] = {Throttled: _on_throttled}


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` counts per key within `seconds` from the first one."""

    limit: int
    seconds: int


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """The limits and the HMAC key of the counters (from the settings)."""

    key: bytes
    per_account: Window
    per_client: Window

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        """The throttle the settings describe, keyed with the JWT key."""
        return cls(
            key=jwt_key(settings.jwt_secret),
            per_account=Window(settings.login_failure_limit, settings.login_failure_window_seconds),
            per_client=Window(settings.login_client_limit, settings.login_client_window_seconds),
        )

    def counter_key(self, kind: str, value: str) -> str:
        """`kind:` and the hex HMAC-SHA256 of value (the stored key: never the value itself)."""
        message = f"login-throttle:{kind}:{value}".encode("utf-8", "surrogatepass")
        return f"{kind}:{hmac.new(self.key, message, hashlib.sha256).hexdigest()}"


async def _count(*, engine: AsyncEngine, key: str, window: Window) -> tuple[int, int]:
    """Count one for key in its current window (a new window once the last has ended): (count, seconds left)."""
    now = func.now()
    ended = login_attempts.c.expires_at <= now
    fresh = insert(login_attempts).values(key=key, count=1, expires_at=now + timedelta(seconds=window.seconds))
    statement = fresh.on_conflict_do_update(
        index_elements=[login_attempts.c.key],
        set_={
            # Capped: a client hammering away cannot overflow the integer.
            "count": case((ended, 1), else_=func.least(login_attempts.c.count + 1, window.limit + 1)),
            "expires_at": case((ended, fresh.excluded.expires_at), else_=login_attempts.c.expires_at),
        },
    ).returning(login_attempts.c.count, func.ceil(extract("epoch", login_attempts.c.expires_at - now)))
    async with engine.begin() as connection:
        count, seconds_left = (await connection.execute(statement)).one()
    return int(count), max(1, int(seconds_left))


async def admit_login(*, engine: AsyncEngine, throttle: LoginThrottle, email: str, client: str) -> None:
    """Count this attempt for its client and its account; Throttled if either is over its limit."""
    checks: list[tuple[str, str, Window]] = [
        ("client", throttle.counter_key("client", client), throttle.per_client),
        ("account", throttle.counter_key("account", email.lower()), throttle.per_account),
    ]
    for kind, key, window in checks:
        count, seconds_left = await _count(engine=engine, key=key, window=window)
        if count > window.limit:
            log.info("login throttled", extra={"throttle": kind})
            LOGIN_THROTTLED.inc()
            raise Throttled(retry_after_seconds=seconds_left)


async def clear_failures(*, engine: AsyncEngine, throttle: LoginThrottle, email: str) -> None:
    """Forget the account's failed logins (after a successful one)."""
    key = throttle.counter_key("account", email.lower())
    async with engine.begin() as connection:
        await connection.execute(delete(login_attempts).where(login_attempts.c.key == key))


async def delete_expired(*, engine: AsyncEngine) -> int:
    """Delete the counters whose window has ended; how many were deleted."""
    async with engine.begin() as connection:
        result = await connection.execute(delete(login_attempts).where(login_attempts.c.expires_at <= func.now()))
    return int(result.rowcount)
