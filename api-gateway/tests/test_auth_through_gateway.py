"""Black-box through a real gateway: login against a real auth-service, and every 401 of a JWT route."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from pm_common.settings import DEMO_JWT_SECRET

KEY = base64.b64decode(DEMO_JWT_SECRET)
DEMO = {"email": "testuser@test.com", "password": "password123"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "testuser@test.com", "role": "ADMIN", "iat": now, "exp": now + 600, **overrides}


NONE_HEADER = b'{"alg":"none","typ":"JWT"}'


def alg_none_token() -> str:
    return f"{b64(NONE_HEADER)}.{b64(json.dumps(claims()).encode())}."


async def login(client: httpx.AsyncClient) -> str:
    response = await client.post("/auth/login", json=DEMO)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def test_login_through_the_gateway_returns_a_token(client: httpx.AsyncClient) -> None:
    token = await login(client)

    decoded = jwt.decode(token, KEY, algorithms=["HS256"])
    assert decoded["sub"] == "testuser@test.com"
    assert decoded["role"] == "ADMIN"
    assert decoded["exp"] - decoded["iat"] == 36_000


async def test_token_from_login_opens_the_patient_route(client: httpx.AsyncClient) -> None:
    token = await login(client)

    response = await client.get("/api/patients", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json()["path"] == "/patients"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"email": "testuser@test.com", "password": "wrong-password"}, id="wrong-password"),
        pytest.param({"email": "nobody@test.com", "password": "password123"}, id="unknown-email"),
    ],
)
async def test_bad_login_gives_401(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/auth/login", json=body)

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid email or password"}


async def test_invalid_login_gives_400_field_map(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", json={"email": "not-an-email", "password": "short"})

    assert response.status_code == 400
    # auth-service's field map passes through the gateway as it is (which fields it checks is its own).
    assert response.json()["email"] == "Email should be a valid email address"


async def test_malformed_json_login_gives_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", content=b"{nope", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert "message" in response.json()


async def test_validate_through_the_gateway(client: httpx.AsyncClient) -> None:
    token = await login(client)

    assert (await client.get("/auth/validate", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await client.get("/auth/validate")).status_code == 401
    assert (await client.get("/auth/validate", headers={"Authorization": "Bearer x.y.z"})).status_code == 401


WRONG_KEY = b"a-different-key-of-at-least-32-bytes!!"
INVALID = 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(None, "Bearer", id="missing-header"),
        pytest.param("Basic dGVzdHVzZXJAdGVzdC5jb206cGFzc3dvcmQxMjM=", "Bearer", id="other-scheme"),
        pytest.param(f"Token {jwt.encode(claims(), KEY, algorithm='HS256')}", "Bearer", id="token-scheme"),
        pytest.param("Bearer garbage", INVALID, id="garbage"),
        pytest.param(
            f"Bearer {jwt.encode(claims(), WRONG_KEY, algorithm='HS256')}",
            INVALID,
            id="wrong-key",
        ),
        pytest.param(
            f"Bearer {jwt.encode(claims(exp=int(time.time()) - 1), KEY, algorithm='HS256')}",
            INVALID,
            id="expired",
        ),
        pytest.param(f"Bearer {alg_none_token()}", INVALID, id="alg-none"),
    ],
)
@pytest.mark.parametrize("path", ["/api/patients", "/api/patients/some-id?x=1", "/api/analytics/summary"])
async def test_every_401_case_stops_at_the_gateway(
    client: httpx.AsyncClient, echo: Any, authorization: str | None, challenge: str, path: str
) -> None:
    request_id = f"t401-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = await client.post(path, headers=headers, json={"name": "never forwarded"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["x-request-id"] == request_id
    assert set(response.json()) == {"message"}
    assert request_id not in echo.seen_request_ids()


async def test_api_docs_auth_is_the_auth_service_openapi(client: httpx.AsyncClient) -> None:
    response = await client.get("/api-docs/auth")

    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "auth-service"
    assert {"/login", "/validate"} <= set(document["paths"])
