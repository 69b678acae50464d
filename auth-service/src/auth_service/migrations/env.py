"""Alembic environment: the shared async runner with auth-service's metadata."""

from auth_service.auth.models import metadata
from pm_common.database import run_migrations

run_migrations(metadata)
