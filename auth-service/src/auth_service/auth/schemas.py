"""Request and response bodies of /login, and the field messages every body of this service shares."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

# Messages keyed by field and pydantic error type (see install_error_handlers): the original's for
# email and password, and those of the /users bodies.
FIELD_MESSAGES: dict[str, dict[str, str]] = {
    "email": {"missing": "Email is required", "string_type": "Email should be a valid email address"},
    "password": {"missing": "Password is required", "string_type": "Password is required"},
    "role": {"missing": "Role is required"},
}


def check_email(value: str) -> str:
    """The email as sent when it is a syntactically valid address; blank is "required"."""
    if not value.strip():
        raise PydanticCustomError("blank", "Email is required")
    try:
        validate_email(value, check_deliverability=False, globally_deliverable=False)
    except (EmailNotValidError, UnicodeError, ValueError):
        raise PydanticCustomError("email", "Email should be a valid email address") from None
    return value


def check_password_given(value: str) -> str:
    """The password unless it is blank."""
    if not value.strip():
        raise PydanticCustomError("blank", "Password is required")
    return value


class LoginRequest(BaseModel):
    """Credentials: both required, the email well-formed; any password shape is checked (401 if wrong)."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"email": "testuser@test.com", "password": "password123"}]}
    )

    email: Annotated[str, AfterValidator(check_email)] = Field(
        description="The user's email address (case-insensitive)"
    )
    password: Annotated[str, AfterValidator(check_password_given)] = Field(description="The user's password")


class TokenResponse(BaseModel):
    """A signed JWT for the Authorization header."""

    token: str


class MessageResponse(BaseModel):
    """The error shape every service uses."""

    message: str
