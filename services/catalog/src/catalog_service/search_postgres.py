"""Product lists and full-text search in PostgreSQL (the default search backend).

Every word must match the weighted `search_document` (name and SKU above description) as a
prefix, so "lapt" finds "laptop"; when no product matches so, words within trigram distance of
a name match too, so "labtop" still finds it. Only letters and digits reach to_tsquery, so
punctuation cannot break a query (`search_words`). Accents and case never matter. Paging is
keyset on the sort key plus id: stable while products are added.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from typing import Any

from ecom_runtime.paging import (
    decode_token,
    encode_token,
    foreign_token,
    position_bool,
    position_float,
    position_int,
    position_str,
    position_timestamp,
    position_uuid,
)
from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog_service.search import PRICE_BAND_EDGES, ProductQuery, SearchHits
from catalog_service.store import PRODUCT_COLUMNS, products

_WORD = re.compile(r"\w+", re.UNICODE)


def search_words(text: str) -> list[str]:
    """The words of a search, lower-cased. Characters that unaccent would spell with
    punctuation, which breaks to_tsquery, are taken apart first: compatibility forms by NFKC
    (U+00BC one quarter becomes 1, a fraction slash, 4) and modifier letters are dropped
    (unaccent makes U+02BC a quote, U+02D0 a colon)."""
    normalized = unicodedata.normalize("NFKC", text).lower()
    plain = "".join(" " if unicodedata.category(c) == "Lm" else c for c in normalized)
    return _WORD.findall(plain)


_folded_name = func.catalog.unaccent_immutable(func.lower(products.c.name))


def _ordering(sort: str, rank: ColumnElement[Any] | None) -> list[tuple[ColumnElement[Any], bool]]:
    """(column, descending) pairs; the id tiebreak goes the same way as the main key."""
    p = products.c
    if sort == "relevance" and rank is not None:
        return [(rank, True), (p.id, True)]
    orderings: dict[str, list[tuple[ColumnElement[Any], bool]]] = {
        "newest": [(p.created_at, True), (p.id, True)],
        "price_asc": [(p.price_cents, False), (p.id, False)],
        "price_desc": [(p.price_cents, True), (p.id, True)],
        "name": [(func.lower(p.name), False), (p.id, False)],
    }
    return orderings[sort]


def _after(
    ordering: list[tuple[ColumnElement[Any], bool]], values: list[Any]
) -> ColumnElement[bool]:
    columns = [column for column, _ in ordering]
    if ordering[0][1]:
        return tuple_(*columns) < tuple_(*values)
    return tuple_(*columns) > tuple_(*values)


# The bigint price column's range; names are at most 200 characters, lower() may lengthen a few.
_MAX_BIGINT = 2**63 - 1
_MAX_NAME_KEY = 1_000


def _sort_key(sort: str, value: Any) -> Any:
    """The first keyset value of a token, typed for `sort`'s column (refused if it cannot be)."""
    if sort == "newest":
        return position_timestamp(value)
    if sort in ("price_asc", "price_desc"):
        return position_int(value, low=0, high=_MAX_BIGINT)
    if sort == "name":
        return position_str(value, max_length=_MAX_NAME_KEY)
    if sort == "relevance":
        return position_float(value)
    raise foreign_token()


def _position_values(position: dict[str, Any] | None, sort: str) -> list[Any] | None:
    """The sort-key values a page token points after, typed back from JSON.

    Every value is checked against its column's type and range, so no token can make the
    query itself fail: a token the API did not issue is a 400 on page_token.
    """
    if position is None:
        return None
    if not isinstance(position["s"], str) or position["s"] != sort:
        raise foreign_token("belongs to another query (sort changed?)")
    position_bool(position["f"])
    values = position["k"]
    if not isinstance(values, list) or len(values) != 2:
        raise foreign_token()
    return [_sort_key(sort, values[0]), position_uuid(values[1])]


