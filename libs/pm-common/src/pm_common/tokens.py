"""HS256 JWTs as this system uses them: auth-service signs, the gateway and /validate verify."""

from __future__ import annotations

import time
from typing import Any

import jwt
from jwt.types import Options

ALGORITHM = "HS256"  # fixed: `none`, HS384/512, RS256 and the rest are refused
# exp and sub must be present; iat is not checked (a token minted by a host whose clock runs a little
# ahead must not be refused as "issued in the future"; the original did not check it either).
_OPTIONS: Options = {"require": ["exp", "sub"], "verify_iat": False}


class InvalidTokenError(Exception):
    """The token is malformed, badly signed, of another algorithm, lacks a claim or has expired."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def issue_token(*, key: bytes, email: str, role: str, lifetime_seconds: int, now: int | None = None) -> str:
    """A token with the claims the original issued: sub (email), role, iat, exp."""
    issued_at = int(time.time()) if now is None else now
    claims = {"sub": email, "role": role, "iat": issued_at, "exp": issued_at + lifetime_seconds}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_token(token: str, *, key: bytes) -> dict[str, Any]:
    """The claims of a valid token, else InvalidTokenError."""
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[ALGORITHM], options=_OPTIONS)
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("expired", expired=True) from None
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(type(exc).__name__) from None
    return claims


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
