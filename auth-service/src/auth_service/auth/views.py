"""POST /login and GET /validate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse

from auth_service.auth import service
from auth_service.auth.schemas import LoginRequest, MessageResponse, TokenResponse
from auth_service.auth.tokens import InvalidTokenError, bearer_token
from auth_service.deps import EngineDep, PasswordsDep, TokensDep
from pm_common.http import DomainError

router = APIRouter(tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageResponse, "description": "Wrong credentials or an invalid token"}
}


@router.post(
    "/login",
    summary="Exchange email and password for a JWT",
    responses={**_UNAUTHORIZED, 400: {"description": "A field -> message map, or {message} for malformed JSON"}},
)
async def login(body: LoginRequest, engine: EngineDep, passwords: PasswordsDep, tokens: TokensDep) -> TokenResponse:
    """200 with a token, 401 for a wrong email or password (the same answer for both)."""
    principal = await service.authenticate(engine=engine, passwords=passwords, email=body.email, password=body.password)
    if principal is None:
        raise DomainError("Invalid email or password", status_code=401)
    return TokenResponse(token=tokens.issue(email=principal.email, role=principal.role))


@router.get(
    "/validate",
    summary="Check a bearer token",
    status_code=200,
    responses={200: {"description": "Valid"}, **_UNAUTHORIZED},
)
async def validate(tokens: TokensDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """200 (empty) when the Authorization header carries a valid token, else 401."""
    token = bearer_token(authorization)
    if token is None:
        return _unauthorized("Missing bearer token", error=None)
    try:
        tokens.verify(token)
    except InvalidTokenError:
        return _unauthorized("Invalid or expired token", error="invalid_token")
    return Response(status_code=200)


def _unauthorized(message: str, *, error: str | None) -> JSONResponse:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return JSONResponse({"message": message}, status_code=401, headers={"WWW-Authenticate": challenge})
