"""Alembic migrations of auth-service (script_location `auth_service:migrations`)."""
