"""cart schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:20:09.549415
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "carts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("token_hash", sa.LargeBinary(), nullable=True),
        sa.Column("merged_into", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (token_hash IS NULL)", name=op.f("ck_carts_owner")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carts")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_carts_token_hash")),
        sa.UniqueConstraint("user_id", name=op.f("uq_carts_user_id")),
        schema="cart",
    )
    op.create_index(
        "ix_carts_guest_updated_at",
        "carts",
        ["updated_at"],
        unique=False,
        schema="cart",
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column(
            "claimed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_inbox")),
        schema="cart",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="cart",
    )
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"], unique=False, schema="cart")
    op.create_table(
        "cart_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cart_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("quantity BETWEEN 1 AND 99", name=op.f("ck_cart_items_quantity")),
        sa.ForeignKeyConstraint(
            ["cart_id"],
            ["cart.carts.id"],
            name=op.f("fk_cart_items_cart_id_carts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cart_items")),
        sa.UniqueConstraint("cart_id", "product_id", name=op.f("uq_cart_items_cart_id_product_id")),
        schema="cart",
    )


def downgrade() -> None:
    op.drop_table("cart_items", schema="cart")
    op.drop_index("ix_outbox_created_at", table_name="outbox", schema="cart")
    op.drop_table("outbox", schema="cart")
    op.drop_table("inbox", schema="cart")
    op.drop_index(
        "ix_carts_guest_updated_at",
        table_name="carts",
        schema="cart",
        postgresql_where=sa.text("user_id IS NULL"),
    )
    op.drop_table("carts", schema="cart")
