"""idempotency_keys: safe retries of POST /users (Idempotency-Key)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from pm_common.idempotency import create_table_in_migration

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create idempotency_keys."""
    create_table_in_migration()


def downgrade() -> None:
    """Drop idempotency_keys."""
    op.drop_table("idempotency_keys")
