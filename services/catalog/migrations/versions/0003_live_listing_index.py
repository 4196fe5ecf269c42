"""partial index over live, active products by category and price

Lists need `total_size`: counting a category subtree within a price range reads thousands of
heap rows; with this index (and a current visibility map) it is an index-only scan.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_products_live_category_price",
        "products",
        ["category_id", "price_cents"],
        schema="catalog",
        postgresql_where=sa.text("deleted_at IS NULL AND active"),
    )


def downgrade() -> None:
    op.drop_index("ix_products_live_category_price", table_name="products", schema="catalog")
