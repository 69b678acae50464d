"""patients: a version per row (ETag, If-Match) and the indexes of the search

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add patients.version; trigram index on lower(name); btree indexes for the date filters and sorts."""
    op.add_column("patients", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    # pg_trgm ships with PostgreSQL's contrib; the service's user needs CREATE on the database (devstack's is a
    # superuser; on a managed server create the extension once as its admin and this is a no-op).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_patients_name_trgm",
        "patients",
        [sa.text("lower(name) gin_trgm_ops")],
        postgresql_using="gin",
    )
    op.create_index("ix_patients_name_lower_id", "patients", [sa.text("lower(name)"), "id"])
    op.create_index("ix_patients_date_of_birth_id", "patients", ["date_of_birth", "id"])


def downgrade() -> None:
    """Drop the search indexes and patients.version (the extension stays: other objects may use it)."""
    op.drop_index("ix_patients_date_of_birth_id", table_name="patients")
    op.drop_index("ix_patients_name_lower_id", table_name="patients")
    op.drop_index("ix_patients_name_trgm", table_name="patients")
    op.drop_column("patients", "version")
