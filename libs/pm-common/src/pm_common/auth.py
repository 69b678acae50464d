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


def require(permission: Permission) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency: the caller's identity when its token is valid (401 otherwise) and its role may (403)."""

    async def check(request: Request) -> Identity:
        verifier: TokenVerifier = request.app.state.token_verifier
        identity = verifier.verify(request.headers.get("authorization"))
        if not allowed(identity.role, permission):
            raise Forbidden(FORBIDDEN_MESSAGE)
        return identity

    check.__name__ = f"require_{permission.name.lower()}"
    return check


async def _on_unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
    return unauthorized(exc.message, error=exc.error)


AUTH_ERROR_HANDLERS: Mapping[type[Exception], ErrorHandler] = {Unauthenticated: _on_unauthenticated}
