"""User management and login throttling through the gateway (auth-service's /users and /login)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from pm_e2e import api
from pm_e2e.target import Target

PASSWORD = "a-good-long-password"


def new_user(client: httpx.Client, auth: dict[str, str], role: str = "STAFF") -> dict[str, str]:
    email = api.unique_email("user")
    response = client.post("/auth/users", headers=auth, json={"email": email, "password": PASSWORD, "role": role})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"id", "email", "role"}
    assert (body["email"], body["role"]) == (email, role)
    return body


@pytest.fixture
def from_own_address(target: Target) -> Iterator[httpx.Client]:
    """A client calling from a loopback address of its own (127.x.y.z), so per-client limits are its own."""
    host = urlsplit(target.base_url).hostname or ""
    if not host.startswith("127.") and host != "localhost":
        pytest.skip("needs a stack on loopback to pick a source address")
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=target.base_url, timeout=api.HTTP_TIMEOUT, transport=transport) as client:
        yield client


def test_an_admin_creates_lists_and_disables_users(client: httpx.Client, auth: dict[str, str]) -> None:
    user = new_user(client, auth)
    login = client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert login.status_code == 200

    listed = client.get("/auth/users", headers=auth)
    assert listed.status_code == 200
    mine = [u for u in listed.json() if u["id"] == user["id"]]
    assert len(mine) == 1
    assert not {"password", "passwordHash", "password_hash", "hash"} & set(mine[0])
    assert "$argon2" not in listed.text
    assert "$2b$" not in listed.text

    patched = client.patch(f"/auth/users/{user['id']}", headers=auth, json={"disabled": True, "role": "ANALYST"})
    assert patched.status_code == 200
    assert (patched.json()["role"], patched.json()["disabled"]) == ("ANALYST", True)
    refused = client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    wrong = client.post("/auth/login", json={"email": user["email"], "password": "not-the-password"})
    assert (refused.status_code, refused.json()) == (401, wrong.json())


def test_a_taken_email_is_409_whatever_its_case(client: httpx.Client, auth: dict[str, str]) -> None:
    user = new_user(client, auth)
    again = client.post(
        "/auth/users", headers=auth, json={"email": user["email"].upper(), "password": PASSWORD, "role": "STAFF"}
    )
    assert again.status_code == 409
    assert set(again.json()) == {"message"}


@pytest.mark.parametrize("password", ["short-pass", "SAME"], ids=["under-12", "the-email"])
def test_new_passwords_follow_the_policy(client: httpx.Client, auth: dict[str, str], password: str) -> None:
    email = api.unique_email("policy")
    chosen = email.upper() if password == "SAME" else password
    response = client.post("/auth/users", headers=auth, json={"email": email, "password": chosen, "role": "STAFF"})
    assert response.status_code == 400
    assert "password" in response.json()


@pytest.mark.parametrize("role", ["STAFF", "ANALYST", "PATIENT"])
def test_only_an_admin_manages_users(client: httpx.Client, jwt_secret: str, role: str) -> None:
    headers = api.bearer(api.forge_token(jwt_secret, role=role))
    assert client.get("/auth/users", headers=headers).status_code == 403
    body = {"email": api.unique_email("nope"), "password": PASSWORD, "role": "ADMIN"}
    assert client.post("/auth/users", headers=headers, json=body).status_code == 403
    assert client.get("/auth/users").status_code == 401


def test_five_failures_throttle_an_account_even_with_the_right_password(
    from_own_address: httpx.Client, client: httpx.Client, auth: dict[str, str]
) -> None:
    user = new_user(client, auth)
    for _ in range(5):
        wrong = from_own_address.post("/auth/login", json={"email": user["email"], "password": "wrong-password"})
        assert wrong.status_code == 401
    throttled = from_own_address.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 15 * 60
    assert set(throttled.json()) == {"message"}
    ghost = api.unique_email("ghost")  # an unknown email: the same answers, so 429 tells nothing
    answers = [
        from_own_address.post("/auth/login", json={"email": ghost, "password": "x"}).status_code for _ in range(6)
    ]
    assert answers == [401] * 5 + [429]


def test_thirty_attempts_a_minute_per_client_address(from_own_address: httpx.Client) -> None:
    answers = [
        from_own_address.post("/auth/login", json={"email": api.unique_email("flood"), "password": "x"})
        for _ in range(31)
    ]
    assert [a.status_code for a in answers[:30]] == [401] * 30
    assert answers[30].status_code == 429
    assert 0 < int(answers[30].headers["retry-after"]) <= 60
