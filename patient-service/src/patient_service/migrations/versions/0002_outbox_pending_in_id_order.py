"""outbox: the pending-rows index in id order per destination (the relay's claim reads one batch of it)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Partial index: building it reads the table but stores only the pending rows.
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["destination", "id"], postgresql_where=sa.text("state = 'PENDING'"))


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["destination", "next_attempt_at", "id"],
        postgresql_where=sa.text("state = 'PENDING'"),
    )
