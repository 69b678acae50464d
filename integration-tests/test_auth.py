"""auth-service through the gateway: POST /auth/login, GET /auth/validate, the token's claims."""

from __future__ import annotations

import base64
import statistics
import time

import httpx
import jwt
import pytest
from pm_e2e import api
from pm_e2e.target import SEED_EMAIL, Target


def login(client: httpx.Client, body: object) -> httpx.Response:
    return client.post("/auth/login", json=body)


def test_token_is_hs256_with_sub_role_iat_exp(client: httpx.Client, target: Target) -> None:
    token = login(client, {"email": target.email, "password": target.password}).json()["token"]

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["sub"] == target.email
    assert isinstance(claims["role"], str)
    assert claims["role"]
    assert isinstance(claims["iat"], int)
    assert isinstance(claims["exp"], int)
    assert claims["iat"] <= time.time() + 60
    assert claims["exp"] > time.time()
    if target.email == SEED_EMAIL:
        assert claims["role"] == "ADMIN"


def test_token_verifies_with_the_shared_key(client: httpx.Client, target: Target, jwt_secret: str) -> None:
    token = login(client, {"email": target.email, "password": target.password}).json()["token"]

    claims = jwt.decode(token, base64.b64decode(jwt_secret), algorithms=["HS256"], options={"require": ["exp"]})

    assert claims["sub"] == target.email


def test_wrong_password_gives_401(client: httpx.Client, target: Target) -> None:
    response = login(client, {"email": target.email, "password": target.password + "x"})

    assert response.status_code == 401
    assert "token" not in response.text


def test_unknown_email_gives_401(client: httpx.Client) -> None:
    response = login(client, {"email": api.unique_email("nobody"), "password": "password123"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({}, {"email", "password"}, id="empty-object"),
        pytest.param({"password": "password123"}, {"email"}, id="no-email"),
        pytest.param({"email": SEED_EMAIL}, {"password"}, id="no-password"),
        pytest.param({"email": "not-an-email", "password": "password123"}, {"email"}, id="malformed-email"),
        pytest.param({"email": None, "password": None}, {"email", "password"}, id="nulls"),
    ],
)
def test_missing_or_malformed_login_fields_give_400_field_map(
    client: httpx.Client, body: dict[str, object], fields: set[str]
) -> None:
    response = login(client, body)

    assert response.status_code == 400, response.text
    errors = response.json()
    assert fields <= set(errors), errors
    assert all(isinstance(errors[f], str) and errors[f] for f in fields)


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"email": "testuser@test.com", "password": ', b"not json", b"\xff\xfe\x00"],
    ids=["open-brace", "truncated", "text", "bad-utf8"],
)
def test_malformed_login_json_gives_400_message(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/auth/login", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert isinstance(response.json().get("message"), str)


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"text"', b"42"], ids=["array", "null", "string", "number"])
def test_login_body_that_is_not_an_object_gives_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/auth/login", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400


def test_validate_accepts_a_fresh_token(client: httpx.Client, auth: dict[str, str]) -> None:
    assert client.get("/auth/validate", headers=auth).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic dGVzdDp0ZXN0"}],
    ids=["no-header", "garbage", "basic-scheme"],
)
def test_validate_refuses_missing_or_bad_tokens(client: httpx.Client, headers: dict[str, str]) -> None:
    assert client.get("/auth/validate", headers=headers).status_code == 401


def test_validate_refuses_an_expired_token(client: httpx.Client, jwt_secret: str) -> None:
    expired = api.forge_token(jwt_secret, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)

    assert client.get("/auth/validate", headers=api.bearer(expired)).status_code == 401


def test_unknown_users_take_as_long_as_known_ones(client: httpx.Client, auth: dict[str, str]) -> None:
    """No user enumeration by timing: a wrong password on a known user and an unknown user cost alike."""
    known_email = api.unique_email("timing")  # a user of its own: five failures would throttle the seed user
    created = client.post(
        "/auth/users", headers=auth, json={"email": known_email, "password": "a-long-password-1", "role": "STAFF"}
    )
    assert created.status_code == 201, created.text
    known: list[float] = []
    unknown: list[float] = []
    for _ in range(5):
        for email, bucket in ((known_email, known), (api.unique_email("ghost"), unknown)):
            started = time.perf_counter()
            assert login(client, {"email": email, "password": "wrong-password"}).status_code == 401
            bucket.append(time.perf_counter() - started)

    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    assert unknown_median >= 0.5 * known_median, f"unknown {unknown_median:.3f}s vs known {known_median:.3f}s"
    assert known_median >= 0.5 * unknown_median, f"unknown {unknown_median:.3f}s vs known {known_median:.3f}s"
