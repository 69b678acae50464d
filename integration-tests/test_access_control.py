"""Access control, black-box: every cell of the role table through the gateway and on the services' own ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pm_e2e import api
from pm_e2e.target import Target

ROLES = ["ADMIN", "STAFF", "ANALYST", "PATIENT"]
# The README's table: which role may do which call (PATIENT stands for any role outside the table).
MAY = {
    "list": {"ADMIN", "STAFF"},
    "read": {"ADMIN", "STAFF"},
    "create": {"ADMIN", "STAFF"},
    "update": {"ADMIN", "STAFF"},
    "delete": {"ADMIN"},
    "analytics": {"ADMIN", "STAFF", "ANALYST"},
}
Headers = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def as_role(jwt_secret: str) -> Headers:
    """Authorization headers of a valid token with the given role (and algorithm)."""

    def headers(role: str, *, algorithm: str = "HS256", sub: str | None = None) -> dict[str, str]:
        return api.bearer(api.forge_token(jwt_secret, algorithm=algorithm, role=role, sub=sub or f"{role.lower()}@it"))

    return headers


Api = tuple[httpx.Client, str]


def _entrance(where: str, target: Target, client: httpx.Client, paths: dict[str, str]) -> Iterator[Api]:
    """A client and the path to use: the gateway's, or the service's own port (skipped when unknown)."""
    if where == "gateway":
        yield client, paths["gateway"]
        return
    url = target.direct.get(where)
    if url is None:
        pytest.skip(f"{where}'s own port is unknown (INTEGRATION_<SERVICE>_URL)")
    with httpx.Client(base_url=url, timeout=api.HTTP_TIMEOUT) as direct:
        yield direct, paths[where]


@pytest.fixture(scope="session", params=["gateway", "patient-service"])
def patients(request: pytest.FixtureRequest, target: Target, client: httpx.Client) -> Iterator[Api]:
    """The patient API: through the gateway, then on patient-service's own port."""
    yield from _entrance(request.param, target, client, {"gateway": "/api/patients", "patient-service": "/patients"})


@pytest.fixture(scope="session", params=["gateway", "analytics-service"])
def analytics(request: pytest.FixtureRequest, target: Target, client: httpx.Client) -> Iterator[Api]:
    """The analytics summary: through the gateway, then on analytics-service's own port."""
    paths = {"gateway": "/api/analytics/summary", "analytics-service": "/analytics/summary"}
    yield from _entrance(request.param, target, client, paths)


def expect(role: str, action: str, response: httpx.Response, allowed_status: int) -> None:
    if role in MAY[action]:
        assert response.status_code == allowed_status, f"{role} {action}: {response.status_code} {response.text[:200]}"
    else:
        assert response.status_code == 403, f"{role} {action}: {response.status_code} {response.text[:200]}"
        assert set(response.json()) == {"message"}


@pytest.mark.parametrize("role", ROLES)
def test_reading_patients(patients: Api, as_role: Headers, role: str) -> None:
    http, prefix = patients
    patient_id = http.post(prefix, headers=as_role("ADMIN"), json=api.patient_body()).json()["id"]

    expect(role, "list", http.get(prefix, headers=as_role(role)), 200)
    expect(role, "read", http.get(f"{prefix}/{patient_id}", headers=as_role(role)), 200)


@pytest.mark.parametrize("role", ROLES)
def test_writing_patients(patients: Api, as_role: Headers, role: str) -> None:
    http, prefix = patients
    create = http.post(prefix, headers=as_role(role), json=api.patient_body())
    expect(role, "create", create, 201)
    target_id = (
        create.json()["id"]
        if create.status_code == 201
        else http.post(prefix, headers=as_role("ADMIN"), json=api.patient_body()).json()["id"]
    )

    update = http.put(f"{prefix}/{target_id}", headers=as_role(role), json=api.patient_body())
    expect(role, "update", update, 200)

    delete = http.delete(f"{prefix}/{target_id}", headers=as_role(role))
    expect(role, "delete", delete, 204)
    still_there = http.get(f"{prefix}/{target_id}", headers=as_role("ADMIN")).status_code
    assert still_there == (404 if role in MAY["delete"] else 200)


@pytest.mark.parametrize("role", ROLES)
def test_reading_analytics(analytics: Api, as_role: Headers, role: str) -> None:
    http, path = analytics
    expect(role, "analytics", http.get(path, headers=as_role(role)), 200)


def test_a_token_without_a_role_may_do_nothing(client: httpx.Client, jwt_secret: str) -> None:
    headers = api.bearer(api.forge_token(jwt_secret, role=None))
    assert client.get("/api/patients", headers=headers).status_code == 403
    assert client.get("/api/analytics/summary", headers=headers).status_code == 403
    assert client.get("/auth/validate", headers=headers).status_code == 200  # valid, whatever it may do


def test_a_role_outside_the_table_still_validates(client: httpx.Client, as_role: Headers) -> None:
    assert client.get("/auth/validate", headers=as_role("PATIENT")).status_code == 200


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("where", ["gateway", "patient-service"])
def test_the_hmac_family_is_accepted(
    client: httpx.Client, target: Target, as_role: Headers, algorithm: str, where: str
) -> None:
    """The original's auth-service (jjwt) signs HS384 or HS512 when its key is 48 or 64 bytes long."""
    base = target.base_url if where == "gateway" else target.direct.get(where)
    if base is None:
        pytest.skip(f"{where}'s own port is unknown")
    path = "/api/patients" if where == "gateway" else "/patients"
    response = httpx.get(base + path, headers=as_role("STAFF", algorithm=algorithm), timeout=api.HTTP_TIMEOUT)
    assert response.status_code == 200, response.text[:200]


def _asymmetric_token(algorithm: str) -> str:
    import jwt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm.startswith("RS") else None
    private = key or ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode({"sub": "attacker@it", "role": "ADMIN", "exp": 9_999_999_999}, pem, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
@pytest.mark.parametrize("where", ["gateway", "patient-service", "analytics-service"])
def test_other_algorithms_are_refused(target: Target, algorithm: str, where: str) -> None:
    base = target.base_url if where == "gateway" else target.direct.get(where)
    if base is None:
        pytest.skip(f"{where}'s own port is unknown")
    path = {"gateway": "/api/patients", "patient-service": "/patients", "analytics-service": "/analytics/summary"}
    response = httpx.get(base + path[where], headers=api.bearer(_asymmetric_token(algorithm)), timeout=api.HTTP_TIMEOUT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("patient-service", "/patients"),
        ("patient-service", "/patients/6f1c7a4e-1111-4c2b-9d0a-1234567890ab"),
        ("analytics-service", "/analytics/summary"),
    ],
)
def test_services_refuse_calls_without_a_token_on_their_own_ports(target: Target, service: str, path: str) -> None:
    base = target.direct.get(service)
    if base is None:
        pytest.skip(f"{service}'s own port is unknown")
    response = httpx.get(base + path, timeout=api.HTTP_TIMEOUT)
    assert response.status_code == 401
    assert response.json() == {"message": "Missing bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("service", ["auth-service", "patient-service", "billing-service", "analytics-service"])
def test_health_stays_open_on_every_service(target: Target, service: str) -> None:
    base = target.direct.get(service)
    if base is None:
        pytest.skip(f"{service}'s own port is unknown")
    assert httpx.get(base + "/health", timeout=api.HTTP_TIMEOUT).status_code == 200
