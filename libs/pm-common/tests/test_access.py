"""The permission table, the service-side check and the token verifier's algorithm family."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from pm_common.access import RESOURCE_PERMISSIONS, Permission, Role, allowed, permission_table_markdown
from pm_common.auth import AUTH_ERROR_HANDLERS, require
from pm_common.http import install_error_handlers
from pm_common.tokens import Identity, ServiceTokens, TokenVerifier, Unauthenticated, issue_token

KEY = b"k" * 64
README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.parametrize(
    ("role", "may"),
    [
        ("ADMIN", set(Permission) - {Permission.MANAGE_BILLING_ACCOUNTS, Permission.RECORD_AUDIT}),
        ("STAFF", {Permission.READ_PATIENTS, Permission.WRITE_PATIENTS, Permission.READ_ANALYTICS}),
        ("ANALYST", {Permission.READ_ANALYTICS}),
        ("SERVICE", {Permission.MANAGE_BILLING_ACCOUNTS, Permission.RECORD_AUDIT}),
        ("PATIENT", set()),
        ("admin", set()),  # roles are case-sensitive, as the original's claims are
        (None, set()),
    ],
)
def test_who_may_do_what(role: str | None, may: set[Permission]) -> None:
    assert {p for p in Permission if allowed(role, p)} == may


def test_every_resource_method_needs_a_known_permission() -> None:
    assert RESOURCE_PERMISSIONS["patients"]["DELETE"] is Permission.DELETE_PATIENTS
    assert all(isinstance(p, Permission) for methods in RESOURCE_PERMISSIONS.values() for p in methods.values())


def test_the_readme_shows_the_table_as_the_code_has_it() -> None:
    assert permission_table_markdown() in README.read_text()


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_the_hmac_family_verifies(algorithm: str) -> None:
    token = jwt.encode({"sub": "a@b", "role": "STAFF", "exp": int(time.time()) + 60}, KEY, algorithm=algorithm)
    assert TokenVerifier(KEY).verify(f"Bearer {token}") == Identity(subject="a@b", role="STAFF")


def test_other_algorithms_and_keys_are_refused() -> None:
    other = jwt.encode({"sub": "a@b", "exp": int(time.time()) + 60}, b"o" * 64, algorithm="HS256")
    unsigned = jwt.encode({"sub": "a@b", "exp": int(time.time()) + 60}, "", algorithm="none")
    for token in (other, unsigned):
        with pytest.raises(Unauthenticated) as refused:
            TokenVerifier(KEY).verify(f"Bearer {token}")
        assert refused.value.error == "invalid_token"


def test_a_service_token_is_short_lived_and_reused_until_renewal() -> None:
    tokens = ServiceTokens(KEY, service="patient-service", lifetime_seconds=300)
    first = tokens.authorization()
    assert tokens.authorization() == first
    claims = jwt.decode(first.removeprefix("Bearer "), KEY, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == ("patient-service", "SERVICE")
    assert claims["exp"] - claims["iat"] == 300


async def test_require_answers_401_then_403_then_lets_through() -> None:
    app = FastAPI()
    app.state.token_verifier = TokenVerifier(KEY)
    install_error_handlers(app, error_handlers=AUTH_ERROR_HANDLERS)

    @app.delete("/thing")
    async def delete(caller: Identity = Depends(require(Permission.DELETE_PATIENTS))) -> dict[str, str]:  # noqa: B008
        return {"by": caller.subject}

    def bearer(role: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_token(key=KEY, email="x@y", role=role, lifetime_seconds=60)}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        missing = await client.delete("/thing")
        assert (missing.status_code, missing.json(), missing.headers["www-authenticate"]) == (
            401,
            {"message": "Missing bearer token"},
            "Bearer",
        )
        staff = await client.delete("/thing", headers=bearer(Role.STAFF))
        assert (staff.status_code, set(staff.json())) == (403, {"message"})
        admin = await client.delete("/thing", headers=bearer(Role.ADMIN))
        assert (admin.status_code, admin.json()) == (200, {"by": "x@y"})
