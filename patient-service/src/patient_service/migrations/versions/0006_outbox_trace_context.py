"""outbox.trace_context: the W3C trace context of the request that wrote a row, so its delivery continues the trace

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable column (no rewrite of the table: existing rows get NULL)."""
    op.add_column("outbox", sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    op.drop_column("outbox", "trace_context")
