"""HS256 JWTs: issued at login, checked by /validate (the gateway checks them with the same code)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pm_common.tokens import InvalidTokenError, bearer_token, issue_token, verify_token

__all__ = ["InvalidTokenError", "Tokens", "bearer_token"]


@dataclass(frozen=True)
class Tokens:
    """Signs and verifies tokens with the decoded JWT_SECRET bytes."""

    key: bytes
    lifetime_seconds: int

    def issue(self, *, email: str, role: str, now: int | None = None) -> str:
        """A token with sub (email), role, iat and exp."""
        return issue_token(key=self.key, email=email, role=role, lifetime_seconds=self.lifetime_seconds, now=now)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token (HS256 only, exp and sub required), else InvalidTokenError."""
        return verify_token(token, key=self.key)
