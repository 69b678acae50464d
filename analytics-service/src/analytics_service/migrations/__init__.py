"""Alembic migrations of analytics-service (run by __main__ before serving)."""
