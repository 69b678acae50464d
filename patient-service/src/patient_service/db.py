"""The service's SQLAlchemy metadata (tables register on it; Alembic compares against it)."""

from __future__ import annotations

from pm_common.database import new_metadata

metadata = new_metadata()
