"""idempotency_keys: safe retries of POST /patients (Idempotency-Key)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from pm_common.idempotency import create_table_in_migration

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create idempotency_keys."""
    create_table_in_migration()


def downgrade() -> None:
    """Drop idempotency_keys."""
    op.drop_table("idempotency_keys")
