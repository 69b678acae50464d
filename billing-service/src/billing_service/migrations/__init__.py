"""Alembic migrations of billing-service (run by __main__ before serving)."""
