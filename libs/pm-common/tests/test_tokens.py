"""The token rules both auth-service and the gateway rely on."""

import base64
import json
import time
from typing import Any

import jwt
import pytest

from pm_common.tokens import InvalidTokenError, bearer_token, issue_token, verify_token

KEY = b"k" * 32


def test_issued_token_has_the_originals_claims() -> None:
    token = issue_token(key=KEY, email="a@b.org", role="ADMIN", lifetime_seconds=36000, now=1_000)
    claims = jwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "a@b.org", "role": "ADMIN", "iat": 1_000, "exp": 37_000}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_valid_token_verifies() -> None:
    token = issue_token(key=KEY, email="a@b.org", role="USER", lifetime_seconds=60)
    assert verify_token(token, key=KEY)["sub"] == "a@b.org"


def test_expired_token_is_marked_expired() -> None:
    token = issue_token(key=KEY, email="a@b.org", role="USER", lifetime_seconds=60, now=int(time.time()) - 120)
    with pytest.raises(InvalidTokenError) as refused:
        verify_token(token, key=KEY)
    assert refused.value.expired


def _unsigned(header: dict[str, str], claims: dict[str, object]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


@pytest.mark.parametrize(
    "token",
    [
        _unsigned({"alg": "none", "typ": "JWT"}, {"sub": "a@b.org", "exp": int(time.time()) + 60}),
        jwt.encode({"sub": "a@b.org", "exp": int(time.time()) + 60}, KEY + b"x", algorithm="HS256"),
        jwt.encode({"sub": "a@b.org", "exp": int(time.time()) + 60}, KEY * 2, algorithm="HS512"),
        jwt.encode({"sub": "a@b.org"}, KEY, algorithm="HS256"),
        jwt.encode({"exp": int(time.time()) + 60}, KEY, algorithm="HS256"),
        "garbage",
        "",
    ],
    ids=["alg-none", "wrong-key", "hs512", "no-exp", "no-sub", "garbage", "empty"],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify_token(token, key=KEY)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
