"""JWTs (extra `jwt`) as this system uses them: auth-service signs, every other service verifies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.types import Options

from pm_common.access import Role

SIGNING_ALGORITHM = "HS256"  # what auth-service signs with (the original's tokens from a 32-byte key)
# The HMAC family only: the original (jjwt) picks HS256/384/512 by key length, so a 48- or 64-byte key makes
# it sign HS384/HS512. `none`, RS*, ES* and PS* are refused (no algorithm confusion with a public key).
ACCEPTED_ALGORITHMS = ("HS256", "HS384", "HS512")
# exp and sub must be present; iat is not checked (a token minted by a host whose clock runs a little
# ahead must not be refused as "issued in the future"; the original did not check it either).
_OPTIONS: Options = {"require": ["exp", "sub"], "verify_iat": False}
# Service tokens (patient-service -> billing-service) live this long; a new one is minted before expiry.
SERVICE_TOKEN_LIFETIME_SECONDS = 300


class InvalidTokenError(Exception):
    """The token is malformed, badly signed, of another algorithm, lacks a claim or has expired."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def issue_token(*, key: bytes, email: str, role: str, lifetime_seconds: int, now: int | None = None) -> str:
    """A token with the claims the original issued: sub (email), role, iat, exp."""
    issued_at = int(time.time()) if now is None else now
    claims = {"sub": email, "role": role, "iat": issued_at, "exp": issued_at + lifetime_seconds}
    return jwt.encode(claims, key, algorithm=SIGNING_ALGORITHM)


def verify_token(token: str, *, key: bytes) -> dict[str, Any]:
    """The claims of a valid token, else InvalidTokenError."""
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=list(ACCEPTED_ALGORITHMS), options=_OPTIONS)
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


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified caller: `sub` (an email, or a service's name) and the `role` claim."""

    subject: str
    role: str | None


class Unauthenticated(Exception):
    """No usable credential: 401 with `message`; `error` goes into the WWW-Authenticate challenge."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class TokenVerifier:
    """Checks `Authorization: Bearer <jwt>` locally (no call to auth-service).

    A client sends the same token with every request, so the outcome of a successful verification is
    kept (at most cache_size tokens, oldest dropped first) until the token's exp: verifying an HS256
    token costs ~40 us, which made a seventh of the gateway's CPU per proxied request, and is what keeps
    the services' own check of every request cheap. Only tokens whose signature and claims were checked
    are kept, and expiry is checked again on every use.
    """

    def __init__(self, key: bytes, *, cache_size: int = 1024) -> None:
        self._key = key
        self._cache_size = cache_size
        self._verified: dict[str, tuple[Identity, float]] = {}  # token -> (identity, exp), insertion order

    def verify(self, authorization: str | None) -> Identity:
        """The identity in a valid token; Unauthenticated for a missing header, another scheme or a bad token."""
        if not authorization:
            raise Unauthenticated("Missing bearer token")
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("Authorization must use the Bearer scheme")
        known = self._verified.get(token)
        if known is not None:
            identity, expires_at = known
            if expires_at > time.time():  # PyJWT's rule: expired once exp <= now
                return identity
            del self._verified[token]
        try:
            claims: dict[str, Any] = verify_token(token, key=self._key)
        except InvalidTokenError as exc:
            raise Unauthenticated("Token expired" if exc.expired else "Invalid token", error="invalid_token") from None
        role = claims.get("role")
        identity = Identity(subject=str(claims["sub"]), role=role if isinstance(role, str) else None)
        exp = claims.get("exp")
        if self._cache_size > 0 and isinstance(exp, int | float) and not isinstance(exp, bool):
            if len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (identity, float(exp))
        return identity


class ServiceTokens:
    """This service's own short-lived token (role SERVICE, sub = the service), minted again before it expires."""

    def __init__(self, key: bytes, *, service: str, lifetime_seconds: int = SERVICE_TOKEN_LIFETIME_SECONDS) -> None:
        self._key = key
        self._service = service
        self._lifetime_seconds = lifetime_seconds
        self._token = ""
        self._renew_at = 0.0

    def authorization(self) -> str:
        """The `Bearer ...` value to send; a fresh token once two thirds of the lifetime have passed."""
        now = time.time()
        if now >= self._renew_at:
            self._token = issue_token(
                key=self._key, email=self._service, role=Role.SERVICE, lifetime_seconds=self._lifetime_seconds
            )
            self._renew_at = now + self._lifetime_seconds * 2 / 3
        return f"Bearer {self._token}"
