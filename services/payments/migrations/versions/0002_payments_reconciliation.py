"""payments reconciliation: when Stripe was last asked about a payment, and the queue of
payments still without an outcome

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        schema="payments",
    )
    op.create_index(
        "ix_payments_unsettled",
        "payments",
        [sa.text("greatest(updated_at, checked_at)")],
        unique=False,
        schema="payments",
        postgresql_where=sa.text("status IN ('PENDING', 'REQUIRES_ACTION', 'FAILED')"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_unsettled", table_name="payments", schema="payments")
    op.drop_column("payments", "checked_at", schema="payments")
