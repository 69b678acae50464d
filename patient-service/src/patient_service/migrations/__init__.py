"""Alembic migrations of patient-service (run by `patient-service` before it serves)."""
