"""Unit tests of the token verification the gateway uses (pm_common.tokens.TokenVerifier; no network)."""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from api_gateway.tokens import header_value
from pm_common.http import bearer_challenge
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import Identity, TokenVerifier, Unauthenticated

KEY = base64.b64decode(DEMO_JWT_SECRET)
verifier = TokenVerifier(KEY)


def b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "testuser@test.com", "role": "ADMIN", "iat": now, "exp": now + 600, **overrides}


def signed(payload: dict[str, object], *, key: Any = KEY, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, key, algorithm=algorithm)


def test_valid_token_gives_identity() -> None:
    assert verifier.verify(f"Bearer {signed(claims())}") == Identity(subject="testuser@test.com", role="ADMIN")


def test_scheme_is_case_insensitive() -> None:
    assert verifier.verify(f"bearer {signed(claims())}").subject == "testuser@test.com"


def test_token_without_role_is_accepted_without_role() -> None:
    # The contract requires no claim beyond sub and exp.
    payload = claims()
    del payload["role"], payload["iat"]
    assert verifier.verify(f"Bearer {signed(payload)}") == Identity(subject="testuser@test.com", role=None)


def test_token_of_the_original_auth_service_is_accepted() -> None:
    # The original signed {"sub", "role", "iat", "exp"} with the decoded base64 key, HS256.
    assert verifier.verify(f"Bearer {signed(claims(role='DOCTOR'))}").role == "DOCTOR"


def test_token_issued_by_a_clock_slightly_ahead_is_accepted() -> None:
    assert verifier.verify(f"Bearer {signed(claims(iat=int(time.time()) + 60))}").subject == "testuser@test.com"


def test_token_not_yet_valid_by_nbf_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(f"Bearer {signed(claims(nbf=int(time.time()) + 60))}")


def test_non_string_role_is_not_forwarded() -> None:
    assert verifier.verify(f"Bearer {signed(claims(role=['ADMIN']))}").role is None


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        pytest.param(None, "Missing bearer token", id="missing"),
        pytest.param("", "Missing bearer token", id="empty"),
        pytest.param("Bearer", "Authorization must use the Bearer scheme", id="scheme-only"),
        pytest.param("Bearer   ", "Authorization must use the Bearer scheme", id="blank-token"),
        pytest.param("Basic dXNlcjpwYXNz", "Authorization must use the Bearer scheme", id="basic"),
        pytest.param(f"Token {signed(claims())}", "Authorization must use the Bearer scheme", id="other-scheme"),
    ],
)
def test_missing_header_or_other_scheme(authorization: str | None, message: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(authorization)

    assert refused.value.message == message
    assert bearer_challenge(refused.value.error) == "Bearer"


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
# Keys as long as each algorithm's hash: the original (jjwt) signs HS384 with a 48-byte key, HS512 with 64.
KEY_48 = bytes(range(48))
KEY_64 = bytes(range(64))


@pytest.mark.parametrize(("key", "algorithm"), [(KEY, "HS256"), (KEY_48, "HS384"), (KEY_64, "HS512")])
def test_the_hmac_family_is_accepted(key: bytes, algorithm: str) -> None:
    token = signed(claims(role="STAFF"), key=key, algorithm=algorithm)

    assert TokenVerifier(key).verify(f"Bearer {token}") == Identity(subject="testuser@test.com", role="STAFF")


def test_a_public_key_signature_is_refused_even_with_the_public_key_as_secret() -> None:
    # Algorithm confusion: an RS256 token checked against the PEM of its public key must not pass as HMAC.
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(Unauthenticated, match="Invalid token"):
        TokenVerifier(pem).verify(f"Bearer {signed(claims(), key=RSA_KEY, algorithm='RS256')}")


def _none_token() -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."


def _foreign_alg_token(alg: str) -> str:
    # A well-formed token claiming another algorithm (any signature): must fail on the header alone.
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.{b64(b'x' * 256)}"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(signed(claims(exp=int(time.time()) - 5)), "Token expired", id="expired"),
        pytest.param(signed(claims(), key=b"k" * 32), "Invalid token", id="wrong-key"),
        pytest.param("garbage", "Invalid token", id="garbage"),
        pytest.param("a.b.c", "Invalid token", id="three-garbage-parts"),
        pytest.param(_none_token(), "Invalid token", id="alg-none"),
        pytest.param(_none_token().replace('"none"', '"None"'), "Invalid token", id="alg-None"),
        pytest.param(_foreign_alg_token("RS256"), "Invalid token", id="rs256-header"),
        pytest.param(_foreign_alg_token("ES256"), "Invalid token", id="es256-header"),
        pytest.param(signed(claims(), key=RSA_KEY, algorithm="RS256"), "Invalid token", id="rs256-signed"),
        pytest.param(signed(claims(), key=EC_KEY, algorithm="ES256"), "Invalid token", id="es256-signed"),
        pytest.param(signed(claims(), key=b"k" * 64, algorithm="HS512"), "Invalid token", id="hs512-wrong-key"),
        pytest.param(signed({"sub": "testuser@test.com"}), "Invalid token", id="missing-exp"),
        pytest.param(signed({"exp": int(time.time()) + 60}), "Invalid token", id="missing-sub"),
        pytest.param(signed(claims(sub=42)), "Invalid token", id="sub-not-a-string"),
        pytest.param(signed(claims(exp="tomorrow")), "Invalid token", id="exp-not-a-number"),
        pytest.param(signed(claims())[:-2] + "xx", "Invalid token", id="tampered-signature"),
    ],
)
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 vs a 51-byte key
def test_bad_tokens_are_refused(token: str, message: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(f"Bearer {token}")

    assert refused.value.message == message
    assert bearer_challenge(refused.value.error) == 'Bearer error="invalid_token"'


def test_tampered_claims_are_refused() -> None:
    header, _, signature = signed(claims(role="USER")).split(".")
    forged = f"{header}.{b64(claims(role='ADMIN'))}.{signature}"

    with pytest.raises(Unauthenticated):
        verifier.verify(f"Bearer {forged}")


@pytest.mark.parametrize(
    ("claim", "header"),
    [
        ("testuser@test.com", "testuser@test.com"),
        ("jürgen@müller.de", "j%C3%BCrgen%40m%C3%BCller.de"),
        ("evil\r\nx-user-role: ADMIN", "evil%0D%0Ax-user-role%3A%20ADMIN"),
    ],
)
def test_claims_become_safe_header_values(claim: str, header: str) -> None:
    assert header_value(claim) == header


def test_a_cached_token_is_refused_once_it_has_expired() -> None:
    cached = TokenVerifier(KEY, cache_size=4)
    expires = int(time.time()) + 1
    token = signed(claims(exp=expires))
    assert cached.verify(f"Bearer {token}").subject == "testuser@test.com"  # verified, then kept
    assert token in cached._verified
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthenticated, match="Token expired"):
        cached.verify(f"Bearer {token}")
    assert token not in cached._verified


def test_the_cache_keeps_only_verified_tokens_and_stays_bounded() -> None:
    cached = TokenVerifier(KEY, cache_size=2)
    tokens = [signed(claims(sub=f"user{n}@test.com")) for n in range(5)]
    for token in tokens:
        cached.verify(f"Bearer {token}")
    assert len(cached._verified) == 2
    tampered = tokens[-1][:-2] + ("AA" if not tokens[-1].endswith("AA") else "BB")
    with pytest.raises(Unauthenticated):
        cached.verify(f"Bearer {tampered}")
    assert tampered not in cached._verified
