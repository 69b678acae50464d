"""Alembic environment: the shared online/async runner against this service's metadata."""

from billing_service.accounts.models import metadata
from pm_common.database import run_migrations

run_migrations(metadata)
