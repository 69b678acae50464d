"""Access control at the edge, through a real gateway in front of the echo upstream: which tokens are
accepted, and every cell of the role table (pm_common.access) for /api/patients and /api/analytics."""

from __future__ import annotations

import base64
import time
import uuid
import warnings
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from pm_common.auth import FORBIDDEN_MESSAGE
from pm_common.settings import DEMO_JWT_SECRET

KEY = base64.b64decode(DEMO_JWT_SECRET)
KEY_48 = bytes(range(48))  # the original (jjwt) signs HS384 with a 48-byte key
KEY_64 = bytes(range(64))  # and HS512 with a 64-byte one


def token(role: str | None = "ADMIN", *, key: Any = KEY, algorithm: str = "HS256", sub: str = "a@test.com") -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + 600}
    if role is not None:
        claims["role"] = role
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


# -- which tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "algorithm"), [(KEY_48, "HS384"), (KEY_64, "HS512"), (KEY_64, "HS256")])
async def test_the_hmac_family_is_accepted(gateway_factory: Any, key: bytes, algorithm: str) -> None:
    secret = base64.b64encode(key).decode()
    async with gateway_factory(jwt_secret=secret) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/api/patients", headers=bearer(token("STAFF", key=key, algorithm=algorithm)))

    assert response.status_code == 200
    assert response.json()["path"] == "/patients"


def _unsigned(alg: str) -> str:
    header = base64.urlsafe_b64encode(f'{{"alg":"{alg}","typ":"JWT"}}'.encode()).rstrip(b"=").decode()
    return header + "." + token().split(".")[1] + "."


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"),
                     id="rs256"),
        pytest.param(token(key=ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"), id="es256"),
        pytest.param(_unsigned("none"), id="none"),
        pytest.param(token(key=b"another-key-of-at-least-32-bytes!!"), id="mismatched-key"),
        pytest.param(token(key=KEY_64, algorithm="HS512"), id="hs512-mismatched-key"),
    ],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 vs a 51-byte key
async def test_other_algorithms_and_keys_get_401(echo_client: httpx.AsyncClient, echo: Any, value: str) -> None:
    request_id = f"tkey-{uuid.uuid4().hex}"

    response = await echo_client.get("/api/patients", headers={**bearer(value), "X-Request-ID": request_id})

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid token"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert request_id not in echo.seen_request_ids()


async def test_missing_token_gets_401_with_a_plain_challenge(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.get("/api/analytics")

    assert response.status_code == 401
    assert response.json() == {"message": "Missing bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


# -- the role table ---------------------------------------------------------------------------------

ROLES = ("ADMIN", "STAFF", "ANALYST", "PATIENT")
# Who may, as pm_common.access says it (written out here, so that a change of the table shows in a test).
MAY = {
    ("/api/patients", "GET"): {"ADMIN", "STAFF"},
    ("/api/patients", "POST"): {"ADMIN", "STAFF"},
    ("/api/patients", "PUT"): {"ADMIN", "STAFF"},
    ("/api/patients", "PATCH"): {"ADMIN", "STAFF"},
    ("/api/patients", "DELETE"): {"ADMIN"},
    ("/api/analytics", "GET"): {"ADMIN", "STAFF", "ANALYST"},
    # The FHIR view of the patients: the same row of the table.
    ("/fhir/Patient", "GET"): {"ADMIN", "STAFF"},
    ("/fhir/Patient", "PUT"): {"ADMIN", "STAFF"},
    ("/fhir/Patient", "DELETE"): {"ADMIN"},
}
CELLS = [(path, method, role) for (path, method) in MAY for role in ROLES]


@pytest.mark.parametrize(("path", "method", "role"), CELLS, ids=[f"{m}-{p}-{r}" for p, m, r in CELLS])
async def test_role_table(echo_client: httpx.AsyncClient, echo: Any, path: str, method: str, role: str) -> None:
    request_id = f"trole-{uuid.uuid4().hex}"
    value = token(role)

    response = await echo_client.request(method, f"{path}/p-1", headers={**bearer(value), "X-Request-ID": request_id})

    if role in MAY[(path, method)]:
        assert response.status_code == 200
        received = dict(response.json()["headers"])
        assert received["authorization"] == f"Bearer {value}"  # passed on unchanged: the service checks too
        assert (received["x-user-email"], received["x-user-role"]) == ("a@test.com", role)
    else:
        assert response.status_code == 403
        assert response.json() == {"message": FORBIDDEN_MESSAGE}
        assert "www-authenticate" not in response.headers
        assert request_id not in echo.seen_request_ids()


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/api/patients", "/api/analytics/summary"])
async def test_a_token_without_a_known_role_gets_403_everywhere(
    echo_client: httpx.AsyncClient, path: str, method: str
) -> None:
    for value in (token(None), token("PATIENT"), token("admin")):
        response = await echo_client.request(method, path, headers=bearer(value))

        assert response.status_code == 403
        assert response.json() == {"message": FORBIDDEN_MESSAGE}


async def test_a_method_outside_the_table_goes_to_the_service(echo_client: httpx.AsyncClient) -> None:
    # The service answers 405 for what it does not serve; the gateway does not decide that.
    response = await echo_client.options("/api/patients/p-1", headers=bearer(token("ANALYST")))

    assert response.status_code == 200
    assert response.json()["method"] == "OPTIONS"


async def test_head_follows_get(echo_client: httpx.AsyncClient) -> None:
    assert (await echo_client.head("/api/patients", headers=bearer(token("STAFF")))).status_code == 200
    assert (await echo_client.head("/api/patients", headers=bearer(token("ANALYST")))).status_code == 403


async def test_auth_routes_need_no_token_at_the_gateway(echo_client: httpx.AsyncClient) -> None:
    # auth-service checks /users itself (users:manage); the gateway only passes the token on.
    value = token("ANALYST")

    response = await echo_client.post("/auth/users", json={}, headers=bearer(value))

    assert response.status_code == 200
    received = dict(response.json()["headers"])
    assert received["authorization"] == f"Bearer {value}"
    assert "x-user-email" not in received
