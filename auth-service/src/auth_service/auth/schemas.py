"""Request and response bodies of /login."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

MIN_PASSWORD_LENGTH = 8

# Messages the original returned, keyed by field and pydantic error type (see install_error_handlers).
FIELD_MESSAGES: dict[str, dict[str, str]] = {
    "email": {"missing": "Email is required", "string_type": "Email should be a valid email address"},
    "password": {"missing": "Password is required", "string_type": "Password is required"},
}


class LoginRequest(BaseModel):
    """Credentials; validated with the original's rules and messages."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"email": "testuser@test.com", "password": "password123"}]}
    )

    email: str = Field(description="The user's email address (case-insensitive)")
    password: str = Field(description=f"At least {MIN_PASSWORD_LENGTH} characters")

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "Email is required")
        try:
            validate_email(value, check_deliverability=False, globally_deliverable=False)
        except EmailNotValidError:
            raise PydanticCustomError("email", "Email should be a valid email address") from None
        return value

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "Password is required")
        if len(value) < MIN_PASSWORD_LENGTH:
            raise PydanticCustomError("too_short", f"Password must be at least {MIN_PASSWORD_LENGTH} characters long")
        return value


class TokenResponse(BaseModel):
    """A signed JWT for the Authorization header."""

    token: str


class MessageResponse(BaseModel):
    """The error shape every service uses."""

    message: str
