"""POST /login against real PostgreSQL: tokens, refusals, validation messages, hash upgrade, timing, disabled users."""

from __future__ import annotations

import base64
import json
import statistics
import time
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.models import metadata, users
from auth_service.auth.passwords import Passwords
from auth_service.auth.service import (
    DEMO_USER_BCRYPT_HASH,
    DEMO_USER_EMAIL,
    DEMO_USER_ROLE,
    authenticate,
    seed_demo_user,
)
from pm_common.database import schema_drift
from pm_common.settings import DEMO_JWT_SECRET

KEY = base64.b64decode(DEMO_JWT_SECRET)
DEMO = {"email": DEMO_USER_EMAIL, "password": "password123"}


async def stored_hash(engine: AsyncEngine, email: str = DEMO_USER_EMAIL) -> str:
    """The password hash stored for email."""
    async with engine.connect() as connection:
        return str(
            (
                await connection.execute(
                    select(users.c.password_hash).where(func.lower(users.c.email) == email.lower())
                )
            ).scalar_one()
        )


async def test_good_login_returns_token_with_the_original_claims(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed_demo_user(engine=engine)
    before = int(time.time())

    response = await client.post("/login", json=DEMO)

    assert response.status_code == 200
    token = response.json()["token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims["sub"] == DEMO_USER_EMAIL
    assert claims["role"] == DEMO_USER_ROLE
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 36_000
    assert set(claims) == {"sub", "role", "iat", "exp"}


async def test_email_is_case_insensitive(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)

    response = await client.post("/login", json={"email": "TestUser@TEST.com", "password": "password123"})

    assert response.status_code == 200
    assert jwt.decode(response.json()["token"], KEY, algorithms=["HS256"])["sub"] == DEMO_USER_EMAIL


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"email": DEMO_USER_EMAIL, "password": "password124"}, id="wrong-password"),
        pytest.param({"email": "nobody@test.com", "password": "password123"}, id="unknown-email"),
        pytest.param({"email": DEMO_USER_EMAIL, "password": "p" * 100}, id="password-over-bcrypt-72-bytes"),
        pytest.param({"email": DEMO_USER_EMAIL, "password": "short"}, id="short-password"),
        pytest.param({"email": DEMO_USER_EMAIL, "password": "x"}, id="one-character-password"),
        pytest.param({"email": DEMO_USER_EMAIL, "password": "\ud800 lone surrogate"}, id="lone-surrogate"),
        pytest.param({"email": DEMO_USER_EMAIL, "password": "pass\x00word123"}, id="nul-character"),
    ],
)
async def test_bad_credentials_give_401_with_one_message(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, str]
) -> None:
    await seed_demo_user(engine=engine)

    # json.dumps escapes lone surrogates as \\ud800 (httpx's own encoder cannot send them).
    response = await client.post("/login", content=json.dumps(body), headers={"content-type": "application/json"})

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid email or password"}


