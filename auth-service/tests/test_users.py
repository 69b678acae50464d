"""/users against real PostgreSQL: ADMIN only, create (policy, 409), list (no hashes), PATCH role/disabled."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.models import users
from auth_service.auth.service import DEMO_USER_EMAIL, DEMO_USER_ID, seed_demo_user
from pm_common.idempotency import request_hash

Bearer = Callable[..., dict[str, str]]

PASSWORD = "correct horse battery staple"
NEW_USER = {"email": "Staff.Member@Test.com", "password": PASSWORD, "role": "STAFF"}
WRONG_PASSWORD = {"message": "Invalid email or password"}


async def create(client: httpx.AsyncClient, bearer: Bearer, **fields: Any) -> httpx.Response:
    """POST /users as an ADMIN with NEW_USER overridden by fields (json.dumps: it can send lone surrogates)."""
    headers = {**bearer("ADMIN"), "content-type": "application/json"}
    return await client.post("/users", content=json.dumps({**NEW_USER, **fields}), headers=headers)


async def test_admin_creates_a_user_who_can_log_in(client: httpx.AsyncClient, bearer: Bearer) -> None:
    response = await create(client, bearer)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "role"}
    assert body["email"] == NEW_USER["email"]
    assert body["role"] == "STAFF"
    uuid.UUID(body["id"])
    login = await client.post("/login", json={"email": "staff.member@test.com", "password": PASSWORD})
    assert login.status_code == 200


async def test_new_password_is_stored_as_argon2(client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine) -> None:
    user_id = (await create(client, bearer)).json()["id"]

    async with engine.connect() as connection:
        stored = (await connection.execute(select(users.c.password_hash).where(users.c.id == user_id))).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # OWASP's argon2id configuration
    assert PASSWORD not in stored


@pytest.mark.parametrize("email", [DEMO_USER_EMAIL, "TESTUSER@TEST.COM", "TestUser@test.com"])
async def test_taken_email_gives_409_without_regard_to_case(
    client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine, email: str
) -> None:
    await seed_demo_user(engine=engine)

    response = await create(client, bearer, email=email)

    assert response.status_code == 409
    assert response.json() == {"message": "A user with this email already exists"}


ROLE_MESSAGE = "Role must be one of ADMIN, STAFF, ANALYST"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        pytest.param(
            {"password": "eleven chrs"}, {"password": "Password must be at least 12 characters long"}, id="11"
        ),
        pytest.param({"password": "short"}, {"password": "Password must be at least 12 characters long"}, id="short"),
        pytest.param(
            {"email": "someone.long@test.com", "password": "SomeOne.Long@TEST.com"},
            {"password": "Password must not be the email address"},
            id="password-is-the-email",
        ),
        pytest.param({"password": "   "}, {"password": "Password is required"}, id="password-blank"),
        pytest.param({"password": None}, {"password": "Password is required"}, id="password-null"),
        pytest.param(
            {"password": "\ud800" * 12}, {"password": "Password contains invalid characters"}, id="password-surrogates"
        ),
        pytest.param({"email": "not-an-email"}, {"email": "Email should be a valid email address"}, id="email-invalid"),
        pytest.param({"email": ""}, {"email": "Email is required"}, id="email-blank"),
        pytest.param({"email": 42}, {"email": "Email should be a valid email address"}, id="email-number"),
        pytest.param({"role": "SERVICE"}, {"role": ROLE_MESSAGE}, id="role-service"),
        pytest.param({"role": "SUPERUSER"}, {"role": ROLE_MESSAGE}, id="role-unknown"),
        pytest.param({"role": "admin"}, {"role": ROLE_MESSAGE}, id="role-lower-case"),
        pytest.param({"role": None}, {"role": ROLE_MESSAGE}, id="role-null"),
        pytest.param({"role": ["ADMIN"]}, {"role": ROLE_MESSAGE}, id="role-list"),
    ],
)
async def test_invalid_new_user_gives_400_field_map(
    client: httpx.AsyncClient, bearer: Bearer, fields: dict[str, Any], errors: dict[str, str]
) -> None:
    response = await create(client, bearer, **fields)

    assert response.status_code == 400
    assert response.json() == errors


async def test_empty_new_user_names_every_field(client: httpx.AsyncClient, bearer: Bearer) -> None:
    response = await client.post("/users", json={}, headers=bearer("ADMIN"))

    assert response.status_code == 400
    assert response.json() == {
        "email": "Email is required",
        "password": "Password is required",
        "role": "Role is required",
    }


CALLS = [
    pytest.param("POST", "/users", NEW_USER, id="create"),
    pytest.param("GET", "/users", None, id="list"),
    pytest.param("PATCH", f"/users/{DEMO_USER_ID}", {"role": "STAFF"}, id="update"),
]


@pytest.mark.parametrize("role", ["STAFF", "ANALYST", "SERVICE", "SOMETHING-ELSE"])
@pytest.mark.parametrize(("method", "path", "body"), CALLS)
async def test_other_roles_get_403(
    shared_client: httpx.AsyncClient, bearer: Bearer, role: str, method: str, path: str, body: Any
) -> None:
    response = await shared_client.request(method, path, json=body, headers=bearer(role))

    assert response.status_code == 403
    assert response.json() == {"message": "Your role may not do this"}


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(None, "Bearer", id="no-token"),
        pytest.param("Basic dXNlcjpwYXNz", "Bearer", id="other-scheme"),
        pytest.param("Bearer not.a.jwt", 'Bearer error="invalid_token"', id="invalid-token"),
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), CALLS)
async def test_no_valid_token_gives_401(
    shared_client: httpx.AsyncClient, authorization: str | None, challenge: str, method: str, path: str, body: Any
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = await shared_client.request(method, path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert "message" in response.json()


async def test_401_comes_before_body_validation(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.post("/users", json={"email": "bad"})

    assert response.status_code == 401


async def test_list_gives_users_oldest_first_without_hashes(
    client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine
) -> None:
    await seed_demo_user(engine=engine)
    created = (await create(client, bearer)).json()
    analyst = (await create(client, bearer, email="analyst@test.com", role="ANALYST")).json()

    response = await client.get("/users", headers=bearer("ADMIN"))

    assert response.status_code == 200
    listed = response.json()
    assert [user["id"] for user in listed] == [str(DEMO_USER_ID), created["id"], analyst["id"]]
    assert all(set(user) == {"id", "email", "role", "disabled", "createdAt"} for user in listed)
    assert listed[0] | {"createdAt": None} == {
        "id": str(DEMO_USER_ID),
        "email": DEMO_USER_EMAIL,
        "role": "ADMIN",
        "disabled": False,
        "createdAt": None,
    }
    assert "$2b$" not in response.text
    assert "$argon2" not in response.text
    assert "hash" not in response.text.lower()


async def test_patch_changes_role_and_the_next_token_carries_it(
    client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine
) -> None:
    await seed_demo_user(engine=engine)
    user_id = (await create(client, bearer)).json()["id"]

    response = await client.patch(f"/users/{user_id}", json={"role": "ANALYST"}, headers=bearer("ADMIN"))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "email", "role", "disabled", "createdAt"}
    assert (body["id"], body["role"], body["disabled"]) == (user_id, "ANALYST", False)
    login = await client.post("/login", json={"email": NEW_USER["email"], "password": PASSWORD})
    assert login.status_code == 200
    assert unverified_claims(login.json()["token"])["role"] == "ANALYST"


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token, unverified."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_disabled_user_gets_the_wrong_password_answer_until_enabled(
    client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine
) -> None:
    await seed_demo_user(engine=engine)
    user_id = (await create(client, bearer)).json()["id"]
    credentials = {"email": NEW_USER["email"], "password": PASSWORD}

    disabled = await client.patch(f"/users/{user_id}", json={"disabled": True}, headers=bearer("ADMIN"))
    refused = await client.post("/login", json=credentials)
    wrong = await client.post("/login", json={**credentials, "password": "not the password"})
    enabled = await client.patch(f"/users/{user_id}", json={"disabled": False}, headers=bearer("ADMIN"))
    accepted = await client.post("/login", json=credentials)

    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert (refused.status_code, refused.json()) == (401, WRONG_PASSWORD)
    assert (wrong.status_code, wrong.json()) == (401, WRONG_PASSWORD)
    assert set(refused.headers) == set(wrong.headers)
    assert enabled.json()["disabled"] is False
    assert accepted.status_code == 200


async def test_patch_both_fields_at_once(client: httpx.AsyncClient, bearer: Bearer) -> None:
    user_id = (await create(client, bearer)).json()["id"]

    response = await client.patch(
        f"/users/{user_id}", json={"role": "ADMIN", "disabled": True}, headers=bearer("ADMIN")
    )

    assert response.status_code == 200
    assert (response.json()["role"], response.json()["disabled"]) == ("ADMIN", True)


async def test_patch_unknown_user_gives_404(client: httpx.AsyncClient, bearer: Bearer) -> None:
    response = await client.patch(f"/users/{uuid.uuid4()}", json={"disabled": True}, headers=bearer("ADMIN"))

    assert response.status_code == 404
    assert response.json() == {"message": "User not found"}


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        pytest.param("/users/not-a-uuid", {"role": "STAFF"}, {"message": "User id must be a UUID"}, id="bad-id"),
        pytest.param("/users/123", {"role": "STAFF"}, {"message": "User id must be a UUID"}, id="numeric-id"),
        pytest.param(
            f"/users/{DEMO_USER_ID}",
            {},
            {"message": "Nothing to change: give role and/or disabled"},
            id="empty-body",
        ),
        pytest.param(
            f"/users/{DEMO_USER_ID}",
            {"role": "STAFF", "email": "x@test.com"},
            {"email": "Extra inputs are not permitted"},
            id="unknown-field",
        ),
        pytest.param(
            f"/users/{DEMO_USER_ID}",
            {"password": "a new long password"},
            {"password": "Extra inputs are not permitted"},
            id="password-not-patchable",
        ),
        pytest.param(f"/users/{DEMO_USER_ID}", {"role": "SERVICE"}, {"role": ROLE_MESSAGE}, id="role-service"),
        pytest.param(f"/users/{DEMO_USER_ID}", {"role": None}, {"role": ROLE_MESSAGE}, id="role-null"),
        pytest.param(
            f"/users/{DEMO_USER_ID}",
            {"disabled": "yes"},
            {"disabled": "Disabled must be true or false"},
            id="disabled-string",
        ),
        pytest.param(
            f"/users/{DEMO_USER_ID}", {"disabled": 1}, {"disabled": "Disabled must be true or false"}, id="disabled-1"
        ),
        pytest.param(
            f"/users/{DEMO_USER_ID}",
            {"disabled": None},
            {"disabled": "Disabled must be true or false"},
            id="disabled-null",
        ),
        pytest.param(f"/users/{DEMO_USER_ID}", [1], {"message": "Request body must be a JSON object"}, id="array"),
    ],
)
async def test_bad_patch_gives_400(
    shared_client: httpx.AsyncClient, bearer: Bearer, path: str, body: Any, answer: dict[str, str]
) -> None:
    response = await shared_client.patch(path, json=body, headers=bearer("ADMIN"))

    assert response.status_code == 400
    assert response.json() == answer


@pytest.mark.parametrize(
    "change", [{"disabled": True}, {"role": "STAFF"}, {"role": "ANALYST", "disabled": False}], ids=str
)
async def test_last_enabled_admin_cannot_be_disabled_or_demoted(
    client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine, change: dict[str, Any]
) -> None:
    await seed_demo_user(engine=engine)
    # Another ADMIN who is disabled does not count.
    other = (await create(client, bearer, email="admin2@test.com", role="ADMIN")).json()["id"]
    await client.patch(f"/users/{other}", json={"disabled": True}, headers=bearer("ADMIN"))
    admin = bearer("ADMIN", email=DEMO_USER_EMAIL)

    refused = await client.patch(f"/users/{DEMO_USER_ID}", json=change, headers=admin)
    unchanged = await client.patch(f"/users/{DEMO_USER_ID}", json={"role": "ADMIN", "disabled": False}, headers=admin)
    await client.patch(f"/users/{other}", json={"disabled": False}, headers=admin)
    allowed = await client.patch(f"/users/{DEMO_USER_ID}", json=change, headers=admin)

    assert refused.status_code == 409
    assert refused.json() == {"message": "The last enabled ADMIN cannot be disabled or demoted"}
    assert unchanged.status_code == 200
    assert allowed.status_code == 200


async def test_openapi_lists_the_user_routes(shared_client: httpx.AsyncClient) -> None:
    paths = (await shared_client.get("/openapi.json")).json()["paths"]

    assert set(paths["/users"]) == {"get", "post"}
    assert set(paths["/users/{id}"]) == {"patch"}


async def test_an_idempotency_key_makes_a_retried_create_safe(
    client: httpx.AsyncClient, bearer: Bearer, engine: AsyncEngine
) -> None:
    headers = {**bearer("ADMIN"), "Idempotency-Key": "create-staff-1"}
    first = await client.post("/users", json=NEW_USER, headers=headers)
    again = await client.post("/users", json=NEW_USER, headers=headers)
    other = await client.post("/users", json={**NEW_USER, "role": "ANALYST"}, headers=headers)

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    async with engine.connect() as connection:
        stored = (await connection.execute(select(users.c.id).where(users.c.email == NEW_USER["email"]))).all()
    assert len(stored) == 1
    async with engine.connect() as connection:
        fingerprint = (await connection.execute(text("SELECT request_hash FROM idempotency_keys"))).scalar_one()
    # Keyed with the service's secret: a plain hash of the body (which holds the password) would match this.
    assert fingerprint != request_hash("POST", "/users", {**NEW_USER})
