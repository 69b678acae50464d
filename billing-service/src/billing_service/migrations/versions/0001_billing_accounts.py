"""billing_accounts: one stored account per patient.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create billing_accounts."""
    op.create_table(
        "billing_accounts",
        sa.Column("patient_id", sa.String(255), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name="pk_billing_accounts"),
        sa.UniqueConstraint("account_id", name="uq_billing_accounts_account_id"),
    )


def downgrade() -> None:
    """Drop billing_accounts."""
    op.drop_table("billing_accounts")
