"""Wire shapes of /users (camelCase) and the password policy for new passwords."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from auth_service.auth.schemas import check_email, check_password_given
from pm_common.access import USER_ROLES, Role

MIN_PASSWORD_LENGTH = 12
_ROLE_MESSAGE = "Role must be one of " + ", ".join(USER_ROLES)


def _role(value: Any) -> Role:
    if not isinstance(value, str) or value not in USER_ROLES:
        raise PydanticCustomError("role", _ROLE_MESSAGE)
    return Role(value)


def _disabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise PydanticCustomError("bool", "Disabled must be true or false")
    return value


def _new_password(value: str) -> str:
    if len(value) < MIN_PASSWORD_LENGTH:
        raise PydanticCustomError("too_short", f"Password must be at least {MIN_PASSWORD_LENGTH} characters long")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_characters", "Password contains invalid characters") from None
    return value


UserRole = Annotated[Role, BeforeValidator(_role), Field(description=_ROLE_MESSAGE)]


class UserCreate(BaseModel):
    """A new user: email (unique without regard to case), password (the policy below) and role."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"email": "staff@test.com", "password": "a long passphrase", "role": "STAFF"}]},
    )

    email: Annotated[str, AfterValidator(check_email)] = Field(description="A valid email address, not yet taken")
    password: Annotated[str, AfterValidator(check_password_given), AfterValidator(_new_password)] = Field(
        description=f"At least {MIN_PASSWORD_LENGTH} characters and not the email address"
    )
    role: UserRole

    @field_validator("password")
    @classmethod
    def _not_the_email(cls, value: str, info: ValidationInfo) -> str:
        email = info.data.get("email")
        if isinstance(email, str) and value.casefold() == email.casefold():
            raise PydanticCustomError("is_email", "Password must not be the email address")
        return value


class UserUpdate(BaseModel):
    """What PATCH may change: role and/or disabled (at least one)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "ANALYST"}, {"disabled": True}]})

    role: Annotated[Role | None, BeforeValidator(_role)] = Field(default=None, description=_ROLE_MESSAGE)
    disabled: Annotated[bool | None, BeforeValidator(_disabled)] = Field(
        default=None, description="true: the user can no longer log in"
    )


class UserCreated(BaseModel):
    """The answer to POST /users."""

    id: uuid.UUID
    email: str
    role: str


class UserResponse(BaseModel):
    """A user as GET /users and PATCH list it (never a password hash)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)

    id: uuid.UUID
    email: str
    role: str
    disabled: bool
    created_at: datetime
