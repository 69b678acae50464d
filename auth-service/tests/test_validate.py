"""GET /validate: 200 for a valid bearer token, 401 (with WWW-Authenticate) for everything else."""

from __future__ import annotations

import base64
import time
import warnings

import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token

KEY = base64.b64decode(DEMO_JWT_SECRET)
OTHER_KEY = b"another-key-that-is-at-least-32-bytes-long"


def token(claims: dict[str, object] | None = None, *, key: bytes = KEY, algorithm: str = "HS256") -> str:
    """A token for testuser with a future exp unless claims say otherwise."""
    now = int(time.time())
    payload = {"sub": "testuser@test.com", "role": "ADMIN", "iat": now, "exp": now + 600, **(claims or {})}
    with warnings.catch_warnings():
        # HS384/HS512 with our 51-byte key is "short" for PyJWT: irrelevant to these tests.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, key, algorithm=algorithm)


def unsigned_token() -> str:
    """A token with alg none (header and claims only, empty signature)."""
    now = int(time.time())

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(b'{"alg":"none","typ":"JWT"}')
    claims = part(f'{{"sub":"testuser@test.com","role":"ADMIN","iat":{now},"exp":{now + 600}}}'.encode())
    return f"{header}.{claims}."


async def test_token_issued_at_login_validates(shared_client: httpx.AsyncClient) -> None:
    issued = issue_token(key=KEY, email="testuser@test.com", role="ADMIN", lifetime_seconds=600)

    response = await shared_client.get("/validate", headers={"Authorization": f"Bearer {issued}"})

    assert response.status_code == 200


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("role", ["ADMIN", "STAFF", "ANALYST", "SERVICE", "SOMETHING-ELSE"])
async def test_any_hmac_algorithm_and_any_role_validate(
    shared_client: httpx.AsyncClient, algorithm: str, role: str
) -> None:
    response = await shared_client.get(
        "/validate", headers={"Authorization": f"Bearer {token({'role': role}, algorithm=algorithm)}"}
    )

    assert response.status_code == 200


async def test_token_from_a_clock_slightly_ahead_validates(shared_client: httpx.AsyncClient) -> None:
    ahead = token({"iat": int(time.time()) + 60})

    response = await shared_client.get("/validate", headers={"Authorization": f"Bearer {ahead}"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(None, "Bearer", id="missing-header"),
        pytest.param("Bearer", "Bearer", id="scheme-only"),
        pytest.param(f"Basic {token()}", "Bearer", id="other-scheme"),
        pytest.param(f"Token {token()}", "Bearer", id="token-scheme"),
        pytest.param("Bearer not.a.jwt", 'Bearer error="invalid_token"', id="garbage"),
        pytest.param(f"Bearer {token(key=OTHER_KEY)}", 'Bearer error="invalid_token"', id="wrong-key"),
        pytest.param(f"Bearer {token({'exp': int(time.time()) - 10})}", 'Bearer error="invalid_token"', id="expired"),
        pytest.param(f"Bearer {unsigned_token()}", 'Bearer error="invalid_token"', id="alg-none"),
        pytest.param(
            f"Bearer {jwt.encode({'sub': 'testuser@test.com'}, KEY, algorithm='HS256')}",
            'Bearer error="invalid_token"',
            id="no-exp",
        ),
    ],
)
async def test_invalid_or_missing_token_gives_401(
    shared_client: httpx.AsyncClient, authorization: str | None, challenge: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = await shared_client.get("/validate", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert "message" in response.json()


async def test_health_reports_database_up(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "UP", "checks": {"database": "UP"}}


async def test_openapi_json_is_served(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.get("/openapi.json")

    assert response.status_code == 200
    assert {"/login", "/validate", "/health"} <= set(response.json()["paths"])


async def test_unknown_path_gives_404_message(shared_client: httpx.AsyncClient) -> None:
    response = await shared_client.get("/nope")

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
