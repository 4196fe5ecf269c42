"""The search port: what the catalog asks of a search backend, whichever one is configured.

Two adapters implement it: `search_postgres` (the default, full-text search in the catalog's
own tables) and `search_elasticsearch`. A backend returns product ids in order plus counts; the
service then loads those products from PostgreSQL, so prices and stock are always current.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

# Fixed price bands for facets, in cents: [0, 10), [10, 25), ... [500, no limit) dollars.
PRICE_BAND_EDGES = (0, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000)
SORTS = ("relevance", "newest", "price_asc", "price_desc", "name")


@dataclass(frozen=True)
class ProductQuery:
    """Filters, order and page of a product list or search (already validated)."""

    text: str = ""  # the words searched for; empty for plain lists
    # The category and all its descendants; None: no category filter.
    category_ids: tuple[uuid.UUID, ...] | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    in_stock: bool = False
    include_inactive: bool = False
    sort: str = "newest"
    page_size: int = 20
    page_token: str = ""


@dataclass(frozen=True)
class SearchHits:
    product_ids: list[uuid.UUID]
    total: int
    next_page_token: str
    # Hits per category (a product counts for its own category only), over every page.
    category_counts: dict[uuid.UUID, int] = field(default_factory=dict)
    # Hits per band of PRICE_BAND_EDGES, same length as it, over every page.
    price_band_counts: list[int] = field(default_factory=list)
    # The product rows themselves, when the backend reads them anyway (PostgreSQL): saves the
    # service a second query. None: the service loads them by id.
    rows: list[Any] | None = None


class SearchBackend(Protocol):
    async def search(self, query: ProductQuery) -> SearchHits:
        """Matching products in `query.sort` order (ties by id), one page, with facets.

        Raises ecom_runtime.errors.InvalidArgument on a page_token it did not issue.
        """
        ...


def price_band(price_cents: int) -> int:
    """Index of the band of PRICE_BAND_EDGES a price falls in."""
    index = 0
    for i, edge in enumerate(PRICE_BAND_EDGES):
        if price_cents >= edge:
            index = i
    return index
