"""Checking callers in a service (extra `jwt`): a dependency per permission, and the 401 it raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from pm_common.access import Permission, allowed
from pm_common.http import DomainError, ErrorHandler, unauthorized
from pm_common.tokens import Identity, TokenVerifier, Unauthenticated

FORBIDDEN_MESSAGE = "Your role may not do this"


class Forbidden(DomainError):
    """A valid token whose role may not do the call."""

    status_code = 403


def authorize(verifier: TokenVerifier, authorization: str | None, permission: Permission) -> Identity:
    """The caller's identity when its token is valid (Unauthenticated: 401) and its role may (Forbidden: 403)."""
    identity = verifier.verify(authorization)
    if not allowed(identity.role, permission):
        raise Forbidden(FORBIDDEN_MESSAGE)
    return identity


def require(permission: Permission) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency: authorize() the request's caller for `permission`."""

    async def check(request: Request) -> Identity:
        return authorize(request.app.state.token_verifier, request.headers.get("authorization"), permission)

    check.__name__ = f"require_{permission.name.lower()}"
    return check


async def _on_unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
    return unauthorized(exc.message, error=exc.error)


AUTH_ERROR_HANDLERS: Mapping[type[Exception], ErrorHandler] = {Unauthenticated: _on_unauthenticated}
