"""Wire shapes of a patient (camelCase) and the validation rules of the contract, with its messages.

Every rule runs in a `BeforeValidator` on the raw JSON value, so one request reports every failing
field at once (pydantic collects them) and no value of any JSON type reaches the database unchecked.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from patient_service.patients.models import ADDRESS_MAX, EMAIL_MAX, NAME_MAX

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def utc_today() -> date:
    """Today's date in UTC: the reference for "in the future" and the default registeredDate."""
    return datetime.now(UTC).date()


def storable(value: str) -> bool:
    """False for text PostgreSQL cannot store: NUL characters and lone UTF-16 surrogates (from JSON `\\ud800`)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _text(label: str, max_length: int, too_long: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value is None:
            raise _error("required", f"{label} is required")
        if not isinstance(value, str):
            raise _error("string_type", f"{label} must be a string")
        if not storable(value):
            raise _error("invalid_characters", f"{label} contains invalid characters")
        if not value.strip():  # blank counts as missing, as the original's @NotBlank
            raise _error("required", f"{label} is required")
        if len(value) > max_length:
            raise _error("too_long", too_long)
        return value  # exactly as sent: clients get back the text they stored

    return check


def _email(value: Any) -> str:
    if value is None:
        raise _error("required", "Email is required")
    if not isinstance(value, str):
        raise _error("string_type", "Email must be a string")
    invalid = _error("invalid_email", "Email should be valid")
    if not storable(value):
        raise invalid
    email: str = value.strip()
    if not email:
        raise _error("required", "Email is required")
    if len(email) > EMAIL_MAX:
        raise invalid
    try:
        validate_email(email, check_deliverability=False)
    except (EmailNotValidError, UnicodeError, ValueError):
        raise invalid from None
    return email  # stored as sent; uniqueness compares lower(email) in the database


def _date(label: str, *, required: bool) -> Callable[[Any], date | None]:
    def check(value: Any) -> date | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise _error("required", f"{label} is required")
            return None
        invalid = _error("invalid_date", f"{label} must be a valid date (YYYY-MM-DD)")
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
            raise invalid
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:  # 2023-02-30, month 13, year 0000
            raise invalid from None
        if parsed > utc_today():
            raise _error("future_date", f"{label} cannot be in the future")
        return parsed

    return check


def _text_schema(max_length: int, example: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "minLength": 1, "maxLength": max_length, "examples": [example]})


_DATE_SCHEMA = WithJsonSchema({"type": "string", "format": "date", "examples": ["1990-05-15"]})

Name = Annotated[
    str,
    BeforeValidator(_text("Name", NAME_MAX, "Name cannot exceed 100 characters")),
    _text_schema(NAME_MAX, "John Doe"),
]
Email = Annotated[
    str,
    BeforeValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": EMAIL_MAX, "examples": ["john.doe@example.com"]}),
]
Address = Annotated[
    str,
    BeforeValidator(_text("Address", ADDRESS_MAX, "Address cannot exceed 255 characters")),
    _text_schema(ADDRESS_MAX, "123 Main Street, New York"),
]
DateOfBirth = Annotated[date, BeforeValidator(_date("Date of birth", required=True)), _DATE_SCHEMA]
RegisteredDate = Annotated[date | None, BeforeValidator(_date("Registered date", required=False)), _DATE_SCHEMA]

# Messages for fields absent from the body (pydantic reports those before any validator runs).
MISSING_FIELD_MESSAGES: dict[str, dict[str, str]] = {
    "name": {"missing": "Name is required"},
    "email": {"missing": "Email is required"},
    "address": {"missing": "Address is required"},
    "dateOfBirth": {"missing": "Date of birth is required"},
}


class PatientUpdate(BaseModel):
    """Body of PUT /patients/{id}: every field required; registeredDate and unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_alias=True, validate_by_name=False)

    name: Name
    email: Email
    address: Address
    date_of_birth: DateOfBirth = Field(alias="dateOfBirth")


class PatientCreate(PatientUpdate):
    """Body of POST /patients: registeredDate is optional and defaults to today (UTC)."""

    registered_date: RegisteredDate = Field(default=None, alias="registeredDate")


class PatientResponse(BaseModel):
    """A patient as the API returns it (documentation of the wire shape; responses are built directly)."""

    id: uuid.UUID
    name: str
    email: str
    address: str
    dateOfBirth: date
    registeredDate: date


def to_wire(row: Any) -> dict[str, str]:
    """A patients row (mapping) as the camelCase JSON object of the contract."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "email": row["email"],
        "address": row["address"],
        "dateOfBirth": row["date_of_birth"].isoformat(),
        "registeredDate": row["registered_date"].isoformat(),
    }