EMAIL_REQUIRED = {"email": "Email is required"}
EMAIL_INVALID = {"email": "Email should be a valid email address"}
PASSWORD_REQUIRED = {"password": "Password is required"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({}, EMAIL_REQUIRED | PASSWORD_REQUIRED, id="both-missing"),
        pytest.param({"email": "", "password": "  "}, EMAIL_REQUIRED | PASSWORD_REQUIRED, id="both-blank"),
        pytest.param({"password": "password123"}, EMAIL_REQUIRED, id="email-missing"),
        pytest.param({"email": "not-an-email", "password": "password123"}, EMAIL_INVALID, id="email-invalid"),
        pytest.param({"email": 42, "password": "password123"}, EMAIL_INVALID, id="email-not-a-string"),
        pytest.param({"email": None, "password": None}, EMAIL_INVALID | PASSWORD_REQUIRED, id="nulls"),
        pytest.param({"email": DEMO_USER_EMAIL}, PASSWORD_REQUIRED, id="password-missing"),
        pytest.param({"email": "\ud800@test.com", "password": "password123"}, EMAIL_INVALID, id="email-surrogate"),
    ],
)
async def test_invalid_fields_give_400_field_map(
    shared_client: httpx.AsyncClient, body: dict[str, Any], errors: dict[str, str]
) -> None:
    response = await shared_client.post(
        "/login", content=json.dumps(body), headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == errors


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b'{"email": "a@b.com", "password": ', "Malformed JSON request", id="truncated"),
        pytest.param(b"not json", "Malformed JSON request", id="text"),
        pytest.param(b"\xff\xfe\x00", "Malformed JSON request", id="bad-utf8"),
        pytest.param(b"[1, 2]", "Request body must be a JSON object", id="array"),
        pytest.param(b"null", "Request body must be a JSON object", id="null"),
        pytest.param(b'"text"', "Request body must be a JSON object", id="string"),
        pytest.param(b"42", "Request body must be a JSON object", id="number"),
        pytest.param(b"", "Request body must be a JSON object", id="empty"),
    ],
)
async def test_malformed_json_gives_400_message(shared_client: httpx.AsyncClient, content: bytes, message: str) -> None:
    response = await shared_client.post("/login", content=content, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {"message": message}


async def test_body_over_one_mebibyte_gives_413(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.post(
        "/login", content=b"{" + b" " * (1024 * 1024) + b"}", headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


async def test_seed_is_idempotent(engine: AsyncEngine) -> None:
    assert await seed_demo_user(engine=engine) is True
    assert await seed_demo_user(engine=engine) is False

    async with engine.connect() as connection:
        count = (await connection.execute(select(func.count()).select_from(users))).scalar_one()
    assert count == 1
    assert await stored_hash(engine) == DEMO_USER_BCRYPT_HASH


async def test_original_bcrypt_hash_verifies_and_is_upgraded_to_argon2(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await seed_demo_user(engine=engine)
    assert (await stored_hash(engine)).startswith("$2b$12$")

    assert (await client.post("/login", json=DEMO)).status_code == 200

    upgraded = await stored_hash(engine)
    assert upgraded.startswith("$argon2id$")
    assert (await client.post("/login", json=DEMO)).status_code == 200
    assert await stored_hash(engine) == upgraded  # argon2 with current parameters is not rehashed
    # A re-seed never overwrites the upgraded hash.
    await seed_demo_user(engine=engine)
    assert await stored_hash(engine) == upgraded


class CountingArgon2(Argon2Hasher):
    """The real argon2 hasher, counting verifications."""

    calls = 0

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        type(self).calls += 1
        return super().verify(password, hash)


class CountingBcrypt(BcryptHasher):
    """The real bcrypt hasher, counting verifications."""

    calls = 0

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        type(self).calls += 1
        return super().verify(password, hash)


@pytest.mark.parametrize(
    ("email", "password", "accepted"),
    [
        pytest.param("nobody@test.com", "password123", False, id="unknown-email"),
        pytest.param(DEMO_USER_EMAIL, "wrong-password", False, id="known-email-wrong-password"),
        pytest.param(DEMO_USER_EMAIL, "password123", True, id="known-email-right-password"),
    ],
)
async def test_every_login_costs_exactly_one_hash_verification(
    engine: AsyncEngine, email: str, password: str, accepted: bool
) -> None:
    await seed_demo_user(engine=engine)
    passwords = Passwords(PasswordHash((CountingArgon2(), CountingBcrypt())))
    CountingArgon2.calls = CountingBcrypt.calls = 0

    principal = await authenticate(engine=engine, passwords=passwords, email=email, password=password)

    assert (principal is not None) is accepted
    assert CountingArgon2.calls + CountingBcrypt.calls == 1


async def test_disabled_user_costs_one_verification_and_is_refused(engine: AsyncEngine) -> None:
    await seed_demo_user(engine=engine)
    async with engine.begin() as connection:
        await connection.execute(update(users).values(disabled=True))
    passwords = Passwords(PasswordHash((CountingArgon2(), CountingBcrypt())))
    CountingArgon2.calls = CountingBcrypt.calls = 0

    principal = await authenticate(engine=engine, passwords=passwords, email=DEMO_USER_EMAIL, password="password123")

    assert principal is None
    assert CountingArgon2.calls + CountingBcrypt.calls == 1
    assert await stored_hash(engine) == DEMO_USER_BCRYPT_HASH  # a refused login upgrades nothing


async def test_unknown_email_takes_as_long_as_a_known_one(engine: AsyncEngine, app: FastAPI) -> None:
    await seed_demo_user(engine=engine)
    passwords: Passwords = app.state.passwords
    # Upgrade the demo user to argon2 first: from then on both paths verify one argon2 hash.
    assert await authenticate(engine=engine, passwords=passwords, email=DEMO_USER_EMAIL, password="password123")

    async def median_seconds(email: str) -> float:
        durations = []
        for _ in range(5):
            started = time.perf_counter()
            await authenticate(engine=engine, passwords=passwords, email=email, password="wrong-password")
            durations.append(time.perf_counter() - started)
        return statistics.median(durations)

    known = await median_seconds(DEMO_USER_EMAIL)
    unknown = await median_seconds("nobody@test.com")

    # Both cost one argon2 verification (tens of ms); without the dummy hash "unknown" would take ~1 ms.
    # The bound is wide because the test machine is shared and noisy.
    assert unknown > known / 3
    assert unknown < known * 3


async def test_migrations_match_the_models(migrated_url: str) -> None:
    assert await schema_drift(migrated_url, metadata) == []
