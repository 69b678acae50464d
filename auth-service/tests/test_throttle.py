"""Login throttling against real PostgreSQL: per account, per client address, across restarts, cleanup."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.models import login_attempts
from auth_service.auth.passwords import Passwords
from auth_service.auth.service import DEMO_USER_EMAIL, login, seed_demo_user
from auth_service.auth.throttle import LoginThrottle, Throttled, Window, delete_expired
from pm_common.settings import DEMO_JWT_SECRET

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]

DEMO = {"email": DEMO_USER_EMAIL, "password": "password123"}
WRONG = {"email": DEMO_USER_EMAIL, "password": "wrong-password"}
THROTTLED = {"message": "Too many login attempts; try again later"}
REFUSED = {"message": "Invalid email or password"}


async def fail(client: httpx.AsyncClient, times: int, body: dict[str, str] = WRONG, **kwargs: Any) -> None:
    """Log in with body `times` times, each refused with 401."""
    for _ in range(times):
        response = await client.post("/login", json=body, **kwargs)
        assert response.status_code == 401, response.text


def assert_throttled(response: httpx.Response, *, window_seconds: int) -> None:
    """429 with the message and an integer Retry-After within the window."""
    assert response.status_code == 429
    assert response.json() == THROTTLED
    assert 1 <= int(response.headers["retry-after"]) <= window_seconds


async def test_five_failures_then_429_even_with_the_right_password(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed_demo_user(engine=engine)
    await fail(client, 5)

    right = await client.post("/login", json=DEMO)
    wrong = await client.post("/login", json=WRONG)
    other_case = await client.post("/login", json={**DEMO, "email": DEMO_USER_EMAIL.upper()})

    assert_throttled(right, window_seconds=900)
    assert int(right.headers["retry-after"]) > 890
    assert_throttled(wrong, window_seconds=900)
    assert_throttled(other_case, window_seconds=900)


async def test_unknown_email_is_throttled_the_same_way(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    unknown = {"email": "nobody@test.com", "password": "password123"}
    await fail(client, 5, unknown)

    response = await client.post("/login", json=unknown)

    assert_throttled(response, window_seconds=900)
    # Only that email: the demo user still logs in.
    assert (await client.post("/login", json=DEMO)).status_code == 200


async def test_success_clears_the_failures(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    await fail(client, 4)
    assert (await client.post("/login", json=DEMO)).status_code == 200

    await fail(client, 5)  # a fresh count of five
    assert_throttled(await client.post("/login", json=DEMO), window_seconds=900)


async def test_the_count_starts_again_once_the_window_has_passed(serve: Serve, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    async with serve(login_failure_limit=2, login_failure_window_seconds=60) as client:
        await fail(client, 2)
        assert_throttled(await client.post("/login", json=DEMO), window_seconds=60)
        async with engine.begin() as connection:  # a minute later
            await connection.execute(update(login_attempts).values(expires_at=func.now() - timedelta(seconds=1)))

        assert (await client.post("/login", json=DEMO)).status_code == 200


async def test_counters_survive_a_restart(serve: Serve, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    async with serve() as client:
        await fail(client, 5)

    async with serve() as restarted:
        response = await restarted.post("/login", json=DEMO)

    assert_throttled(response, window_seconds=900)


async def test_two_instances_share_the_counters(serve: Serve, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    async with serve() as first, serve() as second:
        await fail(first, 3)
        await fail(second, 2)

        assert_throttled(await first.post("/login", json=DEMO), window_seconds=900)
        assert_throttled(await second.post("/login", json=DEMO), window_seconds=900)


async def test_31st_attempt_a_minute_from_one_client_gives_429(client: httpx.AsyncClient) -> None:
    # Different emails: only the per-client limit applies.
    for number in range(30):
        await fail(client, 1, {"email": f"user{number}@test.com", "password": "password123"})

    response = await client.post("/login", json={"email": "user99@test.com", "password": "password123"})

    assert_throttled(response, window_seconds=60)


async def test_the_client_is_the_last_forwarded_hop(serve: Serve, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    async with serve(login_client_limit=2) as client:
        from_gateway = {"X-Forwarded-For": "10.0.0.1"}
        await fail(client, 2, headers=from_gateway)

        again = await client.post("/login", json=DEMO, headers=from_gateway)
        spoofed_first_hop = await client.post("/login", json=DEMO, headers={"X-Forwarded-For": "10.9.9.9, 10.0.0.1"})
        other_client = await client.post("/login", json=DEMO, headers={"X-Forwarded-For": "10.0.0.1, 10.0.0.2"})
        direct = await client.post("/login", json=DEMO)  # no header: the socket peer's address

    assert_throttled(again, window_seconds=60)
    assert_throttled(spoofed_first_hop, window_seconds=60)
    assert other_client.status_code == 200
    assert direct.status_code == 200


async def test_counters_store_keyed_hashes_only(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await fail(client, 1, {"email": "Private.Person@test.com", "password": "password123"})

    async with engine.connect() as connection:
        keys = list((await connection.execute(select(login_attempts.c.key))).scalars())

    assert sorted(key.split(":")[0] for key in keys) == ["account", "client"]
    assert all(len(key.split(":")[1]) == 64 for key in keys)
    assert not any("private" in key.lower() or "127.0.0.1" in key for key in keys)


class CountingPasswords(Passwords):
    """The real Passwords, counting verifications."""

    calls = 0

    def verify_and_update(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        self.calls += 1
        return super().verify_and_update(password, stored_hash)


async def test_a_throttled_login_verifies_no_hash(engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    throttle = LoginThrottle(
        key=base64.b64decode(DEMO_JWT_SECRET), per_account=Window(1, 900), per_client=Window(100, 60)
    )
    passwords = CountingPasswords()

    async def attempt(email: str) -> object:
        return await login(
            engine=engine, passwords=passwords, throttle=throttle, client="10.0.0.1", email=email, password="wrong"
        )

    assert await attempt("nobody@test.com") is None
    passwords.calls = 0

    with pytest.raises(Throttled) as throttled:
        await attempt("NOBODY@test.com")

    assert passwords.calls == 0
    assert 1 <= throttled.value.retry_after_seconds <= 900


async def test_expired_counters_are_deleted(engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    await fail(client, 1, {"email": "a@test.com", "password": "password123"})
    await fail(client, 1, {"email": "b@test.com", "password": "password123"})
    async with engine.begin() as connection:
        await connection.execute(
            update(login_attempts)
            .where(login_attempts.c.key.startswith("account:"))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    assert await delete_expired(engine=engine) == 2
    async with engine.connect() as connection:
        left = (await connection.execute(select(func.count()).select_from(login_attempts))).scalar_one()
    assert left == 1  # the client counter, still in its window


async def test_the_lifespan_deletes_expired_counters_periodically(serve: Serve, engine: AsyncEngine) -> None:
    async with serve(purge_interval_seconds=0.1) as client:
        await fail(client, 1, {"email": "a@test.com", "password": "password123"})
        async with engine.begin() as connection:
            await connection.execute(update(login_attempts).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        for _ in range(50):
            async with engine.connect() as connection:
                left = (await connection.execute(select(func.count()).select_from(login_attempts))).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.1)

    assert left == 0
