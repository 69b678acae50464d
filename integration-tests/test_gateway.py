"""api-gateway: its routes, every 401 path (with WWW-Authenticate), api-docs, 404, its own health."""

from __future__ import annotations

import base64
import time

import httpx
import jwt
import pytest
from pm_e2e import api

PROTECTED = [
    pytest.param("GET", "/api/patients", id="patients-list"),
    pytest.param("GET", "/api/patients/6f1c7a4e-1111-4c2b-9d0a-1234567890ab", id="patient-by-id"),
    pytest.param("POST", "/api/patients", id="patient-create"),
    pytest.param("GET", "/api/analytics/summary", id="analytics-summary"),
]
OTHER_KEY = base64.b64encode(b"an-entirely-different-key-of-48-bytes-length!!!!").decode()


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, f"{response.status_code} {response.text[:200]}"
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), dict(response.headers)


def _headers(case: str, secret: str | None) -> dict[str, str]:
    now = int(time.time())
    if case == "no-header":
        return {}
    if case == "basic-scheme":
        return {"Authorization": "Basic dGVzdHVzZXJAdGVzdC5jb206cGFzc3dvcmQxMjM="}
    if case == "bearer-without-token":
        return {"Authorization": "Bearer"}  # httpx refuses a trailing space in a header value
    if case == "token-without-scheme":
        return {"Authorization": api.forge_token(None, key=b"x" * 32)}
    if case == "garbage-token":
        return api.bearer("not.a.jwt")
    if case == "other-key":
        return api.bearer(api.forge_token(OTHER_KEY))
    if case == "alg-none":
        return api.bearer(api.unsigned_token())
    assert secret is not None
    if case == "expired":
        return api.bearer(api.forge_token(secret, iat=now - 7200, exp=now - 60))
    if case == "no-exp":
        return api.bearer(api.forge_token(secret, exp=None))
    if case == "tampered-payload":
        header, _, signature = api.forge_token(secret).split(".")
        claims = base64.urlsafe_b64encode(b'{"sub":"attacker@evil.com","role":"ADMIN","exp":9999999999}')
        return api.bearer(f"{header}.{claims.decode().rstrip('=')}.{signature}")
    raise AssertionError(case)


KEYLESS_CASES = ["no-header", "basic-scheme", "bearer-without-token", "token-without-scheme", "garbage-token"]
KEYLESS_CASES += ["other-key", "alg-none"]
KEYED_CASES = ["expired", "no-exp", "tampered-payload"]  # HS384/HS512: test_access_control.py


@pytest.mark.parametrize("case", KEYLESS_CASES)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_route_refuses_bad_credentials(client: httpx.Client, method: str, path: str, case: str) -> None:
    response = client.request(
        method, path, headers=_headers(case, None), json=api.patient_body() if method == "POST" else None
    )

    assert_401(response)


@pytest.mark.parametrize("case", KEYED_CASES)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_route_refuses_tokens_signed_wrongly_or_expired(
    client: httpx.Client, jwt_secret: str, method: str, path: str, case: str
) -> None:
    response = client.request(
        method, path, headers=_headers(case, jwt_secret), json=api.patient_body() if method == "POST" else None
    )

    assert_401(response)


def test_token_shaped_like_the_originals_is_accepted(client: httpx.Client, jwt_secret: str) -> None:
    """A token with only sub, role, iat, exp signed with the shared key (what the original issued) works."""
    token = jwt.encode(
        {"sub": "testuser@test.com", "role": "ADMIN", "iat": int(time.time()), "exp": int(time.time()) + 600},
        base64.b64decode(jwt_secret),
        algorithm="HS256",
    )

    assert client.get("/api/patients", headers=api.bearer(token)).status_code == 200


def test_refused_request_never_reaches_the_upstream(client: httpx.Client, auth: dict[str, str]) -> None:
    """A create with a bad token must not create: the same email is still free afterwards."""
    body = api.patient_body()

    refused = client.post("/api/patients", json=body, headers=api.bearer(api.forge_token(OTHER_KEY)))
    assert_401(refused)

    assert client.post("/api/patients", json=body, headers=auth).status_code == 201


@pytest.mark.parametrize("service", ["patients", "auth", "analytics"])
def test_api_docs_are_public_openapi_json(client: httpx.Client, service: str) -> None:
    response = client.get(f"/api-docs/{service}")

    assert response.status_code == 200, response.text[:200]
    document = response.json()
    assert str(document.get("openapi", "")).startswith("3."), list(document)
    assert document.get("paths"), "no paths in the OpenAPI document"


@pytest.mark.parametrize(
    ("service", "fragment"), [("patients", "patients"), ("auth", "login"), ("analytics", "summary")]
)
def test_api_docs_describe_that_service(client: httpx.Client, service: str, fragment: str) -> None:
    paths = client.get(f"/api-docs/{service}").json()["paths"]

    assert any(fragment in path for path in paths), sorted(paths)


@pytest.mark.parametrize(
    "path",
    ["/", "/does-not-exist", "/api", "/api/unknown", "/api/billing", "/api-docs/unknown", "/patients", "/analytics"],
)
def test_unrouted_paths_give_404(client: httpx.Client, auth: dict[str, str], path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.get(path, headers=auth).status_code == 404


def test_gateway_health(client: httpx.Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "UP"
