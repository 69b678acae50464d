"""Who may do what: the one permission table every service and the gateway read."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Role(StrEnum):
    """The `role` claim of a token. People have ADMIN, STAFF or ANALYST; SERVICE is a service's own token."""

    ADMIN = "ADMIN"
    STAFF = "STAFF"
    ANALYST = "ANALYST"
    SERVICE = "SERVICE"


# Roles a user account may have (POST/PATCH /auth/users); SERVICE tokens are minted by services only.
USER_ROLES = (Role.ADMIN, Role.STAFF, Role.ANALYST)


class Permission(StrEnum):
    """One thing a caller may do."""

    READ_PATIENTS = "patients:read"
    WRITE_PATIENTS = "patients:write"
    DELETE_PATIENTS = "patients:delete"
    READ_ANALYTICS = "analytics:read"
    MANAGE_USERS = "users:manage"
    READ_AUDIT = "audit:read"
    RECORD_AUDIT = "audit:record"
    MANAGE_BILLING_ACCOUNTS = "billing-accounts:manage"


_STAFF = frozenset({Permission.READ_PATIENTS, Permission.WRITE_PATIENTS, Permission.READ_ANALYTICS})

PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: _STAFF | {Permission.DELETE_PATIENTS, Permission.MANAGE_USERS, Permission.READ_AUDIT},
    Role.STAFF: _STAFF,
    Role.ANALYST: frozenset({Permission.READ_ANALYTICS}),
    # Services calling services: patient-service's relay asks billing for accounts, the gateway hands
    # patient-service the refusals it answered at the edge for the audit trail; nothing else.
    Role.SERVICE: frozenset({Permission.MANAGE_BILLING_ACCOUNTS, Permission.RECORD_AUDIT}),
}

# What each method on a resource needs. The gateway checks it at the edge; the service checks again.
# A method missing here is not served by that resource (the service answers 405).
RESOURCE_PERMISSIONS: Mapping[str, Mapping[str, Permission]] = {
    "patients": {
        "GET": Permission.READ_PATIENTS,
        "HEAD": Permission.READ_PATIENTS,
        "POST": Permission.WRITE_PATIENTS,
        "PUT": Permission.WRITE_PATIENTS,
        "PATCH": Permission.WRITE_PATIENTS,
        "DELETE": Permission.DELETE_PATIENTS,
    },
    "analytics": {"GET": Permission.READ_ANALYTICS, "HEAD": Permission.READ_ANALYTICS},
    "users": {"GET": Permission.MANAGE_USERS, "POST": Permission.MANAGE_USERS, "PATCH": Permission.MANAGE_USERS},
    "audit": {"GET": Permission.READ_AUDIT, "HEAD": Permission.READ_AUDIT},
}


def allowed(role: str | None, permission: Permission) -> bool:
    """Whether a token with this role claim may do this; a role outside the table may do nothing."""
    try:
        return permission in PERMISSIONS[Role(role)] if role is not None else False
    except ValueError:
        return False


def permission_table_markdown() -> str:
    """The table as the README shows it (a test keeps the README in step with this module)."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    for permission in Permission:
        cells = ["yes" if permission in PERMISSIONS[role] else "no" for role in roles]
        lines.append(f"| `{permission}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
