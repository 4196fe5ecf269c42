"""search document for products: weighted full-text vector plus a trigram index on names

Added to a table that may already hold products: Postgres computes a generated column for every
existing row while adding it, so no product is ever missing from search.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_DOCUMENT = (
    "setweight(to_tsvector('simple', catalog.unaccent_immutable(coalesce(name, ''))), 'A') || "
    "setweight(to_tsvector('simple', catalog.unaccent_immutable(coalesce(sku, ''))), 'A') || "
    "setweight(to_tsvector('simple', catalog.unaccent_immutable(coalesce(description, ''))), 'B')"
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # unaccent() is only STABLE (its dictionary could change); indexes and generated columns
    # need IMMUTABLE. Naming the dictionary makes that promise safe (the usual recipe).
    op.execute(
        """
        CREATE OR REPLACE FUNCTION catalog.unaccent_immutable(value text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        RETURN public.unaccent('public.unaccent'::regdictionary, value)
        """
    )
    op.add_column(
        "products",
        sa.Column(
            "search_document",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_DOCUMENT, persisted=True),
            nullable=True,
        ),
        schema="catalog",
    )
    op.create_index(
        "ix_products_search_document",
        "products",
        ["search_document"],
        schema="catalog",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_products_name_trgm",
        "products",
        [sa.literal_column("catalog.unaccent_immutable(lower(name)) gin_trgm_ops")],
        schema="catalog",
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_products_name_trgm", table_name="products", schema="catalog")
    op.drop_index("ix_products_search_document", table_name="products", schema="catalog")
    op.drop_column("products", "search_document", schema="catalog")
    op.execute("DROP FUNCTION catalog.unaccent_immutable(text)")
