"""POST /login and GET /validate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from auth_service.auth import service
from auth_service.auth.schemas import LoginRequest, MessageResponse, TokenResponse
from auth_service.deps import ClientAddressDep, EngineDep, PasswordsDep, SettingsDep, ThrottleDep
from auth_service.metrics import LOGIN_FAILED, LOGIN_SUCCEEDED
from pm_common.http import DomainError, unauthorized
from pm_common.settings import jwt_key
from pm_common.tokens import InvalidTokenError, bearer_token, issue_token, verify_token

router = APIRouter(tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageResponse, "description": "Wrong credentials or an invalid token"}
}


@router.post(
    "/login",
    summary="Exchange email and password for a JWT",
    responses={
        **_UNAUTHORIZED,
        400: {"description": "A field -> message map, or {message} for malformed JSON"},
        429: {"model": MessageResponse, "description": "Too many attempts for this email or client; see Retry-After"},
    },
)
async def login(
    body: LoginRequest,
    engine: EngineDep,
    passwords: PasswordsDep,
    throttle: ThrottleDep,
    client: ClientAddressDep,
    settings: SettingsDep,
) -> TokenResponse:
    """200 with a token; 401 for a wrong email or password or a disabled user (one answer); 429 when throttled."""
    principal = await service.login(
        engine=engine,
        passwords=passwords,
        throttle=throttle,
        email=body.email,
        password=body.password,
        client=client,
    )
    if principal is None:
        LOGIN_FAILED.inc()
        raise DomainError("Invalid email or password", status_code=401)
    LOGIN_SUCCEEDED.inc()
    token = issue_token(
        key=jwt_key(settings.jwt_secret),
        email=principal.email,
        role=principal.role,
        lifetime_seconds=settings.jwt_lifetime_seconds,
    )
    return TokenResponse(token=token)


@router.get(
    "/validate",
    summary="Check a bearer token",
    status_code=200,
    responses={200: {"description": "Valid"}, **_UNAUTHORIZED},
)
async def validate(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """200 (empty) when the Authorization header carries a valid token, else 401."""
    token = bearer_token(authorization)
    if token is None:
        return unauthorized("Missing bearer token")
    try:
        verify_token(token, key=jwt_key(settings.jwt_secret))
    except InvalidTokenError:
        return unauthorized("Invalid or expired token", error="invalid_token")
    return Response(status_code=200)
