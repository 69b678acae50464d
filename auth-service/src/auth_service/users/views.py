"""/users for ADMINs: thin routes over users.service."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from auth_service.auth.schemas import MessageResponse
from auth_service.deps import EngineDep, PasswordsDep, SettingsDep
from auth_service.users import service
from auth_service.users.schemas import UserCreate, UserCreated, UserResponse, UserUpdate
from pm_common.access import Permission
from pm_common.auth import require
from pm_common.idempotency import IdempotencyKeyHeader, retry_key
from pm_common.settings import jwt_key
from pm_common.tokens import Identity

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(require(Permission.MANAGE_USERS))])
# The caller (an ADMIN: the router's dependency already refused everyone else; FastAPI runs it once).
AdminDep = Annotated[Identity, Depends(require(Permission.MANAGE_USERS))]

UserId = Annotated[uuid.UUID, Path(alias="id", description="The user's id (UUID)")]
_ACCESS: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageResponse, "description": "No valid bearer token"},
    403: {"model": MessageResponse, "description": "The token's role is not ADMIN"},
}
_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "`{field: message}`, or `{message}` (bad JSON)"}}


@router.post(
    "",
    status_code=201,
    summary="Create a user",
    responses={**_ACCESS, **_BODY, 409: {"model": MessageResponse, "description": "Email taken"}},
)
async def create_user(
    request: Request,
    caller: AdminDep,
    body: UserCreate,
    engine: EngineDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> UserCreated:
    """A new user with an email, a password (the policy) and a role."""
    # Keyed fingerprint: the body holds the new password, which the stored fingerprint must not give away.
    secret, ttl = jwt_key(settings.jwt_secret), settings.idempotency_key_ttl_seconds
    retry = retry_key(
        idempotency_key,
        request=request,
        actor=caller.subject,
        body=body.model_dump(mode="json"),
        ttl_seconds=ttl,
        secret=secret,
    )
    return await service.create_user(
        engine=engine, passwords=passwords, email=body.email, password=body.password, role=body.role, retry=retry
    )


@router.get("", summary="List users", responses=_ACCESS)
async def list_users(engine: EngineDep) -> list[UserResponse]:
    """Every user, oldest first; never a password hash."""
    return await service.list_users(engine=engine)


@router.patch(
    "/{id}",
    summary="Change a user's role or disable them",
    responses={
        **_ACCESS,
        **_BODY,
        404: {"model": MessageResponse, "description": "User not found"},
        409: {"model": MessageResponse, "description": "It would leave no enabled ADMIN"},
    },
)
async def update_user(user_id: UserId, body: UserUpdate, engine: EngineDep) -> UserResponse:
    """Change role and/or disabled; the last enabled ADMIN cannot be disabled or demoted."""
    return await service.update_user(engine=engine, user_id=user_id, role=body.role, disabled=body.disabled)