class PostgresSearch:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def _filters(self, query: ProductQuery) -> list[ColumnElement[bool]]:
        p = products.c
        filters: list[ColumnElement[bool]] = [p.deleted_at.is_(None)]
        if not query.include_inactive:
            filters.append(p.active)
        if query.category_ids is not None:
            filters.append(p.category_id.in_(query.category_ids) if query.category_ids else false())
        if query.min_price_cents is not None:
            filters.append(p.price_cents >= query.min_price_cents)
        if query.max_price_cents is not None:
            filters.append(p.price_cents <= query.max_price_cents)
        if query.in_stock:
            filters.append(p.on_hand - p.reserved > 0)
        return filters

    async def search(self, query: ProductQuery, *, facets: bool = True) -> SearchHits:
        """Exact (prefix) word matches first; only if none, words within typo distance.

        The fuzzy pass is slower (trigram similarity per word), so it runs only when the
        precise one found nothing; a page token remembers which pass produced it.
        """
        position = decode_token(query.page_token, keys=("s", "k", "f"))
        if query.text and not search_words(query.text):
            # Nothing searchable (punctuation only): no hits, but the facets' shape.
            return SearchHits([], 0, "", {}, [0] * len(PRICE_BAND_EDGES))
        fuzzy = bool(position and position["f"])
        hits = await self._search(query, position, fuzzy=fuzzy, facets=facets)
        if query.text and not fuzzy and position is None and hits.total == 0:
            hits = await self._search(query, None, fuzzy=True, facets=facets)
        return hits

    async def _search(
        self, query: ProductQuery, position: dict[str, Any] | None, *, fuzzy: bool, facets: bool
    ) -> SearchHits:
        filters = self._filters(query)
        rank: ColumnElement[Any] | None = None
        words = search_words(query.text)
        if words:
            tsquery = func.to_tsquery(
                "simple", func.catalog.unaccent_immutable(" & ".join(f"{w}:*" for w in words))
            )
            if fuzzy:
                # Each word either prefixes a word of the product or is close to part of its
                # name (`<%`, trigram word similarity: "labtop" ~ "laptop").
                for word in words:
                    folded = func.catalog.unaccent_immutable(word)
                    own = func.to_tsquery("simple", func.catalog.unaccent_immutable(f"{word}:*"))
                    filters.append(
                        or_(products.c.search_document.op("@@")(own), folded.op("<%")(_folded_name))
                    )
                similarity = func.word_similarity(
                    func.catalog.unaccent_immutable(" ".join(words)), _folded_name
                )
                rank = cast(func.ts_rank(products.c.search_document, tsquery) + similarity, Float)
            else:
                filters.append(products.c.search_document.op("@@")(tsquery))
                rank = cast(func.ts_rank(products.c.search_document, tsquery), Float)
        ordering = _ordering(query.sort, rank)
        after = _position_values(position, query.sort)
        page_filters = [*filters, _after(ordering, after)] if after else filters
        key_columns = [column.label(f"k{i}") for i, (column, _) in enumerate(ordering)]
        page = (
            select(*PRODUCT_COLUMNS, *key_columns)
            .where(and_(*page_filters))
            .order_by(*(column.desc() if desc else column.asc() for column, desc in ordering))
            .limit(query.page_size + 1)
        )
        category_counts: dict[uuid.UUID, int] = {}
        band_counts = [0] * len(PRICE_BAND_EDGES)
        async with self._engine.connect() as conn:
            if fuzzy:
                # pg_trgm's default (0.6) misses one wrong letter in a six-letter word
                # ("labtop" ~ "laptop" is 0.4). Loose, but this pass runs only as a fallback.
                await conn.execute(
                    select(func.set_config("pg_trgm.word_similarity_threshold", "0.4", True))
                )
            rows = (await conn.execute(page)).all()
            if facets:
                total = 0
                for category_id, band, count in await conn.execute(self._facets_query(filters)):
                    if band is None:  # the per-category grouping set
                        total += count
                        if category_id is not None:
                            category_counts[category_id] = count
                    else:
                        band_counts[band] = count
            else:
                total = await conn.scalar(  # type: ignore[assignment]
                    select(func.count()).select_from(products).where(and_(*filters))
                )
        next_token = ""
        if len(rows) > query.page_size:
            last = rows[query.page_size - 1]
            key = last.k0.isoformat() if isinstance(last.k0, datetime) else last.k0
            next_token = encode_token({"s": query.sort, "k": [key, str(last.k1)], "f": fuzzy})
        return SearchHits(
            product_ids=[r.id for r in rows[: query.page_size]],
            rows=list(rows[: query.page_size]),
            total=int(total or 0),
            next_page_token=next_token,
            category_counts=category_counts,
            price_band_counts=band_counts,
        )

    def _facets_query(self, filters: list[ColumnElement[bool]]) -> Any:
        price = products.c.price_cents
        band = case(
            *(
                (price >= edge, literal(i))
                for i, edge in reversed(list(enumerate(PRICE_BAND_EDGES)))
            ),
            else_=literal(0),
        ).label("band")
        return (
            select(products.c.category_id, band, func.count())
            .where(and_(*filters))
            .group_by(func.grouping_sets(products.c.category_id, band))
        )
